// Authorization of the controller's API, in one place.
//
// Every method of every service has a row in one table (authz.cc): the
// resource it touches and whether it reads or writes. A method without a
// row is denied (PERMISSION_DENIED) before any handler runs, by the
// AuthMetadataProcessor that MakeProcessor returns; it also refuses callers
// that cannot hold the method's permission in any tenant. Handlers then
// open a Call, which identifies the caller again from the call's own
// context and, once the request names its tenant (a job's, an endpoint's,
// a secret's), checks the permission there (Call::Allow). Denials and the
// outcome of every mutating call are audited (IdentityManager::Audit).
//
// Callers are identified by their TLS client certificate ("node:NAME",
// signed by the cluster CA) or else by their bearer token. Nodes may call
// only the agent protocol, and only for themselves (the handlers compare the
// node named in the request with Call::principal()).
//
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "auth/identity.h"
#include "controller/identity.h"

namespace meridian::controller {

struct MethodRule {
  std::string_view method;  // "/meridian.v1.JobService/Submit"
  auth::Resource resource;
  auth::Action action;
  enum class Who { kRoles, kAgent, kJoin, kAnyUser } who = Who::kRoles;
};

// The row for a full method name; null when there is none (denied).
const MethodRule* FindRule(std::string_view full_method);
// Every row (the security test walks them all).
const std::vector<MethodRule>& AllRules();

class Authorizer {
 public:
  explicit Authorizer(IdentityManager* ids) : ids_(ids) {}

  // Who is calling: a node by its certificate, else the bearer token's owner.
  absl::StatusOr<auth::Principal> Identify(const grpc::AuthContext* auth,
                                           std::string_view authorization) const;
  // The method-level decision (no tenant yet); records a denial.
  absl::Status CheckMethod(std::string_view full_method, const auth::Principal* p,
                           const absl::Status& identified) const;
  void Audit(const auth::Principal* p, std::string_view method, std::string_view tenant,
             std::string_view object, const absl::Status& st) const;
  IdentityManager* ids() const { return ids_; }

  // Runs before every handler (default deny for methods without a row).
  std::shared_ptr<grpc::AuthMetadataProcessor> MakeProcessor() const;

 private:
  IdentityManager* ids_;
};

// One call's authorization, opened first thing in a handler.
class Call {
 public:
  // With `request`: once the caller is known, the request is validated too
  // (controller/validate.h): INVALID_ARGUMENT naming the field.
  Call(const Authorizer* a, const grpc::ServerContextBase* ctx, std::string_view full_method,
       const google::protobuf::Message* request = nullptr);
  bool ok() const { return status_.ok(); }
  grpc::Status status() const;
  const auth::Principal& principal() const { return principal_; }
  // The method's permission in `tenant` (audited when denied). `object`
  // names what the call is about, for the audit trail ("job 12").
  absl::Status Allow(std::string_view tenant, std::string_view object);
  // Whether the caller may read `r` in `tenant` (filters lists; not audited).
  bool CanRead(auth::Resource r, std::string_view tenant) const;
  // Ends the call: audits a mutating call's outcome (and any failure of
  // one), converts the status.
  grpc::Status Done(const absl::Status& st);
  void set_object(std::string_view tenant, std::string_view object) {
    tenant_ = tenant;
    object_ = object;
  }

 private:
  const Authorizer* a_;
  const MethodRule* rule_;
  std::string method_;
  absl::Status status_;
  auth::Principal principal_;
  std::string tenant_, object_;
  bool audited_ = false;
};

}  // namespace meridian::controller
