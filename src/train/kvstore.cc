#include "train/kvstore.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gloo/common/error.h"

namespace meridian::train {
namespace {

enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCall = 4 };
enum Reply : uint8_t { kOk = 0, kTimeout = 1, kError = 2 };

bool WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd, c, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

constexpr uint32_t kMaxField = 64u << 20;

bool WriteFrame(int fd, uint8_t code, const std::string& key, const std::string& value) {
  std::string f;
  f.reserve(9 + key.size() + value.size());
  f.push_back(static_cast<char>(code));
  for (const std::string* s : {&key, &value}) {
    uint32_t n = static_cast<uint32_t>(s->size());
    f.append(reinterpret_cast<const char*>(&n), 4);
    f.append(*s);
  }
  return WriteAll(fd, f.data(), f.size());
}

bool ReadFrame(int fd, uint8_t* code, std::string* key, std::string* value) {
  if (!ReadAll(fd, code, 1)) return false;
  for (std::string* s : {key, value}) {
    uint32_t n = 0;
    if (!ReadAll(fd, &n, 4) || n > kMaxField) return false;
    s->resize(n);
    if (n > 0 && !ReadAll(fd, s->data(), n)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat("store address '", address, "' is not HOST:PORT"));
  std::string host = address.substr(0, colon);
  if (host == "localhost" || host.empty()) host = "127.0.0.1";
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("store address '", address, "': host must be an IPv4 address"));
  return std::make_pair(host, port);
}

static absl::StatusOr<sockaddr_in> ToSockaddr(const std::string& address) {
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(address);
  if (!hp.ok()) return hp.status();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(hp->second));
  ::inet_pton(AF_INET, hp->first.c_str(), &sa.sin_addr);
  return sa;
}

// ---- server

absl::StatusOr<std::unique_ptr<KvServer>> KvServer::Start(const std::string& listen,
                                                         Handler handler) {
  absl::StatusOr<sockaddr_in> sa = ToSockaddr(listen);
  if (!sa.ok()) return sa.status();
  std::unique_ptr<KvServer> s(new KvServer());
  s->handler_ = std::move(handler);
  s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&*sa), sizeof *sa) != 0 ||
      ::listen(s->listen_fd_, 256) != 0) {
    std::string why = strerror(errno);
    ::close(s->listen_fd_);
    s->listen_fd_ = -1;
    return absl::UnavailableError(absl::StrCat("store: cannot listen on ", listen, ": ", why));
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  s->port_ = ntohs(bound.sin_port);
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

KvServer::~KvServer() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  cv_.notify_all();
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (std::thread& t : threads_) threads.push_back(std::move(t));
    threads_.clear();
  }
  for (std::thread& t : threads) t.join();
  for (int fd : fds_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void KvServer::Set(const std::string& key, const std::string& value) {
  {
    std::lock_guard<std::mutex> l(mu_);
    data_[key] = value;
  }
  cv_.notify_all();
}

std::optional<std::string> KvServer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

void KvServer::AcceptLoop() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

bool KvServer::WaitFor(const std::string& key, std::chrono::milliseconds timeout,
                       std::string* value) {
  std::unique_lock<std::mutex> l(mu_);
  bool found = cv_.wait_for(l, timeout, [&] { return stopping_ || data_.count(key) > 0; });
  if (!found || stopping_) return false;
  *value = data_[key];
  return true;
}

void KvServer::Serve(int fd) {
  uint8_t op = 0;
  std::string key, value;
  while (ReadFrame(fd, &op, &key, &value)) {
    uint8_t code = kOk;
    std::string out;
    switch (op) {
      case kSet:
        Set(key, value);
        break;
      case kGet: {
        int64_t ms = 0;
        if (value.size() == 8) std::memcpy(&ms, value.data(), 8);
        if (!WaitFor(key, std::chrono::milliseconds(ms), &out)) code = kTimeout;
        break;
      }
      case kAdd: {
        int64_t delta = 0, now = 0;
        if (value.size() == 8) std::memcpy(&delta, value.data(), 8);
        {
          std::lock_guard<std::mutex> l(mu_);
          std::string& cur = data_[key];
          if (cur.size() == 8) std::memcpy(&now, cur.data(), 8);
          now += delta;
          cur.assign(reinterpret_cast<const char*>(&now), 8);
        }
        cv_.notify_all();
        out.assign(reinterpret_cast<const char*>(&now), 8);
        break;
      }
      case kCall: {
        absl::StatusOr<std::string> r =
            handler_ ? handler_(key, value)
                     : absl::StatusOr<std::string>(absl::UnimplementedError("no handler"));
        if (r.ok()) {
          out = *std::move(r);
        } else {
          code = kError;
          out = r.status().ToString();
        }
        break;
      }
      default:
        code = kError;
        out = absl::StrCat("unknown op ", op);
    }
    if (!WriteFrame(fd, code, "", out)) break;
  }
}

// ---- client

absl::StatusOr<std::unique_ptr<KvClient>> KvClient::Connect(const std::string& address,
                                                           std::chrono::milliseconds timeout) {
  absl::StatusOr<sockaddr_in> sa = ToSockaddr(address);
  if (!sa.ok()) return sa.status();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&*sa), sizeof *sa) == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return std::unique_ptr<KvClient>(new KvClient(fd));
    }
    last = strerror(errno);
    ::close(fd);
    if (std::chrono::steady_clock::now() >= deadline)
      return absl::UnavailableError(
          absl::StrCat("store ", address, " unreachable: ", last));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

