#include "core/resources.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace meridian {

namespace {
std::string Milli(int64_t v) {
  if (v % 1000 == 0) return absl::StrCat(v / 1000);
  return absl::StrFormat("%.3g", static_cast<double>(v) / 1000.0);
}
std::string Mem(int64_t mib) {
  if (mib % 1024 == 0 && mib != 0) return absl::StrCat(mib / 1024, "Gi");
  return absl::StrCat(mib, "Mi");
}
}  // namespace

std::string Resources::ToString() const {
  return absl::StrCat("cpu=", Milli(cpu_milli), " mem=", Mem(memory_mib), " gpu=", Milli(gpu_milli));
}

double DominantShare(const Resources& used, const Resources& total) {
  double s = 0;
  if (total.cpu_milli > 0) s = std::max(s, double(used.cpu_milli) / double(total.cpu_milli));
  if (total.memory_mib > 0) s = std::max(s, double(used.memory_mib) / double(total.memory_mib));
  if (total.gpu_milli > 0) s = std::max(s, double(used.gpu_milli) / double(total.gpu_milli));
  return s;
}

}  // namespace meridian
