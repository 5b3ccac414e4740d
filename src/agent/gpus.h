// GPUs of a node: discovery through NVML, and which devices each run gets.
//
// The placement engine counts a node's GPUs; the agent decides which of them
// a run uses and says so in the run's environment (CUDA_VISIBLE_DEVICES,
// MERIDIAN_GPU_DEVICES), so that two runs on one node never share a device
// unless both asked for a share of one. Devices are named by NVML's UUIDs
// where NVML found them (CUDA accepts those, and they do not depend on the
// order CUDA numbers devices in), by indexes "0".."n-1" otherwise (a node
// given --gpus N, as tests do).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace meridian::agent {

// GPUs found through NVML (dlopen of libnvidia-ml.so.1); count 0 and the
// reason when there is none.
struct GpuInventory {
  int32_t count = 0;
  std::string type;                  // "h100" from "NVIDIA H100 80GB HBM3"
  std::vector<std::string> devices;  // UUIDs ("GPU-…"), one per device; empty if unreadable
  std::string note;                  // what was found, or why nothing
};
GpuInventory DiscoverGpus();

// "NVIDIA H100 80GB HBM3" -> "h100"; "Tesla V100-SXM2-16GB" -> "v100-sxm2-16gb".
std::string GpuTypeFromName(const std::string& name);

// Which run holds which share of which device. Not thread-safe.
class GpuAllocator {
 public:
  explicit GpuAllocator(std::vector<std::string> devices);

  // `count` devices with `milli` (1..1000) of each for run `key`. Whole GPUs
  // take devices nobody uses, lowest first. A share goes to the device it
  // fills most (best fit), so that whole devices stay free for whole-GPU runs.
  // ResourceExhausted, naming what is held, when they are not there.
  absl::StatusOr<std::vector<std::string>> Allocate(const std::string& key, int count, int milli);
  // Takes back what a run held before the agent restarted. InvalidArgument
  // for a device this node does not have, or more than a device has.
  absl::Status Restore(const std::string& key, const std::vector<std::string>& devices, int milli);
  void Release(const std::string& key);  // no-op for a key holding nothing

  std::vector<std::string> Holders() const;  // keys holding devices, sorted
  const std::vector<std::string>& devices() const { return devices_; }
  int UsedMilli(size_t device) const { return used_[device]; }

 private:
  struct Hold {
    std::vector<size_t> devices;
    int milli = 0;
  };
  std::string Describe() const;  // "GPU-a: 1000 (j1-r0-a0), GPU-b: free"
  std::vector<std::string> devices_;
  std::vector<int> used_;  // milli per device
  std::map<std::string, Hold> held_;
};

// The file in a run's directory that records its devices ("MILLI ID,ID"),
// read back after a restart.
inline constexpr char kGpuRecordFile[] = "gpus";
std::string FormatGpuRecord(int milli, const std::vector<std::string>& devices);
bool ParseGpuRecord(const std::string& text, int* milli, std::vector<std::string>* devices);

}  // namespace meridian::agent
