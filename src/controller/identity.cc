#include "controller/identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "auth/crypto.h"
#include "nlohmann/json.hpp"

namespace meridian::controller {

namespace {

using Json = nlohmann::json;

constexpr size_t kIdHex = 12;      // token ids: 6 random bytes
constexpr size_t kSecretHex = 40;  // token secrets: 20 random bytes
constexpr size_t kMaxSecretBytes = 64 * 1024;

// "PREFIX_<id>_<secret>" -> id, secret.
bool SplitToken(std::string_view text, std::string_view* prefix, std::string* id,
                std::string* secret) {
  if (text.size() != 4 + kIdHex + 1 + kSecretHex || text[3] != '_' || text[4 + kIdHex] != '_')
    return false;
  *prefix = text.substr(0, 3);
  *id = std::string(text.substr(4, kIdHex));
  *secret = std::string(text.substr(5 + kIdHex));
  return *prefix == "mdt" || *prefix == "mdj" || *prefix == "mdn";
}

std::string Trunc(std::string_view s, size_t max = 80) {
  if (s.size() <= max) return std::string(s);
  return absl::StrCat(std::string(s.substr(0, max)), "...(", s.size(), " bytes)");
}

}  // namespace

IdentityManager::IdentityManager(IdentityOptions options, store::Store* store, const Clock* clock)
    : options_(std::move(options)), store_(store), clock_(clock) {
  if (!options_.audit_log.empty())
    audit_fd_ = ::open(options_.audit_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

std::string IdentityManager::UserJson(const UserEntry& u) {
  Json j;
  j["name"] = u.user.name();
  j["service_account"] = u.user.service_account();
  j["roles"] = Json::array();
  for (const std::string& r : u.user.roles()) j["roles"].push_back(r);
  j["created"] = u.user.created_at();
  return j.dump();
}

std::string IdentityManager::TokenJson(const TokenEntry& t) {
  Json j;
  j["id"] = t.token.id();
  j["user"] = t.token.user();
  j["kind"] = t.kind;
  j["salt"] = t.salt;
  j["hash"] = t.hash;
  j["created"] = t.token.created_at();
  j["expires"] = t.token.expires_at();
  j["revoked"] = t.token.revoked();
  j["description"] = t.token.description();
  return j.dump();
}

store::KvRecord IdentityManager::TokenRecord(const TokenEntry& t) const {
  return store::KvRecord{"token", t.token.id(), TokenJson(t), false};
}

absl::Status IdentityManager::Persist(store::Batch batch) { return store_->Write(std::move(batch)); }

absl::Status IdentityManager::Load(const store::Snapshot& snap) {
  if (options_.bootstrap_token.empty())
    return absl::InvalidArgumentError("identity: a bootstrap (admin) token is required");
  if (options_.secret_key.size() != 32)
    return absl::InvalidArgumentError("identity: the secret key must be 32 bytes");
  std::lock_guard<std::mutex> l(mu_);
  for (const store::KvRecord& r : snap.kv) {
    if (r.kind == "user") {
      Json j = Json::parse(r.value, nullptr, false);
      if (j.is_discarded()) return absl::DataLossError(absl::StrCat("store: user ", r.key));
      UserEntry u;
      u.user.set_name(j.value("name", r.key));
      u.user.set_service_account(j.value("service_account", false));
      u.user.set_created_at(j.value("created", 0.0));
      for (const auto& role : j.value("roles", Json::array())) {
        if (!role.is_string()) continue;
        absl::StatusOr<auth::RoleBinding> b = auth::ParseRoleBinding(role.get<std::string>());
        if (!b.ok()) continue;
        u.user.add_roles(role.get<std::string>());
        u.bindings.push_back(*b);
      }
      users_[u.user.name()] = std::move(u);
    } else if (r.kind == "token") {
      Json j = Json::parse(r.value, nullptr, false);
      if (j.is_discarded()) return absl::DataLossError(absl::StrCat("store: token ", r.key));
      TokenEntry t;
      t.token.set_id(r.key);
      t.token.set_user(j.value("user", ""));
      t.kind = j.value("kind", "user");
      t.salt = j.value("salt", "");
      t.hash = j.value("hash", "");
      t.token.set_created_at(j.value("created", 0.0));
      t.token.set_expires_at(j.value("expires", 0.0));
      t.token.set_revoked(j.value("revoked", false));
      t.token.set_description(j.value("description", ""));
      tokens_[r.key] = std::move(t);
    } else if (r.kind == "secret") {
      std::vector<std::string> parts = absl::StrSplit(r.key, absl::MaxSplits('/', 1));
      if (parts.size() != 2) continue;
      // value: "<created>|<size>|" + sealed bytes
      size_t a = r.value.find('|');
      size_t b = a == std::string::npos ? a : r.value.find('|', a + 1);
      if (b == std::string::npos) continue;
      SecretEntry e;
      e.meta.set_tenant(parts[0]);
      e.meta.set_name(parts[1]);
      e.meta.set_created_at(std::atof(r.value.substr(0, a).c_str()));
      e.meta.set_size(std::atoll(r.value.substr(a + 1, b - a - 1).c_str()));
      e.sealed = r.value.substr(b + 1);
      secrets_[r.key] = std::move(e);
    } else if (r.kind == "nodecred") {
      node_tokens_sealed_[r.key] = r.value;
    }
  }
  for (const store::AuditRecord& a : snap.audit) {
    v1::AuditEvent e;
    e.set_seq(a.seq);
    e.set_time(a.time_s);
    e.set_identity(a.identity);
    e.set_tenant(a.tenant);
    e.set_method(a.method);
    e.set_object(a.object);
    e.set_code(a.code);
    e.set_message(a.message);
    audit_.push_back(std::move(e));
    next_audit_ = std::max(next_audit_, a.seq + 1);
    if (audit_.size() > options_.max_audit_in_memory) audit_.pop_front();
  }
  // The admin user and the bootstrap token (its hash follows the token file).
  store::Batch batch;
  if (!users_.contains("admin")) {
    UserEntry u;
    u.user.set_name("admin");
    u.user.add_roles("admin");
    u.user.set_created_at(clock_->NowSeconds());
    u.bindings.push_back(auth::RoleBinding{auth::Role::kAdmin, ""});
    batch.kv.push_back(store::KvRecord{"user", "admin", UserJson(u), false});
    users_["admin"] = std::move(u);
  }
  auto it = tokens_.find("bootstrap");
  if (it == tokens_.end() ||
      !auth::SameDigest(auth::HashSecret(it->second.salt, options_.bootstrap_token),
                        it->second.hash)) {
    TokenEntry t;
    t.token.set_id("bootstrap");
    t.token.set_user("admin");
    t.token.set_created_at(clock_->NowSeconds());
    t.token.set_description("bootstrap token (the controller's token file)");
    t.salt = auth::RandomHex(16);
    t.hash = auth::HashSecret(t.salt, options_.bootstrap_token);
    batch.kv.push_back(TokenRecord(t));
    tokens_["bootstrap"] = std::move(t);
  }
  if (batch.empty()) return absl::OkStatus();
  return Persist(std::move(batch));
}

absl::StatusOr<auth::Principal> IdentityManager::Authenticate(std::string_view authorization) const {
  if (authorization.empty())
    return absl::UnauthenticatedError("missing bearer token (authorization metadata)");
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer)
    return absl::UnauthenticatedError("authorization metadata is not 'Bearer TOKEN'");
  std::string_view text = authorization.substr(kBearer.size());
  if (text.substr(0, 4) == "mdr_") return AuthenticateRun(text);
  std::string_view prefix;
  std::string id, secret;
  std::lock_guard<std::mutex> l(mu_);
  const TokenEntry* t = nullptr;
  if (SplitToken(text, &prefix, &id, &secret)) {
    auto it = tokens_.find(id);
    if (it != tokens_.end() && it->second.kind != "join" &&
        auth::SameDigest(auth::HashSecret(it->second.salt, secret), it->second.hash))
      t = &it->second;
  } else {
    auto it = tokens_.find("bootstrap");
    if (it != tokens_.end() &&
        auth::SameDigest(auth::HashSecret(it->second.salt, text), it->second.hash))
      t = &it->second;
  }
  if (t == nullptr) return absl::UnauthenticatedError("invalid bearer token");
  if (t->token.revoked())
    return absl::UnauthenticatedError(absl::StrCat("token ", t->token.id(), " was revoked"));
  if (t->token.expires_at() > 0 && clock_->NowSeconds() >= t->token.expires_at())
    return absl::UnauthenticatedError(absl::StrCat("token ", t->token.id(), " has expired"));
  auth::Principal p;
  p.token_id = t->token.id();
  if (t->kind == "node") {
    p.kind = auth::PrincipalKind::kNode;
    p.name = t->token.user();
    return p;
  }
  auto u = users_.find(t->token.user());
  if (u == users_.end())
    return absl::UnauthenticatedError(
        absl::StrCat("token ", t->token.id(), " belongs to no user"));
  p.kind = u->second.user.service_account() ? auth::PrincipalKind::kServiceAccount
                                            : auth::PrincipalKind::kUser;
  p.name = u->second.user.name();
  p.roles = u->second.bindings;
  return p;
}

std::string IdentityManager::RunToken(const std::string& run_key,
                                      const std::string& account) const {
  return absl::StrCat("mdr_", run_key, "_",
                      auth::HmacSha256Hex(options_.secret_key,
                                          absl::StrCat("run-token\n", run_key, "\n", account)));
}

absl::StatusOr<auth::Principal> IdentityManager::AuthenticateRun(std::string_view token) const {
  // mdr_<run key>_<64 hex>; run keys are j<id>-r<replica>-a<attempt>.
  constexpr size_t kMac = 64;
  if (token.size() < 4 + 1 + 1 + kMac || token.size() > 4 + 64 + 1 + kMac ||
      token[token.size() - kMac - 1] != '_')
    return absl::UnauthenticatedError("malformed run token");
  const std::string key(token.substr(4, token.size() - 4 - kMac - 1));
  std::optional<RunIdentity> run = run_lookup_ ? run_lookup_(key) : std::nullopt;
  if (!run)
    return absl::UnauthenticatedError(
        absl::StrCat("run token of ", Trunc(key), ": the run has ended or names no service account"));
  if (!auth::SameDigest(RunToken(key, run->account), token))
    return absl::UnauthenticatedError("invalid run token");
  std::lock_guard<std::mutex> l(mu_);
  auto u = users_.find(run->account);
  if (u == users_.end() || !u->second.user.service_account())
    return absl::UnauthenticatedError(
        absl::StrCat("run ", key, ": service account ", run->account, " does not exist"));
  auth::Principal p;
  p.kind = auth::PrincipalKind::kServiceAccount;
  p.name = run->account;
  p.token_id = absl::StrCat("run:", key);
  for (const auth::RoleBinding& b : u->second.bindings)
    if (!b.tenant.empty() && b.tenant == run->tenant) p.roles.push_back(b);
  return p;
}

absl::Status IdentityManager::CheckRunAccount(const std::string& account,
                                              const std::string& tenant) const {
  std::lock_guard<std::mutex> l(mu_);
  auto u = users_.find(account);
  if (u == users_.end())
    return absl::NotFoundError(absl::StrCat("service_account: no service account '",
                                            Trunc(account), "' (meridian user create ", Trunc(account),
                                            " --service-account --role member:", tenant, ")"));
  if (!u->second.user.service_account())
    return absl::InvalidArgumentError(absl::StrCat(
        "service_account: '", account, "' is a user, not a service account"));
  for (const auth::RoleBinding& b : u->second.bindings)
    if (!b.tenant.empty() && b.tenant == tenant) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("service_account: '", account,
                                                  "' has no role in tenant ", tenant,
                                                  " (a job's token acts only in its own tenant)"));
}

absl::StatusOr<v1::User> IdentityManager::CreateUser(const std::string& name,
                                                     const std::vector<std::string>& roles,
                                                     bool service_account) {
  if (!auth::ValidName(name))
    return absl::InvalidArgumentError(
        absl::StrCat("name '", Trunc(name), "': expected [a-z0-9][a-z0-9._-]{0,62}"));
  if (roles.size() > 64) return absl::InvalidArgumentError("roles: at most 64");
  UserEntry u;
  u.user.set_name(name);
  u.user.set_service_account(service_account);
  u.user.set_created_at(clock_->NowSeconds());
  for (const std::string& r : roles) {
    absl::StatusOr<auth::RoleBinding> b = auth::ParseRoleBinding(r);
    if (!b.ok()) return b.status();
    u.bindings.push_back(*b);
    u.user.add_roles(auth::FormatRoleBinding(*b));
  }
  store::Batch batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (users_.contains(name))
      return absl::AlreadyExistsError(absl::StrCat("user ", name, " already exists"));
    batch.kv.push_back(store::KvRecord{"user", name, UserJson(u), false});
  }
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  users_[name] = u;
  return u.user;
}

