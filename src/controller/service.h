// ControllerServer: the controller's gRPC front (JobService, NodeService,
// RegionService, AgentService, EndpointService, IdentityService,
// SecretService, AuditService) over a Controller. Converts between the wire
// and the controller; every handler opens an authz Call first (authz.h). Submit and the agent calls use the
// callback API so a submit waiting for its group commit holds no thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "auth/crypto.h"
#include "controller/authz.h"
#include "controller/controller.h"
#include "controller/endpoints.h"
#include "controller/identity.h"
#include "rpc/rpc.h"

namespace meridian::controller {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // port 0: pick a free one
  // The controller's side of its connections: its certificate and the
  // cluster CA (TLS), or insecure (local credentials, loopback only).
  rpc::Security security;
  // The cluster CA's certificate and key: signs nodes' CSRs at Join.
  // Required unless security.insecure.
  auth::KeyPair ca;
  // Certificates for {Node, Join, Region}: the names nodes' log services are
  // checked against are "<node>.node.meridian".
};

class ControllerServer {
 public:
  // `ids` (required) and `endpoints` (may be null: no EndpointService) must
  // outlive the server.
  static absl::StatusOr<std::unique_ptr<ControllerServer>> Start(
      Controller* controller, ServerOptions options, IdentityManager* ids,
      EndpointManager* endpoints = nullptr);
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
