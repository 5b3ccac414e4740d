// Resources: a fixed-point bundle of CPU, memory and GPU quantities.
//
// All quantities are integers so that sums and differences are exact and a
// node can never be over-committed by rounding: CPU in milli-cores, memory in
// MiB, GPU in milli-GPUs (1000 = one whole GPU; fractional shares as in the
// Alibaba openb trace). Invariant for capacities and free amounts held by the
// engine: every field is >= 0. Arithmetic may produce negative values
// (a deficit); callers check with NonNegative()/Contains().
// Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

namespace meridian {

struct Resources {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int64_t gpu_milli = 0;

  Resources& operator+=(const Resources& o) {
    cpu_milli += o.cpu_milli;
    memory_mib += o.memory_mib;
    gpu_milli += o.gpu_milli;
    return *this;
  }
  Resources& operator-=(const Resources& o) {
    cpu_milli -= o.cpu_milli;
    memory_mib -= o.memory_mib;
    gpu_milli -= o.gpu_milli;
    return *this;
  }
  friend Resources operator+(Resources a, const Resources& b) { return a += b; }
  friend Resources operator-(Resources a, const Resources& b) { return a -= b; }
  friend Resources operator*(Resources a, int64_t k) {
    a.cpu_milli *= k;
    a.memory_mib *= k;
    a.gpu_milli *= k;
    return a;
  }
  friend bool operator==(const Resources&, const Resources&) = default;

  // True when every field of `o` fits in this bundle.
  bool Contains(const Resources& o) const {
    return cpu_milli >= o.cpu_milli && memory_mib >= o.memory_mib && gpu_milli >= o.gpu_milli;
  }
  bool NonNegative() const { return cpu_milli >= 0 && memory_mib >= 0 && gpu_milli >= 0; }
  bool IsZero() const { return cpu_milli == 0 && memory_mib == 0 && gpu_milli == 0; }

  // "cpu=4 mem=16Gi gpu=2" style, for messages.
  std::string ToString() const;
};

// Largest share field-wise of `used` over `total` (0 when total field is 0):
// the dominant share of DRF.
double DominantShare(const Resources& used, const Resources& total);

}  // namespace meridian
