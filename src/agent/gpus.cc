#include "agent/gpus.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace meridian::agent {

std::string GpuTypeFromName(const std::string& name) {
  std::istringstream words(name);
  std::string w, type;
  while (words >> w) {
    if (w == "NVIDIA" || w == "Tesla" || w == "GeForce" || w == "Quadro") continue;
    type = w;
    break;
  }
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.empty() ? "gpu" : type;
}

GpuInventory DiscoverGpus() {
  GpuInventory inv;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    inv.note = "NVML not present (libnvidia-ml.so.1 not found): no GPUs";
    return inv;
  }
  // NVML's C API, by the symbols its header maps the plain names to.
  using InitFn = int (*)();
  using CountFn = int (*)(unsigned int*);
  using HandleFn = int (*)(unsigned int, void**);
  using StringFn = int (*)(void*, char*, unsigned int);
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "nvmlInit_v2"));
  auto count = reinterpret_cast<CountFn>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<HandleFn>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<StringFn>(dlsym(lib, "nvmlDeviceGetName"));
  auto uuid = reinterpret_cast<StringFn>(dlsym(lib, "nvmlDeviceGetUUID"));
  auto shutdown = reinterpret_cast<InitFn>(dlsym(lib, "nvmlShutdown"));
  if (!init || !count || !handle || !name) {
    inv.note = "NVML found but incomplete: no GPUs";
    return inv;
  }
  if (int rc = init(); rc != 0) {
    inv.note = absl::StrCat("nvmlInit failed (NVML error ", rc, "): no GPUs");
    return inv;
  }
  unsigned int n = 0;
  if (count(&n) == 0 && n > 0) {
    inv.count = static_cast<int32_t>(n);
    std::string first;
    for (unsigned int i = 0; i < n; ++i) {
      void* dev = nullptr;
      char buf[96] = {};
      if (handle(i, &dev) != 0) break;
      if (i == 0 && name(dev, buf, sizeof buf) == 0) first = buf;
      char id[96] = {};
      if (uuid == nullptr || uuid(dev, id, sizeof id) != 0 || id[0] == '\0') break;
      inv.devices.push_back(id);
    }
    if (inv.devices.size() != n) inv.devices.clear();  // all or none: indexes then
    inv.type = GpuTypeFromName(first);
    inv.note = absl::StrCat("NVML: ", n, " x ", first.empty() ? "unnamed GPU" : first,
                            inv.devices.empty() ? " (no UUIDs: devices by index)" : "");
  } else {
    inv.note = "NVML: no GPU devices";
  }
  if (shutdown) shutdown();
  return inv;
}

GpuAllocator::GpuAllocator(std::vector<std::string> devices)
    : devices_(std::move(devices)), used_(devices_.size(), 0) {}

std::string GpuAllocator::Describe() const {
  std::vector<std::string> parts;
  for (size_t d = 0; d < devices_.size(); ++d) {
    std::vector<std::string> keys;
    for (const auto& [key, h] : held_)
      if (std::find(h.devices.begin(), h.devices.end(), d) != h.devices.end()) keys.push_back(key);
    parts.push_back(used_[d] == 0 ? absl::StrCat(devices_[d], ": free")
                                  : absl::StrCat(devices_[d], ": ", used_[d], " milli (",
                                                 absl::StrJoin(keys, " "), ")"));
  }
  return parts.empty() ? "no GPUs" : absl::StrJoin(parts, ", ");
}

absl::StatusOr<std::vector<std::string>> GpuAllocator::Allocate(const std::string& key, int count,
                                                                int milli) {
  if (count < 1 || milli < 1 || milli > 1000)
    return absl::InvalidArgumentError(
        absl::StrCat("run ", key, ": ", count, " GPUs of ", milli, " milli each is not a demand"));
  if (held_.contains(key))
    return absl::AlreadyExistsError(absl::StrCat("run ", key, " holds GPUs already"));
  std::vector<size_t> order(devices_.size());
  for (size_t d = 0; d < order.size(); ++d) order[d] = d;
  // Best fit: the least room left after this share; ties by index.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return used_[a] > used_[b]; });
  std::vector<size_t> chosen;
  for (size_t d : order) {
    if (static_cast<int>(chosen.size()) == count) break;
    if (1000 - used_[d] >= milli) chosen.push_back(d);
  }
  if (static_cast<int>(chosen.size()) < count)
    return absl::ResourceExhaustedError(absl::StrCat(
        "run ", key, " needs ", count, count == 1 ? " GPU" : " GPUs",
        milli < 1000 ? absl::StrCat(" with ", milli, " milli free") : std::string(" free"),
        " and this node has ", chosen.size(), " (", Describe(), ")"));
  std::sort(chosen.begin(), chosen.end());
  std::vector<std::string> out;
  for (size_t d : chosen) {
    used_[d] += milli;
    out.push_back(devices_[d]);
  }
  held_[key] = Hold{chosen, milli};
  return out;
}

absl::Status GpuAllocator::Restore(const std::string& key, const std::vector<std::string>& devices,
                                   int milli) {
  if (milli < 1 || milli > 1000)
    return absl::InvalidArgumentError(absl::StrCat("run ", key, ": share ", milli, " milli"));
  if (held_.contains(key))
    return absl::AlreadyExistsError(absl::StrCat("run ", key, " holds GPUs"));
  Hold h;
  h.milli = milli;
  for (const std::string& id : devices) {
    auto it = std::find(devices_.begin(), devices_.end(), id);
    if (it == devices_.end())
      return absl::InvalidArgumentError(
          absl::StrCat("run ", key, " held GPU ", id, ", which this node does not have"));
    size_t d = static_cast<size_t>(it - devices_.begin());
    if (used_[d] + milli > 1000)
      return absl::InvalidArgumentError(absl::StrCat("run ", key, " held ", milli, " milli of GPU ",
                                                     id, ", which has ", 1000 - used_[d], " left (",
                                                     Describe(), ")"));
    h.devices.push_back(d);
  }
  for (size_t d : h.devices) used_[d] += milli;
  held_[key] = std::move(h);
  return absl::OkStatus();
}

void GpuAllocator::Release(const std::string& key) {
  auto it = held_.find(key);
  if (it == held_.end()) return;
  for (size_t d : it->second.devices) used_[d] -= it->second.milli;
  held_.erase(it);
}

std::vector<std::string> GpuAllocator::Holders() const {
  std::vector<std::string> out;
  for (const auto& [key, h] : held_) out.push_back(key);
  return out;
}

std::string FormatGpuRecord(int milli, const std::vector<std::string>& devices) {
  return absl::StrCat(milli, " ", absl::StrJoin(devices, ","), "\n");
}

bool ParseGpuRecord(const std::string& text, int* milli, std::vector<std::string>* devices) {
  std::vector<std::string> f =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (f.size() != 2 || !absl::SimpleAtoi(f[0], milli) || *milli < 1 || *milli > 1000) return false;
  *devices = absl::StrSplit(f[1], ',', absl::SkipEmpty());
  return !devices->empty();
}

}  // namespace meridian::agent
