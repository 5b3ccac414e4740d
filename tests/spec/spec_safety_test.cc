// What a job or endpoint spec may name and carry: paths confined to the
// tenant's shared directory, bounded NUL-free command and env, secret
// references, tenants usable as directory names, and errors that quote user
// input briefly (QuoteInput).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/quote.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<Diagnostic> JobDiags(const std::string& text) {
  std::vector<Diagnostic> d;
  absl::StatusOr<JobSpec> j = ParseJobSpec(text, "j.yaml", nullptr, &d);
  EXPECT_FALSE(j.ok()) << "expected the job to be rejected:\n" << text;
  if (!j.ok()) {
    EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  }
  return d;
}

std::vector<Diagnostic> EndpointDiags(const std::string& text) {
  std::vector<Diagnostic> d;
  absl::StatusOr<EndpointSpec> e = ParseEndpointSpec(text, "e.yaml", &d);
  EXPECT_FALSE(e.ok()) << "expected the endpoint to be rejected:\n" << text;
  return d;
}

const std::string kTrain =
    "kind: training\nname: t\nshape: {cpu: 1, memory: 1Gi}\ntraining:\n  checkpoint_every: 10\n";
const std::string kJob = "kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\n";

// ---- paths

TEST(SpecPathsTest, TheExamplesPathsStayValidAndAreListed) {
  absl::StatusOr<std::string> text =
      ReadFile(testing_util::SourceDir() + "/examples/cluster/06-train.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<JobSpec> j = ParseJobSpec(*text, "06-train.yaml", nullptr, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_EQ(j->shared_paths.size(), 2u);  // dataset: digits is a built-in, not a path
  EXPECT_EQ(j->shared_paths[0].field, "training.save");
  EXPECT_EQ(j->shared_paths[0].path, "models/digits.model");
  EXPECT_EQ(j->shared_paths[1].field, "training.checkpoint_dir");
  EXPECT_EQ(j->shared_paths[1].path, "checkpoints/digits-3-regions");
  EXPECT_GT(j->shared_paths[0].line, 0);

  text = ReadFile(testing_util::SourceDir() + "/examples/cluster/07-endpoint.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<EndpointSpec> e = ParseEndpointSpec(*text, "07-endpoint.yaml", nullptr);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->model, "models/digits.model");
  ASSERT_EQ(e->shared_paths.size(), 1u);
  EXPECT_EQ(e->shared_paths[0].field, "model");
  EXPECT_EQ(e->shared_paths[0].line, 8);
  EXPECT_EQ(e->shared_paths[0].column, 8);
}

TEST(SpecPathsTest, TrainingPathsThatLeaveTheSharedDirectoryAreRefused) {
  EXPECT_DIAG(JobDiags(kTrain + "  save: ../x\n"), 6, 9, "training.save", "must not contain '..'");
  EXPECT_DIAG(JobDiags(kTrain + "  save: models/../../x\n"), 6, 9, "training.save", "'..'");
  EXPECT_DIAG(JobDiags(kTrain + "  save: /tmp/m\n"), 6, 9, "training.save", "must be relative");
  EXPECT_DIAG(JobDiags(kTrain + "  save: ~/m\n"), 6, 9, "training.save", "'~'");
  EXPECT_DIAG(JobDiags(kTrain + "  save: \"\"\n"), 6, 9, "training.save", "must not be empty");
  EXPECT_DIAG(JobDiags(kTrain + "  save: \"a\\0b\"\n"), 6, 9, "training.save", "NUL");
  EXPECT_DIAG(JobDiags(kTrain + "  save: \"a\\nb\"\n"), 6, 9, "training.save", "control character");
  EXPECT_DIAG(JobDiags(kTrain + "  save: " + std::string(kMaxPathBytes + 1, 'a') + "\n"), 6, 9,
              "training.save", "longer than 1024 bytes");
  EXPECT_DIAG(JobDiags(kTrain + "  checkpoint_dir: ../y\n"), 6, 19, "training.checkpoint_dir",
              "'..'");
  EXPECT_DIAG(JobDiags(kTrain + "  checkpoint_dir: /y\n"), 6, 19, "training.checkpoint_dir",
              "must be relative");
  EXPECT_DIAG(JobDiags(kTrain + "  dataset: ../data.csv\n"), 6, 12, "training.dataset", "'..'");
  EXPECT_DIAG(JobDiags(kTrain + "  dataset: /etc/passwd\n"), 6, 12, "training.dataset",
              "must be relative");
  // The problem is quoted briefly, the full line says where.
  std::vector<Diagnostic> d = JobDiags(kTrain + "  save: ../x\n");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].ToString(),
            "j.yaml:6:9: training.save: '../x': must not contain '..': it would leave the "
            "tenant's shared directory");
}

