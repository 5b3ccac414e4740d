// Test jobs and tenants: short constructors for hand-written cases and a
// seeded random workload for property tests.
//
// Shapes scale CPU and memory with the GPUs (4 cores and 16 GiB per GPU), so
// on a UniformFleet GPUs are always the binding resource. Value types.
#pragma once

#include <cstdint>
#include <string>

#include "core/fleet.h"
#include "core/synthetic.h"
#include "core/workload.h"

namespace meridian::test {

// `n` whole GPUs (n == 0: a CPU-only task of 2 cores and 4 GiB).
TaskShape WholeGpus(int32_t n);
// One fractional share of a GPU, 0 < milli < 1000.
TaskShape GpuShare(int32_t milli);

// A job "job-<id>" of `replicas` replicas of `shape`, priority 0, 1 h long.
Job MakeJob(int32_t id, int32_t tenant, TaskShape shape, int32_t replicas = 1);

// Tenant "tenant-<id>" with no guarantee and an unlimited borrowing limit.
Tenant MakeTenant(int32_t id, double weight = 1.0);

// Options for a random synthetic job mix: 20..120 jobs, 1..4 tenants, gangs
// up to 1..8, fractional/residency/spot/cross-region shares and 1..3 priorities
// drawn from the seed.
SyntheticJobOptions RandomJobOptions(uint64_t seed);

}  // namespace meridian::test
