#include "netemu/netemu.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>

#include "absl/strings/str_cat.h"

namespace meridian::netemu {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

absl::StatusOr<sockaddr_in> ParseAddress(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("address '", addr, "': expected HOST:PORT"));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  int port = std::atoi(addr.substr(colon + 1).c_str());
  if (port < 0 || port > 65535)
    return absl::InvalidArgumentError(absl::StrCat("address '", addr, "': bad port"));
  sa.sin_port = htons(static_cast<uint16_t>(port));
  std::string host = addr.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("address '", addr, "': host must be an IPv4 address"));
  return sa;
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

LinkModel::LinkModel(LinkOptions options) : options_(options), rng_(options.seed) {}

double LinkModel::Deliver(double arrival_s, size_t bytes) {
  double start = std::max(arrival_s, link_free_s_);
  double send_s = options_.mbps > 0 ? static_cast<double>(bytes) * 8.0 / (options_.mbps * 1e6) : 0;
  link_free_s_ = start + send_s;
  double at = link_free_s_ + options_.one_way_delay_ms / 1e3;
  if (options_.loss > 0 && rng_.UniformReal() < options_.loss) at += options_.loss_penalty_ms / 1e3;
  return at;
}

Relay::Relay(RelayOptions options)
    : options_(std::move(options)),
      forward_(options_.forward_link ? options_.forward_link
                                     : std::make_shared<SharedLink>(options_.forward)),
      reverse_(options_.reverse_link ? options_.reverse_link
                                     : std::make_shared<SharedLink>(options_.reverse)) {}

absl::StatusOr<std::unique_ptr<Relay>> Relay::Start(RelayOptions options) {
  for (const LinkOptions* l : {&options.forward, &options.reverse}) {
    if (l->one_way_delay_ms < 0 || l->mbps < 0 || l->loss < 0 || l->loss > 1 ||
        l->loss_penalty_ms < 0)
      return absl::InvalidArgumentError(
          "link: delay, bandwidth and penalty must be >= 0 and loss in [0, 1]");
  }
  absl::StatusOr<sockaddr_in> listen = ParseAddress(options.listen);
  if (!listen.ok()) return listen.status();
  absl::StatusOr<sockaddr_in> target = ParseAddress(options.target);
  if (!target.ok()) return target.status();
  std::unique_ptr<Relay> r(new Relay(std::move(options)));
  r->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(r->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(r->listen_fd_, reinterpret_cast<sockaddr*>(&*listen), sizeof *listen) != 0 ||
      ::listen(r->listen_fd_, 128) != 0)
    return absl::UnavailableError(
        absl::StrCat("netemu: cannot listen on ", r->options_.listen, ": ", strerror(errno)));
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(r->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  r->port_ = ntohs(bound.sin_port);
  r->acceptor_ = std::thread([p = r.get()] { p->AcceptLoop(); });
  return r;
}

Relay::~Relay() { Stop(); }

void Relay::Stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> l(threads_mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  for (int fd : fds_) ::close(fd);
}

void Relay::AcceptLoop() {
  sockaddr_in target = *ParseAddress(options_.target);
  while (!stopping_) {
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (stopping_) return;
      continue;
    }
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(upstream, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
      ::close(upstream);
      ::close(client);
      continue;
    }
    NoDelay(client);
    NoDelay(upstream);
    ++connections_;
    std::lock_guard<std::mutex> l(threads_mu_);
    if (stopping_) {
      ::close(client);
      ::close(upstream);
      return;
    }
    fds_.push_back(client);
    fds_.push_back(upstream);
    threads_.emplace_back(
        [=, this] { Pump(client, upstream, forward_.get(), &bytes_forward_); });
    threads_.emplace_back([=, this] { Pump(upstream, client, reverse_.get(), &bytes_reverse_); });
  }
}

void Relay::Pump(int from, int to, SharedLink* link, std::atomic<uint64_t>* counter) {
  struct Chunk {
    double at;
    std::string data;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Chunk> queue;
  bool eof = false;
  // The writer delivers chunks at their scheduled times, in order.
  std::thread writer([&] {
    for (;;) {
      Chunk c;
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return eof || !queue.empty(); });
        if (queue.empty()) break;
        c = std::move(queue.front());
        queue.pop_front();
      }
      double wait = c.at - Now();
      if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      size_t off = 0;
      while (off < c.data.size()) {
        ssize_t w = ::send(to, c.data.data() + off, c.data.size() - off, MSG_NOSIGNAL);
        if (w <= 0) {
          ::shutdown(from, SHUT_RDWR);  // the other side is gone: stop reading too
          return;
        }
        off += static_cast<size_t>(w);
      }
      *counter += c.data.size();
      link->bytes += c.data.size();
    }
    ::shutdown(to, SHUT_WR);  // pass the end of stream on, after the data
  });
  std::string buf(64 * 1024, '\0');
  for (;;) {
    ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    double at;
    {
      std::lock_guard<std::mutex> l(link->mu);
      at = link->model.Deliver(Now(), static_cast<size_t>(n));
    }
    std::lock_guard<std::mutex> l(mu);
    queue.push_back(Chunk{at, std::string(buf.data(), static_cast<size_t>(n))});
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    eof = true;
  }
  cv.notify_one();
  writer.join();
}

}  // namespace meridian::netemu
