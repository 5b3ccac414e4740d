#include "controller/authz.h"

#include "absl/strings/str_cat.h"
#include "controller/validate.h"
#include "rpc/rpc.h"

namespace meridian::controller {

namespace {

using auth::Action;
using auth::Resource;
using Who = MethodRule::Who;

const std::vector<MethodRule>& Table() {
  static const std::vector<MethodRule> kRules = {
      {"/meridian.v1.JobService/Submit", Resource::kJobs, Action::kWrite},
      {"/meridian.v1.JobService/Get", Resource::kJobs, Action::kRead},
      {"/meridian.v1.JobService/List", Resource::kJobs, Action::kRead},
      {"/meridian.v1.JobService/Cancel", Resource::kJobs, Action::kWrite},
      {"/meridian.v1.JobService/Watch", Resource::kJobs, Action::kRead},
      {"/meridian.v1.JobService/Logs", Resource::kJobs, Action::kRead},
      {"/meridian.v1.EndpointService/Apply", Resource::kEndpoints, Action::kWrite},
      {"/meridian.v1.EndpointService/Get", Resource::kEndpoints, Action::kRead},
      {"/meridian.v1.EndpointService/List", Resource::kEndpoints, Action::kRead},
      {"/meridian.v1.EndpointService/Delete", Resource::kEndpoints, Action::kWrite},
      {"/meridian.v1.EndpointService/ReportLoad", Resource::kLoad, Action::kWrite},
      {"/meridian.v1.NodeService/List", Resource::kNodes, Action::kRead},
      {"/meridian.v1.NodeService/Cordon", Resource::kNodes, Action::kWrite},
      {"/meridian.v1.NodeService/Drain", Resource::kNodes, Action::kWrite},
      {"/meridian.v1.RegionService/List", Resource::kRegions, Action::kRead},
      {"/meridian.v1.AgentService/Join", Resource::kAgent, Action::kWrite, Who::kJoin},
      {"/meridian.v1.AgentService/Register", Resource::kAgent, Action::kWrite, Who::kAgent},
      {"/meridian.v1.AgentService/Heartbeat", Resource::kAgent, Action::kWrite, Who::kAgent},
      {"/meridian.v1.AgentService/Connect", Resource::kAgent, Action::kWrite, Who::kAgent},
      {"/meridian.v1.IdentityService/CreateUser", Resource::kIdentity, Action::kWrite},
      {"/meridian.v1.IdentityService/ListUsers", Resource::kIdentity, Action::kRead},
      {"/meridian.v1.IdentityService/CreateToken", Resource::kIdentity, Action::kWrite},
      {"/meridian.v1.IdentityService/ListTokens", Resource::kIdentity, Action::kRead},
      {"/meridian.v1.IdentityService/RevokeToken", Resource::kIdentity, Action::kWrite},
      {"/meridian.v1.IdentityService/CreateJoinToken", Resource::kIdentity, Action::kWrite},
      {"/meridian.v1.IdentityService/WhoAmI", Resource::kIdentity, Action::kRead, Who::kAnyUser},
      {"/meridian.v1.SecretService/Create", Resource::kSecrets, Action::kWrite},
      {"/meridian.v1.SecretService/List", Resource::kSecrets, Action::kRead},
      {"/meridian.v1.SecretService/Delete", Resource::kSecrets, Action::kWrite},
      {"/meridian.v1.AuditService/List", Resource::kAudit, Action::kRead},
  };
  return kRules;
}

// "/meridian.v1.JobService/Cancel" -> "JobService/Cancel".
std::string ShortMethod(std::string_view full) {
  size_t dot = full.rfind('.', full.find('/', 1));
  if (full.size() > 200) full = full.substr(0, 200);
  if (dot == std::string_view::npos) return std::string(full);
  return std::string(full.substr(dot + 1));
}

bool IsUser(const auth::Principal& p) {
  return p.kind == auth::PrincipalKind::kUser || p.kind == auth::PrincipalKind::kServiceAccount;
}

class Processor final : public grpc::AuthMetadataProcessor {
 public:
  explicit Processor(const Authorizer* a) : a_(a) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext* ctx, OutputMetadata*,
                       OutputMetadata*) override {
    auto path = md.find(":path");
    if (path == md.end()) return grpc::Status::OK;  // the handler's Call decides
    std::string_view method(path->second.data(), path->second.size());
    auto authz = md.find("authorization");
    std::string_view bearer;
    if (authz != md.end()) bearer = std::string_view(authz->second.data(), authz->second.size());
    absl::StatusOr<auth::Principal> p = a_->Identify(ctx, bearer);
    absl::Status st = a_->CheckMethod(method, p.ok() ? &*p : nullptr, p.status());
    return rpc::ToGrpc(st);
  }

 private:
  const Authorizer* a_;
};

}  // namespace

const MethodRule* FindRule(std::string_view full_method) {
  for (const MethodRule& r : Table())
    if (r.method == full_method) return &r;
  return nullptr;
}

const std::vector<MethodRule>& AllRules() { return Table(); }

