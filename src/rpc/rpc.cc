#include "rpc/rpc.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/secret.h"

namespace meridian::rpc {

namespace {

class TokenProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenProcessor(std::string token) : expected_("Bearer " + token) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override {
    auto it = auth_metadata.find("authorization");
    if (it == auth_metadata.end())
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing bearer token (authorization metadata)");
    if (!SameSecret(std::string_view(it->second.data(), it->second.size()), expected_))
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
    consumed->insert(std::make_pair(std::string("authorization"),
                                    std::string(it->second.data(), it->second.size())));
    return grpc::Status::OK;
  }

 private:
  std::string expected_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const std::string& token) {
  auto creds = grpc::experimental::LocalServerCredentials(LOCAL_TCP);
  creds->SetAuthMetadataProcessor(std::make_shared<TokenProcessor>(token));
  return creds;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::experimental::LocalCredentials(LOCAL_TCP), args);
}

void Prepare(grpc::ClientContext* ctx, const std::string& token, double deadline_s) {
  ctx->AddMetadata("authorization", "Bearer " + token);
  if (deadline_s > 0)
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(deadline_s * 1e6)));
}

absl::Status ToAbsl(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string NewToken() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char buf[16] = {};
  in.read(reinterpret_cast<char*>(buf), sizeof buf);
  if (!in) {  // no /dev/urandom: fall back to random_device
    std::random_device rd;
    for (unsigned char& b : buf) b = static_cast<unsigned char>(rd());
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : buf) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  return t;
}

}  // namespace meridian::rpc
