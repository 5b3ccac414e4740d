// The trust model with real processes: a job of tenant alpha runs as a uid
// of its own on a real agent and tries what a hostile workload would — read
// the controller's data dir, the agent's state and credentials, another
// run's directory — and, holding a member of alpha's token (handed to it as
// a secret), to cancel tenant beta's job. Everything is refused, the cancel
// is PERMISSION_DENIED and audited, and the secrets it was given reached its
// environment without appearing in state.db, in any answer or in any log.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "auth/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness.h"
#include "meridian/v1/meridian.grpc.pb.h"

namespace meridian::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kDbPassword = "s3cr3t-db-password-5b1f";

// Every file under `root` that holds `needle` (binary-safe).
std::vector<std::string> FilesHolding(const std::string& root, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec || !it->is_regular_file(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(needle) != std::string::npos) out.push_back(it->path().string());
  }
  return out;
}

TEST(TrustTest, AJobCannotReachOtherTenantsFilesOrCredentialsAndItsCancelIsDeniedAndAudited) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: workloads run as unprivileged uids";
  Cluster cluster("trust");
  cluster.StartController(2.0);
  cluster.StartAgent("east-1", "east");
  ASSERT_TRUE(WaitUntil([&] { return cluster.ReadyNodes() == 1; }, 30))
      << "agent did not register; logs in " << cluster.root();
  auto ids = v1::IdentityService::NewStub(cluster.channel());
  auto secrets = v1::SecretService::NewStub(cluster.channel());
  auto admin_call = [&](auto fn) {
    grpc::ClientContext ctx;
    cluster.Prepare(&ctx);
    return fn(&ctx);
  };
  // alice is a member of alpha; her token and a database password become
  // alpha's secrets.
  v1::CreateUserRequest u;
  u.set_name("alice");
  u.add_roles("member:alpha");
  v1::User user;
  ASSERT_TRUE(admin_call([&](auto* c) { return ids->CreateUser(c, u, &user); }).ok());
  v1::CreateTokenRequest tr;
  tr.set_user("alice");
  v1::CreateTokenResponse token;
  ASSERT_TRUE(admin_call([&](auto* c) { return ids->CreateToken(c, tr, &token); }).ok());
  for (auto [name, value] : {std::pair<std::string, std::string>{"alice-token", token.secret()},
                             {"db-pass", kDbPassword}}) {
    v1::CreateSecretRequest r;
    r.set_tenant("alpha");
    r.set_name(name);
    r.set_value(value);
    v1::Secret s;
    ASSERT_TRUE(admin_call([&](auto* c) { return secrets->Create(c, r, &s); }).ok());
  }
  // Tenant beta's job, running.
  v1::Job beta;
  ASSERT_TRUE(cluster
                  .Submit("kind: job\nname: beta-work\ntenant: beta\nshape: {cpu: 100m, memory: "
                          "64Mi}\ncommand: ['/bin/sh', '-c', 'echo beta-private-output; sleep 300']\n",
                          &beta)
                  .ok());
  ASSERT_EQ(cluster.WaitState(beta.id(), v1::JOB_RUNNING).state(), v1::JOB_RUNNING);
  // The CA certificate is public: a readable copy for the workload's client.
  std::string ca = cluster.root() + "/ca-public.crt";
  fs::copy_file(cluster.ca_file(), ca);
  fs::permissions(ca, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);

  std::string ctl = cluster.root() + "/controller";
  std::string agent = cluster.root() + "/agents/east-1";
  std::string other_run = absl::StrCat(agent, "/runs/j", beta.id(), "-r0-a0");
  std::string probes;
  for (const std::string& f :
       {ctl + "/state.db", ctl + "/token", ctl + "/secret.key", ctl + "/tls/ca.key",
        ctl + "/audit.log", agent + "/credentials/node.key", other_run + "/stdout.log",
        other_run + "/record"})
    absl::StrAppend(&probes, "if cat ", f, " > /dev/null 2>&1; then echo READ ", f,
                    "; else echo DENIED ", f, "; fi; ");
  for (const std::string& d : {ctl, agent + "/runs", other_run, other_run + "/work"})
    absl::StrAppend(&probes, "if ls ", d, " > /dev/null 2>&1; then echo LISTED ", d,
                    "; else echo DENIED ", d, "; fi; ");
  std::string script = absl::StrCat(
      "echo uid=$(id -u); ", probes,
      // Compared by digest: the script (in the job's spec) must not hold the value.
      "test \"$(printf %s \"$DB_PASSWORD\" | sha256sum | cut -c1-64)\" = \"",
      auth::Sha256Hex(kDbPassword), "\" && echo SECRET-ARRIVED; ",
      "env | grep -c MERIDIAN_TOKEN_FILE; ",
      "MERIDIAN_TOKEN=$ALICE_TOKEN MERIDIAN_CA_FILE=", ca, " ", MERIDIAN_BINARY, " job cancel ",
      beta.id(), "; echo cancel-rc=$?");
  v1::Job alpha;
  grpc::Status st = cluster.Submit(
      absl::StrCat("kind: job\nname: alpha-probe\ntenant: alpha\nshape: {cpu: 100m, memory: "
                   "64Mi}\nenv:\n  DB_PASSWORD: {secret: db-pass}\n  ALICE_TOKEN: {secret: "
                   "alice-token}\ncommand: ['/bin/sh', '-c', '",
                   script, "']\n"),
      &alpha);
  ASSERT_TRUE(st.ok()) << st.error_message();
  v1::Job done = cluster.WaitState(alpha.id(), v1::JOB_SUCCEEDED, 60);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  std::string out = cluster.Logs(alpha.id());
  std::string err = cluster.Logs(alpha.id(), "stderr");

  EXPECT_THAT(out, Not(HasSubstr("uid=0\n"))) << out;
  EXPECT_THAT(out, HasSubstr("uid=")) << out;
  EXPECT_THAT(out, Not(HasSubstr("READ "))) << out;
  EXPECT_THAT(out, Not(HasSubstr("LISTED "))) << out;
  EXPECT_THAT(out, HasSubstr("DENIED " + ctl + "/token"));
  EXPECT_THAT(out, HasSubstr("DENIED " + other_run + "/stdout.log"));
  EXPECT_THAT(out, HasSubstr("SECRET-ARRIVED")) << out;
  EXPECT_THAT(out, HasSubstr("\n0\n")) << "MERIDIAN_TOKEN_FILE reached the workload: " << out;
  EXPECT_THAT(out, HasSubstr("cancel-rc=1")) << out << err;
  EXPECT_THAT(err, HasSubstr("permission denied")) << err;
  // Beta's job runs on; the denial is in the audit trail under alice.
  v1::Job beta_now;
  ASSERT_TRUE(cluster.Get(beta.id(), &beta_now));
  EXPECT_EQ(beta_now.state(), v1::JOB_RUNNING);
  auto audit = v1::AuditService::NewStub(cluster.channel());
  v1::ListAuditRequest ar;
  ar.set_identity("alice");
  v1::ListAuditResponse trail;
  ASSERT_TRUE(admin_call([&](auto* c) { return audit->List(c, ar, &trail); }).ok());
  bool audited = false;
  for (const v1::AuditEvent& e : trail.events())
    audited |= e.method() == "JobService/Cancel" && e.code() == "PERMISSION_DENIED" &&
               e.tenant() == "beta" && e.object() == absl::StrCat("job ", beta.id());
  EXPECT_TRUE(audited) << trail.DebugString();

  // A job that names a service account acts as it, in its tenant, with no
  // token of anyone's handed to it; its token dies with the run.
  v1::CreateUserRequest sa;
  sa.set_name("alpha-ci");
  sa.add_roles("member:alpha");
  sa.set_service_account(true);
  ASSERT_TRUE(admin_call([&](auto* c) { return ids->CreateUser(c, sa, &user); }).ok());
  v1::Job ci;
  st = cluster.Submit(
      absl::StrCat("kind: job\nname: alpha-ci\ntenant: alpha\nservice_account: alpha-ci\n"
                   "shape: {cpu: 100m, memory: 64Mi}\ncommand: ['/bin/sh', '-c', '",
                   MERIDIAN_BINARY, " whoami; ", MERIDIAN_BINARY, " job list; echo list-rc=$?; ",
                   MERIDIAN_BINARY, " job cancel ", beta.id(), "; echo cancel-rc=$?']\n"),
      &ci);
  ASSERT_TRUE(st.ok()) << st.error_message();
  v1::Job ci_done = cluster.WaitState(ci.id(), v1::JOB_SUCCEEDED, 60);
  ASSERT_EQ(ci_done.state(), v1::JOB_SUCCEEDED) << ci_done.message();
  std::string ci_out = cluster.Logs(ci.id());
  std::string ci_err = cluster.Logs(ci.id(), "stderr");
  EXPECT_THAT(ci_out, HasSubstr("sa:alpha-ci")) << ci_out << ci_err;
  EXPECT_THAT(ci_out, HasSubstr("alpha-probe")) << ci_out << ci_err;  // it lists alpha's jobs
  EXPECT_THAT(ci_out, Not(HasSubstr("beta-work"))) << ci_out;
  EXPECT_THAT(ci_out, HasSubstr("list-rc=0")) << ci_out << ci_err;
  EXPECT_THAT(ci_out, HasSubstr("cancel-rc=1")) << ci_out << ci_err;
  ASSERT_TRUE(cluster.Get(beta.id(), &beta_now));
  EXPECT_EQ(beta_now.state(), v1::JOB_RUNNING);
  std::string ci_token_file = absl::StrCat(agent, "/runs/j", ci.id(), "-r0-a0/credentials/token");
  std::ifstream tin(ci_token_file);
  std::string run_token;
  tin >> run_token;
  ASSERT_EQ(run_token.rfind("mdr_", 0), 0u) << ci_token_file;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + run_token);
    v1::WhoAmIResponse who;
    grpc::Status wst = ids->WhoAmI(&ctx, v1::WhoAmIRequest(), &who);
    EXPECT_EQ(wst.error_code(), grpc::StatusCode::UNAUTHENTICATED) << who.identity();
  }

  // The secret reached the workload only: not in `job get`, not in any file
  // of the cluster (state.db, its WAL, logs, the audit trail, run records).
  v1::Job got;
  ASSERT_TRUE(cluster.Get(alpha.id(), &got));
  EXPECT_THAT(got.DebugString(), Not(HasSubstr(kDbPassword)));
  EXPECT_THAT(got.spec(), HasSubstr("{secret: db-pass}"));
  cluster.Kill("controller", SIGTERM);  // flush the store; logs are complete
  EXPECT_THAT(FilesHolding(cluster.root(), kDbPassword), ::testing::IsEmpty());
  std::string alice_secret = token.secret().substr(token.secret().rfind('_') + 1);
  EXPECT_THAT(FilesHolding(cluster.root(), alice_secret), ::testing::IsEmpty());
  // The controller's files are its own.
  struct stat sb;
  ASSERT_EQ(::stat(ctl.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0700);
  ASSERT_EQ(::stat((ctl + "/state.db").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600);
}

}  // namespace
}  // namespace meridian::testing
