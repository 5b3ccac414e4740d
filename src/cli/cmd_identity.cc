// `meridian user`, `meridian token`, `meridian secret`, `meridian audit` and
// `meridian whoami`: identities, credentials, tenants' secrets and the audit
// trail on a running controller (docs/security.md).
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/client.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"
#include "spec/quantities.h"

namespace meridian::cli {
namespace {

std::function<int()>* g_id_action = nullptr;

struct IdArgs {
  ClientConfig client;
  std::string name;
  std::vector<std::string> roles;
  bool service_account = false;
  std::string user;
  std::string ttl;
  std::string description;
  bool join = false;
  std::string node;
  std::string tenant;
  std::string from_file;
  std::string since;
  uint32_t limit = 0;
};

int Resolve(ClientConfig* c, const std::string& what) {
  if (absl::Status s = ResolveClient(c); !s.ok()) {
    std::fprintf(stderr, "meridian %s: %s\n", what.c_str(), std::string(s.message()).c_str());
    return kExitInvalid;
  }
  return kExitOk;
}

// One call to the controller for command `what`: resolves the client,
// makes the stub, sends `req` with the token and deadline. The exit code of
// a failure (printed), or kExitOk with *resp filled.
template <typename Service, typename Method, typename Req, typename Resp>
int Rpc(ClientConfig* c, const std::string& what, Method method, const Req& req, Resp* resp) {
  if (int rc = Resolve(c, what); rc != kExitOk) return rc;
  auto stub = Service::NewStub(rpc::Connect(c->controller, c->security));
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, c->token, c->timeout_s);
  grpc::Status st = ((*stub).*method)(&ctx, req, resp);
  return st.ok() ? kExitOk : Fail(what, st);
}

std::string Time(double unix_s) {
  if (unix_s <= 0) return "never";
  std::time_t t = static_cast<std::time_t>(unix_s);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// "30d", "12h", "90s" or seconds; "" is 0.
absl::StatusOr<double> Seconds(const std::string& text, const char* flag) {
  if (text.empty()) return 0.0;
  absl::StatusOr<double> s = spec::internal::ParseDurationSeconds(text);
  if (!s.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", s.status().message(), " (e.g. 90s, 30m, 12h, 30d)"));
  return *s;
}

int UserCreate(IdArgs a) {
  v1::CreateUserRequest req;
  req.set_name(a.name);
  for (const std::string& r : a.roles) req.add_roles(r);
  req.set_service_account(a.service_account);
  v1::User u;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "user create",
                                        &v1::IdentityService::Stub::CreateUser, req, &u);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(u).c_str());
  } else {
    std::printf("%s %s created with roles: %s\n", u.service_account() ? "service account" : "user",
                u.name().c_str(),
                u.roles().empty() ? "none" : absl::StrJoin(u.roles(), ", ").c_str());
    std::printf("next: meridian token create --user %s --ttl 30d\n", u.name().c_str());
  }
  return kExitOk;
}

int UserList(IdArgs a) {
  v1::ListUsersResponse resp;
  v1::ListUsersRequest req;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "user list",
                                        &v1::IdentityService::Stub::ListUsers, req, &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "KIND", "ROLES", "CREATED"}};
  for (const v1::User& u : resp.users())
    rows.push_back({u.name(), u.service_account() ? "service account" : "user",
                    u.roles().empty() ? "-" : absl::StrJoin(u.roles(), ","), Time(u.created_at())});
  PrintTable(rows);
  return kExitOk;
}

int TokenCreate(IdArgs a) {
  absl::StatusOr<double> ttl = Seconds(a.ttl, "--ttl");
  if (!ttl.ok()) {
    std::fprintf(stderr, "meridian token create: %s\n",
                 std::string(ttl.status().message()).c_str());
    return kExitInvalid;
  }
  if (a.join) {
    if (a.node.empty()) {
      std::fprintf(stderr, "meridian token create: --join needs --node NAME\n");
      return kExitInvalid;
    }
    v1::CreateJoinTokenRequest req;
    req.set_node(a.node);
    req.set_ttl_s(*ttl);
    v1::CreateJoinTokenResponse resp;
    if (int rc = Rpc<v1::IdentityService>(&a.client, "token create",
                                          &v1::IdentityService::Stub::CreateJoinToken, req, &resp);
        rc != kExitOk)
      return rc;
    if (a.client.output == "json") {
      std::printf("%s\n", ToJson(resp).c_str());
    } else {
      std::printf("%s\n", resp.token().c_str());
      std::fprintf(stderr,
                   "one-time join token for node %s, valid until %s; start the agent with "
                   "--join-token-file FILE\n",
                   a.node.c_str(), Time(resp.expires_at()).c_str());
    }
    return kExitOk;
  }
  if (a.user.empty()) {
    std::fprintf(stderr, "meridian token create: --user USER is required (or --join --node N)\n");
    return kExitInvalid;
  }
  v1::CreateTokenRequest req;
  req.set_user(a.user);
  req.set_ttl_s(*ttl);
  req.set_description(a.description);
  v1::CreateTokenResponse resp;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "token create",
                                        &v1::IdentityService::Stub::CreateToken, req, &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
  } else {
    std::printf("%s\n", resp.secret().c_str());
    std::fprintf(stderr,
                 "token %s for %s, expires %s. It is shown only now: the controller keeps a "
                 "salted hash. Use it as MERIDIAN_TOKEN or with --token-file.\n",
                 resp.token().id().c_str(), a.user.c_str(),
                 Time(resp.token().expires_at()).c_str());
  }
  return kExitOk;
}