TEST(SpecPathsTest, RelativePathsAndBuiltInDatasetsAreAccepted) {
  absl::StatusOr<JobSpec> j = ParseJobSpec(
      kTrain + "  save: ./models/m..v2\n  checkpoint_dir: ck/a\n  dataset: data/d.csv\n", "j",
      nullptr, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_EQ(j->shared_paths.size(), 3u);
  EXPECT_EQ(j->shared_paths[0].field, "training.dataset");
  EXPECT_EQ(j->shared_paths[0].path, "data/d.csv");
  for (const char* builtin : {"digits", "synthetic", "large"}) {
    j = ParseJobSpec(kTrain + "  dataset: " + builtin + "\n", "j", nullptr, nullptr);
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_TRUE(j->shared_paths.empty()) << builtin;
  }
}

TEST(SpecPathsTest, AnEndpointModelOutsideTheSharedDirectoryIsRefused) {
  const std::string head = "kind: endpoint\nname: e\n";
  EXPECT_DIAG(EndpointDiags(head + "model: /etc/shadow\n"), 3, 8, "model", "must be relative");
  EXPECT_DIAG(EndpointDiags(head + "model: ../../etc/shadow\n"), 3, 8, "model", "'..'");
  EXPECT_DIAG(EndpointDiags(head + "model: \"\"\n"), 3, 8, "model", "must not be empty");
  EXPECT_DIAG(EndpointDiags(head + "model: \"m\\0\"\n"), 3, 8, "model", "NUL");
}

TEST(SpecPathsTest, ATenantMustBeUsableAsADirectoryName) {
  for (const char* bad : {"..", ".", "a/b", "../x"}) {
    EXPECT_DIAG(JobDiags(kJob + "command: [x]\ntenant: \"" + bad + "\"\n"), 5, 9, "tenant",
                "directory name");
    EXPECT_DIAG(
        EndpointDiags(std::string("kind: endpoint\nname: e\nmodel: m\ntenant: \"") + bad + "\"\n"),
        4, 9, "tenant", "directory name");
  }
  EXPECT_TRUE(
      ParseJobSpec(kJob + "command: [x]\ntenant: team-a.b_c\n", "j", nullptr, nullptr).ok());
}

// ---- command and env

TEST(SpecRunFieldsTest, NulAnywhereIsRefused) {
  EXPECT_DIAG(JobDiags(kJob + "command: [x, \"a\\0b\"]\n"), 4, 14, "command[1]", "NUL");
  EXPECT_DIAG(JobDiags(kJob + "command: \"echo \\0\"\n"), 4, 10, "command", "NUL");
  EXPECT_DIAG(JobDiags(kJob + "command: [x]\nenv: {A: \"x\\0y\"}\n"), 5, 10, "env.A", "NUL");
  EXPECT_DIAG(JobDiags(kJob + "command: [x]\nenv: {\"A\\0B\": x}\n"), 5, 7, "env.'A\\0B'",
              "environment variable names");
}

TEST(SpecRunFieldsTest, EnvNamesFollowTheShellsRules) {
  for (const char* bad : {"9X", "A-B", "A B", "A=B", "\xC3\xA9"}) {
    std::vector<Diagnostic> d = JobDiags(kJob + "command: [x]\nenv: {\"" + bad + "\": x}\n");
    ASSERT_FALSE(d.empty()) << bad;
    EXPECT_THAT(d[0].message, HasSubstr("environment variable names")) << bad;
    EXPECT_EQ(d[0].line, 5);
  }
  absl::StatusOr<JobSpec> j =
      ParseJobSpec(kJob + "command: [x]\nenv: {_A1: x, b: \"\"}\n", "j", nullptr, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->env.size(), 2u);
}

TEST(SpecRunFieldsTest, ValuesAndTheirTotalAreBounded) {
  std::string big(kMaxArgBytes + 1, 'v');
  std::string fits(kMaxArgBytes, 'v');
  EXPECT_DIAG(JobDiags(kJob + "command: [x, " + big + "]\n"), 4, 14, "command[1]",
              "is 32769 bytes; at most 32768 each");
  EXPECT_DIAG(JobDiags(kJob + "command: [x]\nenv: {A: " + big + "}\n"), 5, 10, "env.A",
              "at most 32768 each");
  EXPECT_TRUE(ParseJobSpec(kJob + "command: [x, " + fits + "]\n", "j", nullptr, nullptr).ok());
  // Nine values that fit each, 288 KiB together.
  std::string env = "env:\n";
  for (int i = 0; i < 9; ++i) env += "  V" + std::to_string(i) + ": " + fits + "\n";
  std::vector<Diagnostic> d = JobDiags(kJob + "command: [x]\n" + env);
  EXPECT_DIAG(d, 0, 0, "env", "command and env together are");
  EXPECT_DIAG(d, 0, 0, "env", "at most 262144");
}

// ---- secrets

TEST(SpecSecretsTest, AnEnvValueMayNameASecret) {
  absl::StatusOr<JobSpec> j = ParseJobSpec(
      kJob + "command: [x]\nenv: {DB_PASSWORD: {secret: db-pass}, MODE: fast, K: {secret: k9}}\n",
      "j", nullptr, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->env, (std::vector<std::pair<std::string, std::string>>{{"MODE", "fast"}}));
  EXPECT_EQ(j->secret_env, (std::vector<std::pair<std::string, std::string>>{
                               {"DB_PASSWORD", "db-pass"}, {"K", "k9"}}));
}

TEST(SpecSecretsTest, BadSecretReferencesNameTheField) {
  const std::string head = kJob + "command: [x]\n";
  EXPECT_DIAG(JobDiags(head + "env: {P: {secret: Db_Pass}}\n"), 5, 19, "env.P.secret",
              "secret name 'Db_Pass' must be 1 to 63 lowercase");
  EXPECT_DIAG(JobDiags(head + "env: {P: {secret: -x}}\n"), 5, 19, "env.P.secret", "secret name");
  EXPECT_DIAG(JobDiags(head + "env: {P: {secret: " + std::string(64, 'a') + "}}\n"), 5, 19,
              "env.P.secret", "secret name");
  EXPECT_DIAG(JobDiags(head + "env: {P: {secret: \"\"}}\n"), 5, 19, "env.P.secret", "secret name");
  EXPECT_DIAG(JobDiags(head + "env: {P: {secrte: x}}\n"), 5, 11, "env.P.secrte",
              "did you mean 'secret'");
  EXPECT_DIAG(JobDiags(head + "env: {P: {}}\n"), 0, 0, "env.P.secret", "missing required field");
  EXPECT_DIAG(JobDiags(head + "env: {P: [a]}\n"), 5, 10, "env.P", "expected a string or {secret");
  EXPECT_TRUE(IsSecretName("a"));
  EXPECT_TRUE(IsSecretName("0-a"));
  EXPECT_TRUE(IsSecretName(std::string(63, 'z')));
  EXPECT_FALSE(IsSecretName("a_b"));
  EXPECT_FALSE(IsSecretName("A"));
}

TEST(SpecSecretsTest, AnEndpointTokenMayBeASecret) {
  absl::StatusOr<EndpointSpec> e = ParseEndpointSpec(
      "kind: endpoint\nname: e\nmodel: m\ntoken: {secret: digits-token}\n", "e", nullptr);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->token_secret, "digits-token");
  EXPECT_TRUE(e->token.empty());
  e = ParseEndpointSpec("kind: endpoint\nname: e\nmodel: m\ntoken: plain\n", "e", nullptr);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->token, "plain");
  EXPECT_TRUE(e->token_secret.empty());
  EXPECT_DIAG(EndpointDiags("kind: endpoint\nname: e\nmodel: m\ntoken: {secret: BAD}\n"), 4, 17,
              "token.secret", "secret name");
}