std::vector<v1::User> IdentityManager::ListUsers() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::User> out;
  for (const auto& [name, u] : users_) out.push_back(u.user);
  return out;
}

absl::StatusOr<v1::CreateTokenResponse> IdentityManager::CreateToken(const std::string& user,
                                                                     double ttl_s,
                                                                     const std::string& description) {
  if (!(ttl_s >= 0) || ttl_s > 10 * 365 * 86400.0)
    return absl::InvalidArgumentError("ttl: expected 0 (never) up to 10 years, in seconds");
  if (description.size() > 256) return absl::InvalidArgumentError("description: at most 256 bytes");
  TokenEntry t;
  std::string secret = auth::RandomHex(kSecretHex / 2);
  t.token.set_id(auth::RandomHex(kIdHex / 2));
  t.token.set_user(user);
  t.token.set_created_at(clock_->NowSeconds());
  t.token.set_expires_at(ttl_s > 0 ? clock_->NowSeconds() + ttl_s : 0);
  t.token.set_description(description);
  t.salt = auth::RandomHex(16);
  t.hash = auth::HashSecret(t.salt, secret);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!users_.contains(user))
      return absl::NotFoundError(absl::StrCat("user '", Trunc(user), "' does not exist"));
  }
  store::Batch batch;
  batch.kv.push_back(TokenRecord(t));
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  v1::CreateTokenResponse resp;
  *resp.mutable_token() = t.token;
  resp.set_secret(absl::StrCat("mdt_", t.token.id(), "_", secret));
  std::lock_guard<std::mutex> l(mu_);
  tokens_[t.token.id()] = std::move(t);
  return resp;
}

