#include "train/relay_hub.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "train/collective.h"

namespace meridian::train {

RelayHub::~RelayHub() { Stop(); }

void RelayHub::Stop() {
  std::map<std::string, std::unique_ptr<netemu::Relay>> relays;
  {
    std::lock_guard<std::mutex> l(mu_);
    relays.swap(relays_);
  }
  relays.clear();  // joins their threads outside the lock
}

KvServer::Handler RelayHub::Handler() {
  return [this](const std::string& name, const std::string& arg) -> absl::StatusOr<std::string> {
    if (name != "relay") return absl::InvalidArgumentError("unknown call " + name);
    std::vector<std::string> f = absl::StrSplit(arg, ' ');
    int from = -1, to = -1;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &from) || !absl::SimpleAtoi(f[1], &to) ||
        from < 0 || to < 0 || from == to)
      return absl::InvalidArgumentError("bad relay request '" + arg + "'");
    return Relay(from, to, f[2], f[3]);
  };
}

absl::StatusOr<std::string> RelayHub::Relay(int from, int to, const std::string& target,
                                            const std::string& self) {
  absl::StatusOr<std::pair<std::string, int>> t = SplitHostPort(target);
  absl::StatusOr<std::pair<std::string, int>> s = SplitHostPort(self);
  if (!t.ok()) return t.status();
  if (!s.ok()) return s.status();
  std::lock_guard<std::mutex> l(mu_);
  // One relay per ordered pair of listeners: its port must keep gloo's
  // connect/accept decision between the two (RelayPortKeepsOrder).
  std::string key = absl::StrCat(self, ">", target);
  auto it = relays_.find(key);
  if (it != relays_.end()) return it->second->address();
  for (auto [a, b] : {std::pair{from, to}, std::pair{to, from}})
    if (!links_.count({a, b})) links_[{a, b}] = std::make_shared<netemu::SharedLink>(link_);
  netemu::RelayOptions ro;
  ro.target = target;
  ro.forward_link = links_[{from, to}];
  ro.reverse_link = links_[{to, from}];
  absl::Status last = absl::UnavailableError("no free port keeps gloo's order");
  int port = 20000 + static_cast<int>(relays_.size()) * 97 % 30000;
  for (int tries = 0; tries < 4000; ++tries, port = 20000 + (port - 20000 + 7919) % 40000) {
    if (!RelayPortKeepsOrder(port, s->second, t->second)) continue;
    ro.listen = absl::StrCat("127.0.0.1:", port);
    absl::StatusOr<std::unique_ptr<netemu::Relay>> r = netemu::Relay::Start(ro);
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    return relays_.emplace(key, *std::move(r)).first->second->address();
  }
  return last;
}

std::map<std::pair<int, int>, uint64_t> RelayHub::LinkBytes() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::pair<int, int>, uint64_t> out;
  for (const auto& [k, link] : links_) out[k] = link->bytes;
  return out;
}

uint64_t RelayHub::TotalBytes() const {
  uint64_t n = 0;
  for (const auto& [k, b] : LinkBytes()) n += b;
  return n;
}

}  // namespace meridian::train
