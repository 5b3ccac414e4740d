// Collectives for the training runtime, on Gloo's TCP transport.
//
// A Group is one gloo context over some of the job's ranks (all of them, the
// ranks of one region, or the region leaders), connected through the job's
// store under its own key prefix. A RelayStore sits between gloo and the
// store: when a peer is in another region it swaps the peer's listening
// address for a netemu relay on the link between the two regions, so every
// byte that crosses regions is delayed, rate-limited and counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gloo/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/device.h"

namespace meridian::train {

// Returns "host:port" of a relay that carries traffic from the rank listening
// on `self` in `from_region` to the listener `target` in `to_region`. Gloo
// decides which side of a pair connects by comparing the two addresses it
// holds, so the relay's address must compare with `self` as `target` does
// (see RelayPortKeepsOrder).
using RelayResolver = std::function<absl::StatusOr<std::string>(
    int from_region, int to_region, const std::string& target, const std::string& self)>;

// True when a relay on `relay_port` keeps gloo's connect/accept decision
// between listeners on `self_port` and `target_port` (all on one host): gloo
// compares the ports as raw network-order 16-bit values.
bool RelayPortKeepsOrder(int relay_port, int self_port, int target_port);

class RelayStore : public gloo::rendezvous::Store {
 public:
  // `member_regions[i]` is the region of the group's rank i; `resolver` may be
  // empty (no relays: addresses pass unchanged).
  RelayStore(gloo::rendezvous::Store* inner, std::string prefix, std::vector<int> member_regions,
             int my_rank, RelayResolver resolver);
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;
  int rewritten() const { return rewritten_; }

 private:
  gloo::rendezvous::Store* inner_;
  std::string prefix_;
  std::vector<int> regions_;
  int my_rank_, my_region_;
  RelayResolver resolver_;
  int rewritten_ = 0;
  // Our pairs' listening addresses (one per other rank, in rank order), learnt
  // from what gloo publishes for us.
  std::vector<std::string> self_;
};

// What crosses the wire in CompressedAllreduce.
enum class Codec { kFp32, kFp16, kInt8 };
absl::StatusOr<Codec> ParseCodec(const std::string& s);
const char* CodecName(Codec c);
// Bytes that `n` values take in `codec`.
size_t EncodedBytes(Codec c, size_t n);
void Encode(Codec c, const float* in, size_t n, uint8_t* out);
void Decode(Codec c, const uint8_t* in, size_t n, float* out);

struct GroupOptions {
  std::string prefix;               // store key prefix, e.g. "e3/world"
  std::vector<int> member_regions;  // region per group rank
  int rank = 0;                     // this process's rank in the group
  RelayResolver resolver;           // empty: no relays
  std::chrono::milliseconds timeout = std::chrono::seconds(120);
};

class Group {
 public:
  static absl::StatusOr<std::unique_ptr<Group>> Connect(
      gloo::rendezvous::Store* store, std::shared_ptr<gloo::transport::Device> device,
      const GroupOptions& options);
  int rank() const { return context_->rank; }
  int size() const { return context_->size; }
  const std::shared_ptr<gloo::Context>& context() const { return context_; }

  // Element-wise sum over the group, result everywhere (Gloo ring).
  absl::Status Allreduce(float* data, size_t n);
  // Sum at `root` only (other ranks' buffers are unspecified afterwards).
  absl::Status Reduce(float* data, size_t n, int root);
  absl::Status Broadcast(float* data, size_t n, int root);
  // Root receives size() * n values, rank i's at [i * n, (i + 1) * n).
  absl::Status Gather(const float* in, size_t n, float* out, int root);
  absl::Status Barrier();
  // Sum in the manner of a reduce-scatter then an allgather, with what crosses
  // the wire encoded by `codec`. Every rank ends with identical values.
  absl::Status CompressedAllreduce(float* data, size_t n, Codec codec);

 private:
  explicit Group(std::shared_ptr<gloo::Context> c) : context_(std::move(c)) {}
  std::shared_ptr<gloo::Context> context_;
  std::vector<uint8_t> scratch_send_, scratch_recv_;
};

// The element-wise float sum Gloo calls as its reduce function: c = a + b.
void SumFloats(void* c, const void* a, const void* b, size_t n);

// One TCP device per process, listening on 127.0.0.1.
std::shared_ptr<gloo::transport::Device> LoopbackDevice();

}  // namespace meridian::train
