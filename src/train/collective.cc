#include "train/collective.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/common/error.h"
#include "gloo/gather.h"
#include "gloo/math.h"
#include "gloo/reduce.h"
#include "gloo/rendezvous/context.h"
#include "gloo/transport/tcp/device.h"

namespace meridian::train {
namespace {

constexpr size_t kInt8Block = 1024;  // values per int8 scale

template <typename F>
absl::Status Guard(const char* what, F&& f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  }
}

}  // namespace

void SumFloats(void* c, const void* a, const void* b, size_t n) {
  float* out = static_cast<float*>(c);
  const float* x = static_cast<const float*>(a);
  const float* y = static_cast<const float*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
}

// ---- RelayStore

RelayStore::RelayStore(gloo::rendezvous::Store* inner, std::string prefix,
                       std::vector<int> member_regions, int my_rank, RelayResolver resolver)
    : inner_(inner),
      prefix_(std::move(prefix)),
      regions_(std::move(member_regions)),
      my_rank_(my_rank),
      my_region_(regions_.at(size_t(my_rank))),
      resolver_(std::move(resolver)) {}

namespace {
std::string SockaddrString(const char* p) {
  sockaddr_in sa;
  std::memcpy(&sa, p, sizeof sa);
  if (sa.sin_family != AF_INET) return "";
  char ip[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
  return absl::StrCat(ip, ":", ntohs(sa.sin_port));
}
}  // namespace

bool RelayPortKeepsOrder(int relay_port, int self_port, int target_port) {
  auto key = [](int port) { return static_cast<int>(htons(static_cast<uint16_t>(port))); };
  int want = key(self_port) - key(target_port), got = key(self_port) - key(relay_port);
  return (want > 0 && got > 0) || (want < 0 && got < 0);
}

void RelayStore::set(const std::string& key, const std::vector<char>& data) {
  bool digits = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
    return std::isdigit(static_cast<unsigned char>(ch));
  });
  size_t entries = regions_.size() > 1 ? regions_.size() - 1 : 1;
  if (digits && data.size() % entries == 0 && data.size() / entries >= sizeof(sockaddr_in)) {
    self_.clear();
    for (size_t k = 0; k < entries; ++k) self_.push_back(SockaddrString(data.data() + k * (data.size() / entries)));
  }
  inner_->set(prefix_ + "/" + key, data);
}

void RelayStore::wait(const std::vector<std::string>& keys) {
  wait(keys, std::chrono::seconds(120));
}

void RelayStore::wait(const std::vector<std::string>& keys,
                      const std::chrono::milliseconds& timeout) {
  std::vector<std::string> full;
  for (const std::string& k : keys) full.push_back(prefix_ + "/" + k);
  inner_->wait(full, timeout);
}

std::vector<char> RelayStore::get(const std::string& key) {
  std::vector<char> data = inner_->get(prefix_ + "/" + key);
  if (!resolver_ || regions_.size() < 2) return data;
  // Gloo publishes, under the peer's rank ("3"), one address per pair it
  // created (one for each other rank, in rank order). Other keys ("rank_3":
  // the peer's host) pass unchanged.
  size_t digits = key.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(key[digits - 1]))) --digits;
  int peer = -1;
  if (digits != 0 || key.empty() || !absl::SimpleAtoi(key.substr(digits), &peer) || peer < 0 ||
      peer >= static_cast<int>(regions_.size()) || regions_[size_t(peer)] == my_region_)
    return data;
  size_t entries = regions_.size() - 1;
  if (data.size() % entries != 0 || data.size() / entries < sizeof(sockaddr_in))
    GLOO_THROW_IO_EXCEPTION("relay store: unexpected address record for rank ", peer, " key ", key, " size ", data.size());
  size_t entry = data.size() / entries;
  // Of the peer's addresses, only the one for its pair with us is used, and
  // gloo compares it with our own pair's address for that peer.
  size_t k = size_t(my_rank_ < peer ? my_rank_ : my_rank_ - 1);
  size_t mine = size_t(peer < my_rank_ ? peer : peer - 1);
  if (self_.size() != entries || self_[mine].empty())
    GLOO_THROW_IO_EXCEPTION("relay store: own address not published yet");
  std::string target = SockaddrString(data.data() + k * entry);
  if (target.empty()) return data;
  absl::StatusOr<std::string> relay =
      resolver_(my_region_, regions_[size_t(peer)], target, self_[mine]);
  if (!relay.ok()) GLOO_THROW_IO_EXCEPTION("relay store: ", relay.status().ToString());
  size_t colon = relay->rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(relay->substr(colon + 1), &port))
    GLOO_THROW_IO_EXCEPTION("relay store: bad relay address ", *relay);
  sockaddr_in sa;
  std::memcpy(&sa, data.data() + k * entry, sizeof sa);
  ::inet_pton(AF_INET, relay->substr(0, colon).c_str(), &sa.sin_addr);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  std::memcpy(data.data() + k * entry, &sa, sizeof sa);
  ++rewritten_;
  return data;
}