std::vector<v1::Token> IdentityManager::ListTokens(const std::string& user) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::Token> out;
  for (const auto& [id, t] : tokens_)
    if (t.kind == "user" && (user.empty() || t.token.user() == user)) out.push_back(t.token);
  return out;
}

absl::StatusOr<v1::Token> IdentityManager::RevokeToken(const std::string& id) {
  TokenEntry copy;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end() || it->second.kind == "join")
      return absl::NotFoundError(absl::StrCat("token '", Trunc(id), "' does not exist"));
    copy = it->second;
  }
  copy.token.set_revoked(true);
  store::Batch batch;
  batch.kv.push_back(TokenRecord(copy));
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  tokens_[id] = copy;
  return copy.token;
}

absl::StatusOr<v1::CreateJoinTokenResponse> IdentityManager::CreateJoinToken(
    const std::string& node, double ttl_s) {
  if (!auth::ValidName(node))
    return absl::InvalidArgumentError(
        absl::StrCat("node '", Trunc(node), "': expected [a-z0-9][a-z0-9._-]{0,62}"));
  if (!(ttl_s >= 0) || ttl_s > 30 * 86400.0)
    return absl::InvalidArgumentError("ttl: expected 0 (one hour) up to 30 days, in seconds");
  if (ttl_s == 0) ttl_s = 3600;
  TokenEntry t;
  std::string secret = auth::RandomHex(kSecretHex / 2);
  t.kind = "join";
  t.token.set_id(auth::RandomHex(kIdHex / 2));
  t.token.set_user(node);
  t.token.set_created_at(clock_->NowSeconds());
  t.token.set_expires_at(clock_->NowSeconds() + ttl_s);
  t.salt = auth::RandomHex(16);
  t.hash = auth::HashSecret(t.salt, secret);
  store::Batch batch;
  batch.kv.push_back(TokenRecord(t));
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  v1::CreateJoinTokenResponse resp;
  resp.set_token(absl::StrCat("mdj_", t.token.id(), "_", secret));
  resp.set_expires_at(t.token.expires_at());
  std::lock_guard<std::mutex> l(mu_);
  tokens_[t.token.id()] = std::move(t);
  return resp;
}