int TokenList(IdArgs a) {
  v1::ListTokensRequest req;
  req.set_user(a.user);
  v1::ListTokensResponse resp;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "token list",
                                        &v1::IdentityService::Stub::ListTokens, req, &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "USER", "CREATED", "EXPIRES", "STATE", "DESCRIPTION"}};
  for (const v1::Token& t : resp.tokens())
    rows.push_back({t.id(), t.user(), Time(t.created_at()), Time(t.expires_at()),
                    t.revoked() ? "revoked" : "active", t.description()});
  PrintTable(rows);
  return kExitOk;
}

int TokenRevoke(IdArgs a) {
  v1::RevokeTokenRequest req;
  req.set_id(a.name);
  v1::Token t;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "token revoke",
                                        &v1::IdentityService::Stub::RevokeToken, req, &t);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json")
    std::printf("%s\n", ToJson(t).c_str());
  else
    std::printf("token %s of %s revoked\n", t.id().c_str(), t.user().c_str());
  return kExitOk;
}

int SecretCreate(IdArgs a) {
  std::string value;
  if (a.from_file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    value = ss.str();
  } else {
    absl::StatusOr<std::string> v = rpc::ReadFile(a.from_file);
    if (!v.ok()) {
      std::fprintf(stderr, "meridian secret create: --from-file: %s\n",
                   std::string(v.status().message()).c_str());
      return kExitInvalid;
    }
    value = *v;
  }
  v1::CreateSecretRequest req;
  req.set_tenant(a.tenant);
  req.set_name(a.name);
  req.set_value(value);
  v1::Secret s;
  if (int rc = Rpc<v1::SecretService>(&a.client, "secret create", &v1::SecretService::Stub::Create,
                                      req, &s);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json")
    std::printf("%s\n", ToJson(s).c_str());
  else
    std::printf(
        "secret %s of tenant %s stored (%lld bytes, sealed); use it in a spec as\n"
        "  env: {NAME: {secret: %s}}\n",
        s.name().c_str(), s.tenant().c_str(), static_cast<long long>(s.size()), s.name().c_str());
  return kExitOk;
}

int SecretList(IdArgs a) {
  v1::ListSecretsRequest req;
  req.set_tenant(a.tenant);
  v1::ListSecretsResponse resp;
  if (int rc = Rpc<v1::SecretService>(&a.client, "secret list", &v1::SecretService::Stub::List, req,
                                      &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"TENANT", "NAME", "BYTES", "CREATED"}};
  for (const v1::Secret& s : resp.secrets())
    rows.push_back({s.tenant(), s.name(), absl::StrCat(s.size()), Time(s.created_at())});
  PrintTable(rows);
  return kExitOk;
}

int SecretDelete(IdArgs a) {
  v1::DeleteSecretRequest req;
  req.set_tenant(a.tenant);
  req.set_name(a.name);
  v1::Secret s;
  if (int rc = Rpc<v1::SecretService>(&a.client, "secret delete", &v1::SecretService::Stub::Delete,
                                      req, &s);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json")
    std::printf("%s\n", ToJson(s).c_str());
  else
    std::printf("secret %s of tenant %s deleted\n", s.name().c_str(), s.tenant().c_str());
  return kExitOk;
}

int AuditList(IdArgs a) {
  double since = 0;
  if (!a.since.empty()) {
    // A duration ago ("1h"), or seconds since the Unix epoch.
    absl::StatusOr<double> n = spec::internal::ParseNumber(a.since);
    if (n.ok() && *n > 1e9) {
      since = *n;
    } else {
      absl::StatusOr<double> ago = Seconds(a.since, "--since");
      if (!ago.ok()) {
        std::fprintf(stderr, "meridian audit list: %s\n",
                     std::string(ago.status().message()).c_str());
        return kExitInvalid;
      }
      since = static_cast<double>(std::time(nullptr)) - *ago;
    }
  }
  v1::ListAuditRequest req;
  req.set_identity(a.user);
  req.set_since(since);
  req.set_limit(a.limit);
  v1::ListAuditResponse resp;
  if (int rc =
          Rpc<v1::AuditService>(&a.client, "audit list", &v1::AuditService::Stub::List, req, &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"TIME", "IDENTITY", "TENANT", "METHOD", "OBJECT", "RESULT", "MESSAGE"}};
  for (const v1::AuditEvent& e : resp.events())
    rows.push_back({Time(e.time()), e.identity(), e.tenant().empty() ? "-" : e.tenant(), e.method(),
                    e.object().empty() ? "-" : e.object(), e.code(), e.message()});
  PrintTable(rows);
  return kExitOk;
}

int WhoAmI(IdArgs a) {
  v1::WhoAmIResponse resp;
  v1::WhoAmIRequest req;
  if (int rc = Rpc<v1::IdentityService>(&a.client, "whoami", &v1::IdentityService::Stub::WhoAmI,
                                        req, &resp);
      rc != kExitOk)
    return rc;
  if (a.client.output == "json")
    std::printf("%s\n", ToJson(resp).c_str());
  else
    std::printf("%s (roles: %s)\n", resp.identity().c_str(),
                resp.roles().empty() ? "none" : absl::StrJoin(resp.roles(), ", ").c_str());
  return kExitOk;
}

}  // namespace

void AddIdentityCommands(CLI::App& app, std::function<int()>* action) {
  g_id_action = action;
  static IdArgs ia;
  auto* user = app.add_subcommand("user", "Users and service accounts (admin)");
  user->require_subcommand(1);
  auto* uc = user->add_subcommand("create", "Create a user or service account with roles");
  AddClientFlags(uc, &ia.client);
  uc->add_option("name", ia.name, "User name ([a-z0-9][a-z0-9._-]*)")->required();
  uc->add_option("--role", ia.roles,
                 "admin, operator, gateway, member:TENANT or viewer:TENANT (repeat)");
  uc->add_flag("--service-account", ia.service_account, "A service account, not a person");
  uc->callback([] { *g_id_action = [] { return UserCreate(ia); }; });
  auto* ul = user->add_subcommand("list", "List users and their roles");
  AddClientFlags(ul, &ia.client);
  ul->callback([] { *g_id_action = [] { return UserList(ia); }; });

  auto* token = app.add_subcommand("token", "Bearer tokens of users, join tokens of nodes (admin)");
  token->require_subcommand(1);
  auto* tc = token->add_subcommand("create", "Create a token (printed once)");
  AddClientFlags(tc, &ia.client);
  tc->add_option("--user", ia.user, "Whose token");
  tc->add_option("--ttl", ia.ttl, "Lifetime: 90s, 12h, 30d (default: no expiry; join: 1h)");
  tc->add_option("--description", ia.description, "What the token is for");
  tc->add_flag("--join", ia.join, "A one-time join token for a node (with --node)");
  tc->add_option("--node", ia.node, "The node a join token is for");
  tc->callback([] { *g_id_action = [] { return TokenCreate(ia); }; });
  auto* tl = token->add_subcommand("list", "List tokens (never their secrets)");
  AddClientFlags(tl, &ia.client);
  tl->add_option("--user", ia.user, "Only this user's");
  tl->callback([] { *g_id_action = [] { return TokenList(ia); }; });
  auto* tr = token->add_subcommand("revoke", "Revoke a token by id");
  AddClientFlags(tr, &ia.client);
  tr->add_option("id", ia.name, "Token id (from token list)")->required();
  tr->callback([] { *g_id_action = [] { return TokenRevoke(ia); }; });

  auto* secret =
      app.add_subcommand("secret", "Tenants' secrets: sealed at rest, never shown again");
  secret->require_subcommand(1);
  auto* sc = secret->add_subcommand("create", "Store a secret for a tenant");
  AddClientFlags(sc, &ia.client);
  sc->add_option("name", ia.name, "Secret name ([a-z0-9][a-z0-9._-]*)")->required();
  sc->add_option("--tenant", ia.tenant, "Tenant that owns it")->required();
  sc->add_option("--from-file", ia.from_file, "File holding the value ('-': stdin)")->required();
  sc->callback([] { *g_id_action = [] { return SecretCreate(ia); }; });
  auto* sl = secret->add_subcommand("list", "List secrets (names and sizes only)");
  AddClientFlags(sl, &ia.client);
  sl->add_option("--tenant", ia.tenant, "Only this tenant's");
  sl->callback([] { *g_id_action = [] { return SecretList(ia); }; });
  auto* sd = secret->add_subcommand("delete", "Delete a secret");
  AddClientFlags(sd, &ia.client);
  sd->add_option("name", ia.name, "Secret name")->required();
  sd->add_option("--tenant", ia.tenant, "Tenant that owns it")->required();
  sd->callback([] { *g_id_action = [] { return SecretDelete(ia); }; });

  auto* audit = app.add_subcommand("audit", "The audit trail (admin)");
  audit->require_subcommand(1);
  auto* al = audit->add_subcommand("list", "Who did what: every change and every denied call");
  AddClientFlags(al, &ia.client);
  al->add_option("--user", ia.user, "Only this identity (alice, user:alice, node:n1)");
  al->add_option("--since", ia.since, "Only since: a duration ago (1h) or Unix seconds");
  al->add_option("--limit", ia.limit, "Newest N (default 1000)");
  al->callback([] { *g_id_action = [] { return AuditList(ia); }; });

  auto* who = app.add_subcommand("whoami", "The identity and roles of your token");
  AddClientFlags(who, &ia.client);
  who->callback([] { *g_id_action = [] { return WhoAmI(ia); }; });
}

}  // namespace meridian::cli
