// Clock and Rng: injected time and randomness.
//
// Components never read the wall clock or a global random source directly;
// they take a Clock* and an Rng&. The simulator drives a FakeClock on a
// virtual timeline and tests seed the Rng, which keeps every run
// deterministic. Clock implementations are thread-safe for reads; FakeClock
// must be advanced from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace meridian {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since an arbitrary epoch (wall time for SystemClock, virtual for FakeClock).
  virtual double NowSeconds() const = 0;
};

class SystemClock final : public Clock {
 public:
  double NowSeconds() const override {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(double start = 0) : now_(start) {}
  double NowSeconds() const override { return now_; }
  void Set(double t) { now_ = t; }
  void Advance(double dt) { now_ += dt; }

 private:
  double now_;
};

// Seeded pseudo-random source. Same seed, same sequence on every machine
// (mt19937_64 is fully specified; the distributions here are written out
// instead of using std:: distributions whose output is implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_(); }
  // Uniform integer in [lo, hi]. Precondition: lo <= hi.
  int64_t Uniform(int64_t lo, int64_t hi) {
    uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(span == 0 ? gen_() : gen_() % span);
  }
  // Uniform real in [0, 1).
  double UniformReal() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 gen_;
};

}  // namespace meridian
