// gRPC plumbing shared by the controller, the agent and the CLI: transport
// security, channel set-up, bearer tokens and status conversion.
//
// Transport: TLS by default (the cluster CA verifies the server; a client
// certificate, where one is given, authenticates nodes and the controller:
// mutual TLS). `insecure` selects gRPC "local" credentials instead
// (loopback TCP only, no encryption): for debugging, and logged as such.
// Who may call what is decided by the services' AuthMetadataProcessor and
// per-method table (controller/authz.h), not here.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meridian::rpc {

// Largest request a server accepts (larger ones fail RESOURCE_EXHAUSTED).
constexpr int kMaxRequestBytes = 4 << 20;

// Certificates for one end of a connection (PEM text, not paths).
struct Security {
  bool insecure = false;  // local credentials: loopback only, no TLS
  std::string ca_pem;     // verifies the peer
  std::string cert_pem;   // own certificate (a server's; a client's for mutual TLS)
  std::string key_pem;
  // Client: the name the server's certificate must hold, when it is not the
  // host of the address (a node's "NAME.node.meridian").
  std::string target_name;
  // Server: clients must present a certificate signed by ca_pem (else it is
  // optional: verified when presented, and users come with bearer tokens).
  bool require_client_cert = false;
};

// Reads `<dir>/ca.crt`, `<dir>/NAME.crt` and `<dir>/NAME.key` into a Security.
absl::StatusOr<Security> LoadSecurity(const std::string& dir, const std::string& name);

// Server credentials; `processor` (may be null) runs before every handler.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const Security& sec, std::shared_ptr<grpc::AuthMetadataProcessor> processor);

// A channel to `address` ("127.0.0.1:PORT").
std::shared_ptr<grpc::Channel> Connect(const std::string& address, const Security& sec);

// A processor that lets a call through only from the peer whose verified
// certificate holds `common_name` (TLS), or, when `token` is not empty, with
// `authorization: Bearer <token>` (insecure clusters). Nodes' log services
// use it to accept only the controller.
std::shared_ptr<grpc::AuthMetadataProcessor> RequirePeer(std::string common_name,
                                                         std::string token);

// The peer's verified certificate common name ("" when it presented none).
std::string PeerCommonName(const grpc::AuthContext& ctx);

// Adds the bearer token (and an optional deadline in seconds, 0 = none).
void Prepare(grpc::ClientContext* ctx, const std::string& token, double deadline_s = 0);

absl::Status ToAbsl(const grpc::Status& s);
grpc::Status ToGrpc(const absl::Status& s);

// Writes `content` to `path` atomically (temp file + rename), with `mode`.
absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode);
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A fresh random token (32 hex digits from /dev/urandom).
std::string NewToken();

// Reads a token file (trailing whitespace removed); error names the path.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace meridian::rpc