absl::StatusOr<auth::Principal> Authorizer::Identify(const grpc::AuthContext* auth,
                                                     std::string_view authorization) const {
  if (auth != nullptr) {
    std::string cn = rpc::PeerCommonName(*auth);
    if (cn.rfind("node:", 0) == 0 && cn.size() > 5) {
      auth::Principal p;
      p.kind = auth::PrincipalKind::kNode;
      p.name = cn.substr(5);
      return p;
    }
  }
  return ids_->Authenticate(authorization);
}

void Authorizer::Audit(const auth::Principal* p, std::string_view method, std::string_view tenant,
                       std::string_view object, const absl::Status& st) const {
  store::AuditRecord r;
  r.identity = p != nullptr ? p->Describe() : "anonymous";
  r.tenant = std::string(tenant);
  r.method = ShortMethod(method);
  r.object = std::string(object);
  r.code = absl::StatusCodeToString(st.code());
  r.message = std::string(st.message());
  ids_->Audit(std::move(r));
}

absl::Status Authorizer::CheckMethod(std::string_view method, const auth::Principal* p,
                                     const absl::Status& identified) const {
  const MethodRule* rule = FindRule(method);
  absl::Status st;
  if (rule == nullptr) {
    st = absl::PermissionDeniedError(
        absl::StrCat("method ", ShortMethod(method), " is not in the authorization table"));
  } else if (rule->who == Who::kJoin) {
    return absl::OkStatus();  // the join token in the request is the credential
  } else if (p == nullptr) {
    st = identified.ok() ? absl::UnauthenticatedError("no credential") : identified;
  } else if (rule->who == Who::kAgent) {
    if (p->kind != auth::PrincipalKind::kNode)
      st = absl::PermissionDeniedError(absl::StrCat(
          ShortMethod(method), " is for node agents, with their node credential; ", p->Describe(),
          " is not one"));
  } else if (!IsUser(*p)) {
    st = absl::PermissionDeniedError(
        absl::StrCat(p->Describe(), " may call only the agent protocol"));
  } else if (rule->who == Who::kAnyUser) {
    return absl::OkStatus();
  } else if (!auth::Allowed(*p, rule->resource, rule->action, "")) {
    st = absl::PermissionDeniedError(absl::StrCat(
        p->Describe(), " may not call ", ShortMethod(method), " (no role grants it)"));
  }
  if (!st.ok()) Audit(p, method, "", "", st);
  return st;
}

std::shared_ptr<grpc::AuthMetadataProcessor> Authorizer::MakeProcessor() const {
  return std::make_shared<Processor>(this);
}

Call::Call(const Authorizer* a, const grpc::ServerContextBase* ctx, std::string_view full_method,
           const google::protobuf::Message* request)
    : a_(a), rule_(FindRule(full_method)), method_(full_method) {
  std::string_view bearer;
  auto it = ctx->client_metadata().find("authorization");
  if (it != ctx->client_metadata().end())
    bearer = std::string_view(it->second.data(), it->second.size());
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  absl::StatusOr<auth::Principal> p = a_->Identify(auth.get(), bearer);
  if (p.ok()) principal_ = *p;
  status_ = a_->CheckMethod(full_method, p.ok() ? &principal_ : nullptr, p.status());
  if (!status_.ok()) {
    audited_ = true;
    return;
  }
  if (request != nullptr) status_ = ValidateRequest(*request);
}

grpc::Status Call::status() const { return rpc::ToGrpc(status_); }

absl::Status Call::Allow(std::string_view tenant, std::string_view object) {
  tenant_ = tenant;
  object_ = object;
  if (!status_.ok()) return status_;
  if (rule_->who != Who::kRoles) return absl::OkStatus();
  if (auth::Allowed(principal_, rule_->resource, rule_->action, tenant)) return absl::OkStatus();
  status_ = absl::PermissionDeniedError(
      absl::StrCat(principal_.Describe(), " may not ",
                   rule_->action == auth::Action::kRead ? "read" : "change", " ", std::string(object),
                   tenant.empty() ? "" : absl::StrCat(" of tenant ", std::string(tenant))));
  a_->Audit(&principal_, method_, tenant_, object_, status_);
  audited_ = true;
  return status_;
}

bool Call::CanRead(auth::Resource r, std::string_view tenant) const {
  return status_.ok() && auth::Allowed(principal_, r, auth::Action::kRead, tenant);
}

grpc::Status Call::Done(const absl::Status& st) {
  // Beats and load reports come every second from every node and gateway:
  // their successes are not audited (their denials are).
  bool frequent = method_.ends_with("/Heartbeat") || method_.ends_with("/Connect") ||
                  method_.ends_with("/ReportLoad");
  bool mutating = rule_ != nullptr && rule_->action == auth::Action::kWrite && !frequent;
  if (!audited_ && (mutating || st.code() == absl::StatusCode::kPermissionDenied ||
                    st.code() == absl::StatusCode::kUnauthenticated)) {
    a_->Audit(&principal_, method_, tenant_, object_, st);
    audited_ = true;
  }
  return rpc::ToGrpc(st);
}

}  // namespace meridian::controller