absl::Status IdentityManager::ConsumeJoinToken(const std::string& node, std::string_view token) {
  std::string_view prefix;
  std::string id, secret;
  TokenEntry copy;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!SplitToken(token, &prefix, &id, &secret) || prefix != "mdj")
      return absl::UnauthenticatedError("join token: malformed");
    auto it = tokens_.find(id);
    if (it == tokens_.end() || it->second.kind != "join" ||
        !auth::SameDigest(auth::HashSecret(it->second.salt, secret), it->second.hash))
      return absl::UnauthenticatedError("join token: invalid");
    if (it->second.token.revoked()) return absl::UnauthenticatedError("join token: already used");
    if (clock_->NowSeconds() >= it->second.token.expires_at())
      return absl::UnauthenticatedError("join token: expired");
    if (it->second.token.user() != node)
      return absl::PermissionDeniedError(
          absl::StrCat("join token: issued for node ", it->second.token.user(), ", not ",
                       Trunc(node)));
    it->second.token.set_revoked(true);  // spent now, so a second use races to nothing
    copy = it->second;
  }
  store::Batch batch;
  batch.kv.push_back(TokenRecord(copy));
  return Persist(std::move(batch));
}

absl::StatusOr<std::string> IdentityManager::IssueNodeToken(const std::string& node) {
  TokenEntry t;
  std::string secret = auth::RandomHex(kSecretHex / 2);
  t.kind = "node";
  t.token.set_id(auth::RandomHex(kIdHex / 2));
  t.token.set_user(node);
  t.token.set_created_at(clock_->NowSeconds());
  t.salt = auth::RandomHex(16);
  t.hash = auth::HashSecret(t.salt, secret);
  std::string text = absl::StrCat("mdn_", t.token.id(), "_", secret);
  std::string sealed = auth::Seal(options_.secret_key, text, absl::StrCat("nodecred/", node));
  store::Batch batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, old] : tokens_)  // a node holds one token: earlier ones stop working
      if (old.kind == "node" && old.token.user() == node && !old.token.revoked()) {
        old.token.set_revoked(true);
        batch.kv.push_back(TokenRecord(old));
      }
  }
  batch.kv.push_back(TokenRecord(t));
  batch.kv.push_back(store::KvRecord{"nodecred", node, sealed, false});
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  tokens_[t.token.id()] = std::move(t);
  node_tokens_sealed_[node] = sealed;
  return text;
}

