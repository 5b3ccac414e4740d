// IdentityManager: the controller's registry of who may call it — users and
// service accounts with their role bindings, bearer tokens (kept only as
// salted SHA-256 hashes), one-time join tokens for nodes, node tokens of
// --insecure clusters — plus tenants' secrets (sealed with AES-256-GCM under
// a key file of the data dir) and the audit trail.
//
// Everything is mirrored to the Store: identity and secret changes are
// durable before the call that made them answers (Store::Write); audit
// records are queued behind the change they describe (batches commit in
// order) and appended to `audit.log` (JSON lines) in the data dir.
//
// At first start the registry has one user, `admin` (role admin), whose
// token is the bootstrap token (the controller's token file).
//
// Thread-safe: one mutex guards the maps; it is never held across a store
// commit.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "auth/identity.h"
#include "core/clock.h"
#include "meridian/v1/meridian.pb.h"
#include "store/store.h"

namespace meridian::controller {

struct IdentityOptions {
  std::string bootstrap_token;  // the admin's token (required)
  std::string secret_key;       // 32 bytes: seals secrets at rest (required)
  std::string audit_log;        // JSON lines appended here; empty: none
  size_t max_audit_in_memory = 100000;  // newest kept for `audit list`
};

class IdentityManager {
 public:
  // `store` and `clock` must outlive the manager.
  IdentityManager(IdentityOptions options, store::Store* store, const Clock* clock);

  // Takes the users, tokens, secrets and audit of `snap`; makes sure the
  // admin user and the bootstrap token exist (durably).
  absl::Status Load(const store::Snapshot& snap);

  // ---- authentication ----
  // The principal of an `authorization` metadata value ("Bearer TOKEN").
  // UNAUTHENTICATED (missing, malformed, unknown, expired, revoked) names why.
  absl::StatusOr<auth::Principal> Authenticate(std::string_view authorization) const;

  // ---- users and tokens ----
  absl::StatusOr<v1::User> CreateUser(const std::string& name,
                                      const std::vector<std::string>& roles, bool service_account);
  std::vector<v1::User> ListUsers() const;
  absl::StatusOr<v1::CreateTokenResponse> CreateToken(const std::string& user, double ttl_s,
                                                      const std::string& description);
  std::vector<v1::Token> ListTokens(const std::string& user) const;
  absl::StatusOr<v1::Token> RevokeToken(const std::string& id);

  // ---- nodes ----
  absl::StatusOr<v1::CreateJoinTokenResponse> CreateJoinToken(const std::string& node,
                                                              double ttl_s);
  // Spends a join token for `node` (durably): UNAUTHENTICATED when it is not
  // a live, unused join token for that node.
  absl::Status ConsumeJoinToken(const std::string& node, std::string_view token);
  // --insecure clusters: a bearer token for `node` (replacing any earlier
  // one); its sealed copy is kept so the controller can present it to the
  // node's log service (NodeToken).
  absl::StatusOr<std::string> IssueNodeToken(const std::string& node);
  absl::StatusOr<std::string> NodeToken(const std::string& node) const;

  // ---- run tokens (`service_account:` in a job spec) ----
  // A live run's view of itself: the service account its job names and the
  // job's tenant. nullopt: no such live run, or its job names none.
  struct RunIdentity {
    std::string account;
    std::string tenant;
  };
  using RunLookup = std::function<std::optional<RunIdentity>(const std::string& run_key)>;
  // Set once, before serving (the controller answers from its job table).
  void SetRunLookup(RunLookup lookup) { run_lookup_ = std::move(lookup); }
  // The token a run acts with: "mdr_<run key>_<HMAC>". Nothing is stored:
  // the HMAC (under the secret key) binds the run key to the account, and
  // the token authenticates only while RunLookup says the run lives and
  // still names that account. Its principal is the service account with
  // only its roles in the job's tenant.
  std::string RunToken(const std::string& run_key, const std::string& account) const;
  // OK when `account` may be named by a job of `tenant`: an existing service
  // account with at least one role in that tenant (member or viewer).
  absl::Status CheckRunAccount(const std::string& account, const std::string& tenant) const;

  // ---- secrets ----
  absl::StatusOr<v1::Secret> CreateSecret(const std::string& tenant, const std::string& name,
                                          const std::string& value);
  // Secrets of `tenant` (every tenant when empty), without values.
  std::vector<v1::Secret> ListSecrets(const std::string& tenant) const;
  absl::StatusOr<v1::Secret> DeleteSecret(const std::string& tenant, const std::string& name);
  // The plaintext, for an assignment; NOT_FOUND names the secret.
  absl::StatusOr<std::string> SecretValue(const std::string& tenant,
                                          const std::string& name) const;

  // ---- audit ----
  // Queues the record (durable in order with earlier writes) and appends it
  // to the audit log. `time_s` is filled in when 0.
  void Audit(store::AuditRecord record);
  // Newest first is NOT the order: oldest first, the newest `limit` of those
  // matching. `identity` matches "user:alice" or the bare name "alice".
  std::vector<v1::AuditEvent> ListAudit(const std::string& identity, double since,
                                        size_t limit) const;

 private:
  struct UserEntry {
    v1::User user;
    std::vector<auth::RoleBinding> bindings;
  };
  struct TokenEntry {
    v1::Token token;
    std::string salt, hash;
    std::string kind = "user";  // "user", "node", "join"
  };
  struct SecretEntry {
    v1::Secret meta;
    std::string sealed;
  };
  static std::string TokenJson(const TokenEntry& t);
  static std::string UserJson(const UserEntry& u);
  absl::Status Persist(store::Batch batch);
  absl::StatusOr<auth::Principal> AuthenticateRun(std::string_view token) const;
  store::KvRecord TokenRecord(const TokenEntry& t) const;

  IdentityOptions options_;
  store::Store* store_;
  const Clock* clock_;
  mutable std::mutex mu_;
  std::map<std::string, UserEntry> users_;
  std::map<std::string, TokenEntry> tokens_;   // by id
  std::map<std::string, SecretEntry> secrets_;  // by "tenant/name"
  std::map<std::string, std::string> node_tokens_sealed_;  // node -> sealed token
  RunLookup run_lookup_;
  std::deque<v1::AuditEvent> audit_;
  uint64_t next_audit_ = 1;
  std::mutex audit_file_mu_;
  int audit_fd_ = -1;
};

}  // namespace meridian::controller
