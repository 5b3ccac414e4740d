// ControllerServer: the controller's gRPC front (JobService, NodeService,
// RegionService, AgentService, EndpointService) over a Controller. Converts between the wire
// and the controller; no decisions here. Submit and the agent calls use the
// callback API so a submit waiting for its group commit holds no thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/controller.h"
#include "controller/endpoints.h"

namespace meridian::controller {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // port 0: pick a free one
  std::string token;                   // required on every call
};

class ControllerServer {
 public:
  // `endpoints` (may be null: no EndpointService) must outlive the server.
  static absl::StatusOr<std::unique_ptr<ControllerServer>> Start(
      Controller* controller, ServerOptions options, EndpointManager* endpoints = nullptr);
  ~ControllerServer();
  int port() const { return port_; }
  void Shutdown();
  void Wait();

 private:
  struct Impl;
  ControllerServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace meridian::controller