absl::StatusOr<std::string> IdentityManager::NodeToken(const std::string& node) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = node_tokens_sealed_.find(node);
  if (it == node_tokens_sealed_.end())
    return absl::NotFoundError(absl::StrCat("node ", node, " holds no node token"));
  return auth::Open(options_.secret_key, it->second, absl::StrCat("nodecred/", node));
}

absl::StatusOr<v1::Secret> IdentityManager::CreateSecret(const std::string& tenant,
                                                         const std::string& name,
                                                         const std::string& value) {
  if (!auth::ValidName(tenant))
    return absl::InvalidArgumentError(
        absl::StrCat("tenant '", Trunc(tenant), "': expected [a-z0-9][a-z0-9._-]{0,62}"));
  if (!auth::ValidName(name))
    return absl::InvalidArgumentError(
        absl::StrCat("name '", Trunc(name), "': expected [a-z0-9][a-z0-9._-]{0,62}"));
  if (value.size() > kMaxSecretBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("value: ", value.size(), " bytes; a secret holds at most ", kMaxSecretBytes));
  if (value.find('\0') != std::string::npos)
    return absl::InvalidArgumentError("value: contains a NUL byte (secrets become environment "
                                      "variables)");
  std::string key = absl::StrCat(tenant, "/", name);
  SecretEntry e;
  e.meta.set_tenant(tenant);
  e.meta.set_name(name);
  e.meta.set_created_at(clock_->NowSeconds());
  e.meta.set_size(static_cast<int64_t>(value.size()));
  e.sealed = auth::Seal(options_.secret_key, value, absl::StrCat("secret/", key));
  store::Batch batch;
  batch.kv.push_back(store::KvRecord{
      "secret", key, absl::StrCat(e.meta.created_at(), "|", e.meta.size(), "|", e.sealed), false});
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  secrets_[key] = e;
  return e.meta;
}

