// Identities and roles: who a caller is (Principal) and what its role
// bindings let it do (Allowed). Pure functions and values; no I/O.
//
// Roles (docs/security.md):
//   admin            everything on the user API, any tenant
//   operator         nodes: read, cordon, drain; jobs and endpoints of every tenant: read
//   member:TENANT    jobs, endpoints, secrets and logs of TENANT: read and write
//   viewer:TENANT    jobs, endpoints and logs of TENANT: read
//   gateway          endpoints of every tenant with their client tokens: read; load reports
// Every authenticated user may list nodes and regions (capacity is not a secret
// between tenants of one cluster). Nodes (agents) hold no role: the agent
// protocol is allowed only to a node's own credential, and only for itself.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace meridian::auth {

enum class Role { kAdmin, kOperator, kMember, kViewer, kGateway };

struct RoleBinding {
  Role role = Role::kViewer;
  std::string tenant;  // member and viewer only; empty otherwise
  bool operator==(const RoleBinding&) const = default;
};

// "admin", "operator", "gateway", "member:TENANT", "viewer:TENANT".
absl::StatusOr<RoleBinding> ParseRoleBinding(std::string_view text);
std::string FormatRoleBinding(const RoleBinding& b);

// A tenant, user or secret name: [a-z0-9][a-z0-9._-]{0,62}.
bool ValidName(std::string_view name);

enum class PrincipalKind { kAnonymous, kUser, kServiceAccount, kNode, kController };

struct Principal {
  PrincipalKind kind = PrincipalKind::kAnonymous;
  std::string name;  // user, service account or node name
  std::vector<RoleBinding> roles;
  std::string token_id;  // the token it authenticated with (users, service accounts)
  // "user:alice", "sa:gw", "node:n1", "controller", "anonymous".
  std::string Describe() const;
};

enum class Resource {
  kJobs,
  kEndpoints,
  kEndpointTokens,  // endpoints' client tokens (gateways)
  kSecrets,
  kNodes,
  kRegions,
  kIdentity,  // users and tokens
  kAudit,
  kLoad,   // gateways' load reports
  kAgent,  // the agent protocol (nodes only)
};
enum class Action { kRead, kWrite };

// Whether `p` may do `action` on `resource` of `tenant`. An empty tenant
// asks "in any tenant at all" (used before the request names one).
bool Allowed(const Principal& p, Resource resource, Action action, std::string_view tenant);

// Whether `p` may read `resource` in every tenant (lists need no filtering).
bool ReadsAllTenants(const Principal& p, Resource resource);

}  // namespace meridian::auth
