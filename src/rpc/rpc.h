// gRPC plumbing shared by the controller, the agent and the CLI: bearer-token
// authentication, credentials, channel set-up and status conversion.
//
// Authentication is an AuthMetadataProcessor on the server credentials: it
// runs before any handler and fails a call without the right
// `authorization: Bearer <token>` metadata with UNAUTHENTICATED. Transport is
// gRPC "local" credentials (loopback TCP only): Meridian's services listen
// on 127.0.0.1 here; TLS credentials slot into the same hook later.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meridian::rpc {

// Largest request a server accepts (larger ones fail RESOURCE_EXHAUSTED).
constexpr int kMaxRequestBytes = 4 << 20;

// Server credentials that require `token` on every call.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const std::string& token);

// A channel to `address` ("127.0.0.1:PORT").
std::shared_ptr<grpc::Channel> Connect(const std::string& address);

// Adds the bearer token (and an optional deadline in seconds, 0 = none).
void Prepare(grpc::ClientContext* ctx, const std::string& token, double deadline_s = 0);

absl::Status ToAbsl(const grpc::Status& s);
grpc::Status ToGrpc(const absl::Status& s);

// A fresh random token (32 hex digits from /dev/urandom).
std::string NewToken();

// Reads a token file (trailing whitespace removed); error names the path.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace meridian::rpc