// ---- quoting

TEST(QuoteInputTest, ShortPrintableTextIsQuotedAsIs) {
  EXPECT_EQ(QuoteInput("digits"), "'digits'");
  EXPECT_EQ(QuoteInput(""), "''");
  EXPECT_EQ(QuoteInput("caf\xC3\xA9"), "'caf\xC3\xA9'");
}

TEST(QuoteInputTest, ControlCharactersAndBadUtf8AreEscaped) {
  EXPECT_EQ(QuoteInput(std::string("a\0b\n\t\r\x1b[2J\x7f", 11)), "'a\\0b\\n\\t\\r\\x1B[2J\\x7F'");
  EXPECT_EQ(QuoteInput("it's a\\b"), "'it\\'s a\\\\b'");
  EXPECT_EQ(QuoteInput("a\xFF\xC3"), "'a\\xFF\\xC3'");
  EXPECT_EQ(QuoteInput("\xC0\xAF"), "'\\xC0\\xAF'");         // overlong '/'
  EXPECT_EQ(QuoteInput("x\xE2\x80\xAEy"), "'x\\u{202E}y'");  // right-to-left override
  EXPECT_EQ(QuoteInput("\xC2\x85"), "'\\u{0085}'");          // C1 control
}

TEST(QuoteInputTest, LongTextIsCutAtACharacterBoundaryAndSaysItsSize) {
  std::string nine_k(9000, 'n');
  std::string q = QuoteInput(nine_k);
  EXPECT_EQ(q, "'" + std::string(200, 'n') + "'\u2026(9000 bytes)");
  EXPECT_EQ(QuoteInput("ab\xC3\xA9", 3), "'ab'\u2026(4 bytes)");  // é is not split
  EXPECT_EQ(QuoteInput("abc", 3), "'abc'");
}

TEST(QuoteInputTest, Utf8Validation) {
  size_t at = 99;
  EXPECT_TRUE(IsValidUtf8("plain \xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("ab\xFF", &at));
  EXPECT_EQ(at, 2u);
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // cut short
}

TEST(QuoteInputTest, SpecErrorsQuoteHugeOrHostileValuesBriefly) {
  std::string huge(9000, 'k');  // (a YAML key is at most 1024 characters: a value)
  std::vector<Diagnostic> d = JobDiags(kJob + "command: [x]\nobjective: " + huge + "\n");
  ASSERT_FALSE(d.empty());
  EXPECT_LT(d[0].ToString().size(), 800u) << d[0].ToString().substr(0, 300);
  EXPECT_THAT(d[0].message, HasSubstr("(9000 bytes)"));
  d = JobDiags(kJob + "command: [x]\nobjective: \"\\e[31mred\"\n");
  ASSERT_FALSE(d.empty());
  EXPECT_THAT(d[0].message, HasSubstr("'\\x1B[31mred'"));
  EXPECT_THAT(d[0].message, Not(HasSubstr("\x1b")));
}

}  // namespace
}  // namespace meridian::spec