std::vector<v1::Secret> IdentityManager::ListSecrets(const std::string& tenant) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::Secret> out;
  for (const auto& [key, e] : secrets_)
    if (tenant.empty() || e.meta.tenant() == tenant) out.push_back(e.meta);
  return out;
}

absl::StatusOr<v1::Secret> IdentityManager::DeleteSecret(const std::string& tenant,
                                                         const std::string& name) {
  std::string key = absl::StrCat(tenant, "/", name);
  v1::Secret meta;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = secrets_.find(key);
    if (it == secrets_.end())
      return absl::NotFoundError(absl::StrCat("secret '", Trunc(name), "' of tenant '",
                                              Trunc(tenant), "' does not exist"));
    meta = it->second.meta;
  }
  store::Batch batch;
  batch.kv.push_back(store::KvRecord{"secret", key, "", true});
  if (absl::Status st = Persist(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  secrets_.erase(key);
  return meta;
}

absl::StatusOr<std::string> IdentityManager::SecretValue(const std::string& tenant,
                                                         const std::string& name) const {
  std::string key = absl::StrCat(tenant, "/", name);
  std::string sealed;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = secrets_.find(key);
    if (it == secrets_.end())
      return absl::NotFoundError(absl::StrCat("secret '", Trunc(name), "' of tenant '",
                                              Trunc(tenant), "' does not exist"));
    sealed = it->second.sealed;
  }
  return auth::Open(options_.secret_key, sealed, absl::StrCat("secret/", key));
}

void IdentityManager::Audit(store::AuditRecord record) {
  if (record.time_s == 0) record.time_s = clock_->NowSeconds();
  record.message = Trunc(record.message, 300);
  record.object = Trunc(record.object, 200);
  v1::AuditEvent e;
  {
    std::lock_guard<std::mutex> l(mu_);
    e.set_seq(next_audit_++);
    e.set_time(record.time_s);
    e.set_identity(record.identity);
    e.set_tenant(record.tenant);
    e.set_method(record.method);
    e.set_object(record.object);
    e.set_code(record.code);
    e.set_message(record.message);
    audit_.push_back(e);
    if (audit_.size() > options_.max_audit_in_memory) audit_.pop_front();
  }
  if (audit_fd_ >= 0) {
    Json j;
    j["seq"] = e.seq();
    j["time"] = e.time();
    j["identity"] = e.identity();
    j["tenant"] = e.tenant();
    j["method"] = e.method();
    j["object"] = e.object();
    j["code"] = e.code();
    j["message"] = e.message();
    std::string line = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    std::lock_guard<std::mutex> l(audit_file_mu_);
    (void)!::write(audit_fd_, line.data(), line.size());
  }
  store::Batch batch;
  batch.audit.push_back(std::move(record));
  store_->Enqueue(std::move(batch), nullptr);
}

std::vector<v1::AuditEvent> IdentityManager::ListAudit(const std::string& identity, double since,
                                                       size_t limit) const {
  if (limit == 0) limit = 1000;
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::AuditEvent> out;
  for (auto it = audit_.rbegin(); it != audit_.rend() && out.size() < limit; ++it) {
    if (since > 0 && it->time() < since) break;
    if (!identity.empty()) {
      const std::string& id = it->identity();
      size_t colon = id.find(':');
      bool match = id == identity || (colon != std::string::npos && id.substr(colon + 1) == identity);
      if (!match) continue;
    }
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace meridian::controller
