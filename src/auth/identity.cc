#include "auth/identity.h"

#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace meridian::auth {

bool ValidName(std::string_view name) { return IsValidName(name); }

absl::StatusOr<RoleBinding> ParseRoleBinding(std::string_view text) {
  if (text == "admin") return RoleBinding{Role::kAdmin, ""};
  if (text == "operator") return RoleBinding{Role::kOperator, ""};
  if (text == "gateway") return RoleBinding{Role::kGateway, ""};
  for (auto [prefix, role] : {std::pair{std::string_view("member:"), Role::kMember},
                              std::pair{std::string_view("viewer:"), Role::kViewer}}) {
    if (text.substr(0, prefix.size()) != prefix) continue;
    std::string_view tenant = text.substr(prefix.size());
    if (!ValidName(tenant))
      return absl::InvalidArgumentError(absl::StrCat(
          "role '", std::string(text.substr(0, 80)), "': tenant must match [a-z0-9][a-z0-9._-]{0,62}"));
    return RoleBinding{role, std::string(tenant)};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", std::string(text.substr(0, 80)),
                   "': expected admin, operator, gateway, member:TENANT or viewer:TENANT"));
}

std::string FormatRoleBinding(const RoleBinding& b) {
  switch (b.role) {
    case Role::kAdmin: return "admin";
    case Role::kOperator: return "operator";
    case Role::kGateway: return "gateway";
    case Role::kMember: return absl::StrCat("member:", b.tenant);
    case Role::kViewer: return absl::StrCat("viewer:", b.tenant);
  }
  return "?";
}

std::string Principal::Describe() const {
  switch (kind) {
    case PrincipalKind::kAnonymous: return "anonymous";
    case PrincipalKind::kUser: return absl::StrCat("user:", name);
    case PrincipalKind::kServiceAccount: return absl::StrCat("sa:", name);
    case PrincipalKind::kNode: return absl::StrCat("node:", name);
    case PrincipalKind::kController: return "controller";
  }
  return "?";
}

namespace {

// One binding's grant. `tenant` empty: any tenant.
bool Grants(const RoleBinding& b, Resource r, Action a, std::string_view tenant) {
  bool tenant_ok = tenant.empty() || b.tenant == tenant;
  switch (b.role) {
    case Role::kAdmin:
      return r != Resource::kAgent;
    case Role::kOperator:
      if (r == Resource::kNodes || r == Resource::kRegions) return true;
      return a == Action::kRead && (r == Resource::kJobs || r == Resource::kEndpoints);
    case Role::kGateway:
      if (r == Resource::kLoad) return true;
      return a == Action::kRead && (r == Resource::kEndpoints || r == Resource::kEndpointTokens ||
                                    r == Resource::kRegions);
    case Role::kMember:
      if (r == Resource::kNodes || r == Resource::kRegions) return a == Action::kRead;
      if (r == Resource::kJobs || r == Resource::kEndpoints || r == Resource::kSecrets)
        return tenant_ok;
      return false;
    case Role::kViewer:
      if (r == Resource::kNodes || r == Resource::kRegions) return a == Action::kRead;
      if (r == Resource::kJobs || r == Resource::kEndpoints)
        return a == Action::kRead && tenant_ok;
      return false;
  }
  return false;
}

}  // namespace

bool Allowed(const Principal& p, Resource resource, Action action, std::string_view tenant) {
  if (p.kind == PrincipalKind::kNode) return resource == Resource::kAgent;
  if (p.kind == PrincipalKind::kController || p.kind == PrincipalKind::kAnonymous) return false;
  for (const RoleBinding& b : p.roles)
    if (Grants(b, resource, action, tenant)) return true;
  return false;
}

bool ReadsAllTenants(const Principal& p, Resource resource) {
  if (p.kind != PrincipalKind::kUser && p.kind != PrincipalKind::kServiceAccount) return false;
  for (const RoleBinding& b : p.roles) {
    if (b.role == Role::kMember || b.role == Role::kViewer) continue;
    if (Grants(b, resource, Action::kRead, "")) return true;
  }
  return false;
}

}  // namespace meridian::auth
