// Strong integer ids for the entities of the scheduling model.
//
// Every entity (region, zone, node, job, ...) is stored in a vector owned by
// its container (Fleet, Workload) and referred to by its index wrapped in a
// distinct type, so a NodeId can never be passed where a JobId is expected.
// An id is invalid (Valid() == false) when default-constructed.
// Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>

namespace meridian {

template <typename Tag>
class Id {
 public:
  constexpr Id() = default;
  constexpr explicit Id(int32_t value) : value_(value) {}

  constexpr int32_t value() const { return value_; }
  constexpr bool Valid() const { return value_ >= 0; }
  // Index into the owning container. Precondition: Valid().
  constexpr size_t index() const { return static_cast<size_t>(value_); }

  friend constexpr bool operator==(Id a, Id b) { return a.value_ == b.value_; }
  friend constexpr auto operator<=>(Id a, Id b) { return a.value_ <=> b.value_; }
  template <typename H>
  friend H AbslHashValue(H h, Id id) {
    return H::combine(std::move(h), id.value_);
  }
  friend std::ostream& operator<<(std::ostream& os, Id id) { return os << id.value_; }

 private:
  int32_t value_ = -1;
};

using RegionId = Id<struct RegionTag>;
using ZoneId = Id<struct ZoneTag>;
using NodeGroupId = Id<struct NodeGroupTag>;
using NodeId = Id<struct NodeTag>;
using GpuTypeId = Id<struct GpuTypeTag>;
using DatasetId = Id<struct DatasetTag>;
using TenantId = Id<struct TenantTag>;
using JobId = Id<struct JobTag>;

}  // namespace meridian

template <typename Tag>
struct std::hash<meridian::Id<Tag>> {
  size_t operator()(meridian::Id<Tag> id) const { return std::hash<int32_t>()(id.value()); }
};