// ---- codecs

absl::StatusOr<Codec> ParseCodec(const std::string& s) {
  if (s == "none" || s == "fp32") return Codec::kFp32;
  if (s == "fp16") return Codec::kFp16;
  if (s == "int8") return Codec::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("compression '", s, "' is not one of none, fp16, int8"));
}

const char* CodecName(Codec c) {
  switch (c) {
    case Codec::kFp32:
      return "none";
    case Codec::kFp16:
      return "fp16";
    case Codec::kInt8:
      return "int8";
  }
  return "?";
}

size_t EncodedBytes(Codec c, size_t n) {
  switch (c) {
    case Codec::kFp32:
      return n * 4;
    case Codec::kFp16:
      return n * 2;
    case Codec::kInt8:
      return n + 4 * ((n + kInt8Block - 1) / kInt8Block);
  }
  return 0;
}

void Encode(Codec c, const float* in, size_t n, uint8_t* out) {
  switch (c) {
    case Codec::kFp32:
      std::memcpy(out, in, n * 4);
      return;
    case Codec::kFp16:
      for (size_t i = 0; i < n; ++i) {
        Eigen::half h(in[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case Codec::kInt8:
      // Per block: a float scale (max |x| / 127), then one signed byte per value.
      for (size_t b = 0; b < n; b += kInt8Block) {
        size_t e = std::min(n, b + kInt8Block);
        float m = 0;
        for (size_t i = b; i < e; ++i) m = std::max(m, std::fabs(in[i]));
        float scale = m > 0 ? m / 127.0f : 1.0f;
        std::memcpy(out, &scale, 4);
        out += 4;
        for (size_t i = b; i < e; ++i)
          *out++ = static_cast<uint8_t>(static_cast<int8_t>(std::lrint(in[i] / scale)));
      }
      return;
  }
}

void Decode(Codec c, const uint8_t* in, size_t n, float* out) {
  switch (c) {
    case Codec::kFp32:
      std::memcpy(out, in, n * 4);
      return;
    case Codec::kFp16:
      for (size_t i = 0; i < n; ++i) {
        Eigen::half h;
        std::memcpy(&h, in + 2 * i, 2);
        out[i] = static_cast<float>(h);
      }
      return;
    case Codec::kInt8:
      for (size_t b = 0; b < n; b += kInt8Block) {
        size_t e = std::min(n, b + kInt8Block);
        float scale;
        std::memcpy(&scale, in, 4);
        in += 4;
        for (size_t i = b; i < e; ++i) out[i] = static_cast<float>(static_cast<int8_t>(*in++)) * scale;
      }
      return;
  }
}

// ---- Group

std::shared_ptr<gloo::transport::Device> LoopbackDevice() {
  gloo::transport::tcp::attr attr("127.0.0.1");
  return gloo::transport::tcp::CreateDevice(attr);
}

absl::StatusOr<std::unique_ptr<Group>> Group::Connect(
    gloo::rendezvous::Store* store, std::shared_ptr<gloo::transport::Device> device,
    const GroupOptions& o) {
  int size = static_cast<int>(o.member_regions.size());
  if (o.rank < 0 || o.rank >= size)
    return absl::InvalidArgumentError(absl::StrCat("group ", o.prefix, ": rank ", o.rank,
                                                   " outside 0..", size - 1));
  auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, size);
  ctx->setTimeout(o.timeout);
  RelayStore relay(store, o.prefix, o.member_regions, o.rank, o.resolver);
  absl::Status s = Guard("connecting group", [&] {
    if (size > 1) ctx->connectFullMesh(relay, device);
  });
  if (!s.ok()) return absl::UnavailableError(absl::StrCat(o.prefix, ": ", s.message()));
  return std::unique_ptr<Group>(new Group(ctx));
}

absl::Status Group::Allreduce(float* data, size_t n) {
  if (size() == 1 || n == 0) return absl::OkStatus();
  return Guard("allreduce", [&] {
    gloo::AllreduceOptions opts(context_);
    opts.setOutput(data, n);
    opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
    opts.setReduceFunction(&SumFloats);
    gloo::allreduce(opts);
  });
}

absl::Status Group::Reduce(float* data, size_t n, int root) {
  if (size() == 1 || n == 0) return absl::OkStatus();
  return Guard("reduce", [&] {
    gloo::ReduceOptions opts(context_);
    opts.setOutput(data, n);
    opts.setRoot(root);
    opts.setReduceFunction(&SumFloats);
    gloo::reduce(opts);
  });
}

absl::Status Group::Broadcast(float* data, size_t n, int root) {
  if (size() == 1 || n == 0) return absl::OkStatus();
  return Guard("broadcast", [&] {
    gloo::BroadcastOptions opts(context_);
    opts.setOutput(data, n);
    opts.setRoot(root);
    gloo::broadcast(opts);
  });
}

absl::Status Group::Gather(const float* in, size_t n, float* out, int root) {
  if (size() == 1) {
    std::memcpy(out, in, n * sizeof(float));
    return absl::OkStatus();
  }
  return Guard("gather", [&] {
    gloo::GatherOptions opts(context_);
    opts.setInput(const_cast<float*>(in), n);
    if (rank() == root) opts.setOutput(out, n * size_t(size()));
    opts.setRoot(root);
    gloo::gather(opts);
  });
}

absl::Status Group::Barrier() {
  if (size() == 1) return absl::OkStatus();
  return Guard("barrier", [&] {
    gloo::BarrierOptions opts(context_);
    gloo::barrier(opts);
  });
}

absl::Status Group::CompressedAllreduce(float* data, size_t n, Codec codec) {
  int p = size(), me = rank();
  if (p == 1 || n == 0) return absl::OkStatus();
  auto lo = [&](int j) { return n * size_t(j) / size_t(p); };
  auto len = [&](int j) { return lo(j + 1) - lo(j); };
  size_t max_bytes = EncodedBytes(codec, len(p - 1) + 1);
  scratch_send_.assign(max_bytes * size_t(p), 0);
  scratch_recv_.assign(max_bytes * size_t(p), 0);
  std::vector<float> tmp(len(me) + 1);
  return Guard("compressed allreduce", [&] {
    auto timeout = context_->getTimeout();
    // Reduce-scatter: chunk j goes, encoded, to rank j.
    uint64_t slot = context_->nextSlot();
    auto send = context_->createUnboundBuffer(scratch_send_.data(), scratch_send_.size());
    auto recv = context_->createUnboundBuffer(scratch_recv_.data(), scratch_recv_.size());
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      Encode(codec, data + lo(j), len(j), scratch_send_.data() + max_bytes * size_t(j));
      send->send(j, slot, max_bytes * size_t(j), EncodedBytes(codec, len(j)));
      recv->recv(j, slot, max_bytes * size_t(j), EncodedBytes(codec, len(me)));
    }
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      send->waitSend(timeout);
      recv->waitRecv(timeout);
    }
    // Own contribution goes through the codec too, so every rank sums the same values.
    Encode(codec, data + lo(me), len(me), scratch_send_.data() + max_bytes * size_t(me));
    Decode(codec, scratch_send_.data() + max_bytes * size_t(me), len(me), data + lo(me));
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      Decode(codec, scratch_recv_.data() + max_bytes * size_t(j), len(me), tmp.data());
      for (size_t i = 0; i < len(me); ++i) data[lo(me) + i] += tmp[i];
    }
    // Allgather: the summed chunk, encoded once, to everyone; everyone keeps
    // the decoded value, the owner included.
    uint64_t slot2 = context_->nextSlot();
    Encode(codec, data + lo(me), len(me), scratch_send_.data());
    Decode(codec, scratch_send_.data(), len(me), data + lo(me));
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      send->send(j, slot2, 0, EncodedBytes(codec, len(me)));
      recv->recv(j, slot2, max_bytes * size_t(j), EncodedBytes(codec, len(j)));
    }
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      send->waitSend(timeout);
      recv->waitRecv(timeout);
    }
    for (int j = 0; j < p; ++j)
      if (j != me) Decode(codec, scratch_recv_.data() + max_bytes * size_t(j), len(j), data + lo(j));
  });
}

}  // namespace meridian::train
