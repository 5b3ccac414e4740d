// netemu: a user-space TCP relay that emulates an inter-region link.
//
// The kernel here has no netem, so slow links between regions are emulated
// in user space: a Relay listens on 127.0.0.1, connects each accepted
// connection to a target, and forwards bytes in both directions through a
// LinkModel per direction that adds a one-way delay, serialises bytes at the
// link's bandwidth (shared by every connection of the relay, as on a real
// link) and, with probability `loss` per chunk, adds a retransmission penalty
// (TCP carries the bytes anyway: a lost segment costs time, not data). It
// counts the bytes it carries. Thread-safe; one thread per direction reads
// and one writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"

namespace meridian::netemu {

struct LinkOptions {
  double one_way_delay_ms = 0;   // added to every chunk
  double mbps = 0;               // bandwidth in Mbit/s; 0 = unlimited
  double loss = 0;               // probability a chunk pays a retransmission penalty
  double loss_penalty_ms = 200;  // the penalty (about one minimum RTO)
  uint64_t seed = 1;
};

// When each chunk leaves the emulated link. Pure arithmetic over the times
// passed in, so it is tested on exact numbers; the relay feeds it the wall
// clock. Not thread-safe: the relay locks around it.
class LinkModel {
 public:
  explicit LinkModel(LinkOptions options);
  // A chunk of `bytes` arrived at `arrival_s`; returns when it is delivered.
  double Deliver(double arrival_s, size_t bytes);

 private:
  LinkOptions options_;
  Rng rng_;
  double link_free_s_ = 0;  // when the link finishes sending what it already holds
};

// One direction of a link that several relays share: every relay between the
// same two regions queues on the same model, so the bandwidth is shared.
struct SharedLink {
  explicit SharedLink(LinkOptions options) : model(options) {}
  LinkModel model;
  std::mutex mu;
  std::atomic<uint64_t> bytes{0};  // delivered through this direction
};

struct RelayOptions {
  std::string listen = "127.0.0.1:0";
  std::string target;   // host:port the relay connects to
  LinkOptions forward;  // client -> target
  LinkOptions reverse;  // target -> client
  // When set, used instead of models built from `forward` / `reverse`.
  std::shared_ptr<SharedLink> forward_link, reverse_link;
};

class Relay {
 public:
  static absl::StatusOr<std::unique_ptr<Relay>> Start(RelayOptions options);
  ~Relay();  // stops and joins every thread
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint64_t bytes_forward() const { return bytes_forward_; }
  uint64_t bytes_reverse() const { return bytes_reverse_; }
  uint64_t connections() const { return connections_; }
  void Stop();

 private:
  explicit Relay(RelayOptions options);
  void AcceptLoop();
  void Pump(int from, int to, SharedLink* link, std::atomic<uint64_t>* counter);

  RelayOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> bytes_forward_{0}, bytes_reverse_{0}, connections_{0};
  std::shared_ptr<SharedLink> forward_, reverse_;
  std::mutex threads_mu_;
  std::vector<std::thread> threads_;
  std::vector<int> fds_;
  std::thread acceptor_;
};

}  // namespace meridian::netemu
