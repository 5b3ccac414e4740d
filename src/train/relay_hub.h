// The emulated WAN between a job's regions: one netemu SharedLink per
// direction between every two regions, and a relay per (rank listener, peer
// listener) created on request. Serves the store's `relay` call, made by a
// RelayStore when gloo connects ranks in different regions. The standalone
// launcher hosts one; under Meridian rank 0 does when the cluster emulates a
// WAN (MERIDIAN_WAN_RTT_MS / MERIDIAN_WAN_MBPS).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "netemu/netemu.h"
#include "train/kvstore.h"

namespace meridian::train {

class RelayHub {
 public:
  explicit RelayHub(netemu::LinkOptions link) : link_(link) {}
  ~RelayHub();
  // For KvServer: answers ("relay", "FROM TO TARGET SELF") with a relay's address.
  KvServer::Handler Handler();
  absl::StatusOr<std::string> Relay(int from, int to, const std::string& target,
                                    const std::string& self);
  // Bytes delivered per direction (from region, to region), and their sum.
  std::map<std::pair<int, int>, uint64_t> LinkBytes() const;
  uint64_t TotalBytes() const;
  void Stop();  // closes every relay

 private:
  netemu::LinkOptions link_;
  mutable std::mutex mu_;
  std::map<std::pair<int, int>, std::shared_ptr<netemu::SharedLink>> links_;
  std::map<std::string, std::unique_ptr<netemu::Relay>> relays_;
};

}  // namespace meridian::train