KvClient::~KvClient() { ::close(fd_); }

absl::StatusOr<std::string> KvClient::Request(uint8_t op, const std::string& key,
                                             const std::string& value) {
  std::lock_guard<std::mutex> l(mu_);
  uint8_t code = 0;
  std::string k, v;
  if (!WriteFrame(fd_, op, key, value) || !ReadFrame(fd_, &code, &k, &v))
    return absl::UnavailableError("store connection lost");
  if (code == kTimeout) return absl::DeadlineExceededError(absl::StrCat("store: timed out waiting for '", key, "'"));
  if (code != kOk) return absl::InternalError(absl::StrCat("store: ", v));
  return v;
}

absl::Status KvClient::Put(const std::string& key, const std::string& value) {
  return Request(kSet, key, value).status();
}

absl::StatusOr<std::string> KvClient::Fetch(const std::string& key,
                                           std::chrono::milliseconds timeout) {
  int64_t ms = timeout.count();
  return Request(kGet, key, std::string(reinterpret_cast<const char*>(&ms), 8));
}

absl::StatusOr<int64_t> KvClient::Add(const std::string& key, int64_t delta) {
  absl::StatusOr<std::string> r =
      Request(kAdd, key, std::string(reinterpret_cast<const char*>(&delta), 8));
  if (!r.ok()) return r.status();
  int64_t v = 0;
  if (r->size() == 8) std::memcpy(&v, r->data(), 8);
  return v;
}

absl::StatusOr<std::string> KvClient::Call(const std::string& name, const std::string& arg) {
  return Request(kCall, name, arg);
}

void KvClient::set(const std::string& key, const std::vector<char>& data) {
  absl::Status s = Put(key, std::string(data.begin(), data.end()));
  if (!s.ok()) GLOO_THROW_IO_EXCEPTION(s.ToString());
}

std::vector<char> KvClient::get(const std::string& key) {
  absl::StatusOr<std::string> v = Fetch(key, timeout);
  if (!v.ok()) GLOO_THROW_IO_EXCEPTION(v.status().ToString());
  return std::vector<char>(v->begin(), v->end());
}

void KvClient::wait(const std::vector<std::string>& keys) { wait(keys, timeout); }

void KvClient::wait(const std::vector<std::string>& keys,
                    const std::chrono::milliseconds& wait_timeout) {
  for (const std::string& k : keys) {
    absl::StatusOr<std::string> v = Fetch(k, wait_timeout);
    if (!v.ok()) GLOO_THROW_IO_EXCEPTION(v.status().ToString());
  }
}

}  // namespace meridian::train
