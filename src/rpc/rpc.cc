#include "rpc/rpc.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/secret.h"

namespace meridian::rpc {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  (void)::fchmod(fd, static_cast<mode_t>(mode));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<Security> LoadSecurity(const std::string& dir, const std::string& name) {
  Security s;
  absl::StatusOr<std::string> ca = ReadFile(dir + "/ca.crt");
  if (!ca.ok()) return ca.status();
  s.ca_pem = *ca;
  if (name.empty()) return s;
  absl::StatusOr<std::string> cert = ReadFile(absl::StrCat(dir, "/", name, ".crt"));
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(absl::StrCat(dir, "/", name, ".key"));
  if (!key.ok()) return key.status();
  s.cert_pem = *cert;
  s.key_pem = *key;
  return s;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const Security& sec, std::shared_ptr<grpc::AuthMetadataProcessor> processor) {
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (sec.insecure) {
    creds = grpc::experimental::LocalServerCredentials(LOCAL_TCP);
  } else {
    grpc::SslServerCredentialsOptions o(
        sec.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    o.pem_root_certs = sec.ca_pem;
    o.pem_key_cert_pairs.push_back({sec.key_pem, sec.cert_pem});
    creds = grpc::SslServerCredentials(o);
  }
  if (processor) creds->SetAuthMetadataProcessor(std::move(processor));
  return creds;
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address, const Security& sec) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  if (sec.insecure)
    return grpc::CreateCustomChannel(address, grpc::experimental::LocalCredentials(LOCAL_TCP),
                                     args);
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = sec.ca_pem;
  o.pem_cert_chain = sec.cert_pem;
  o.pem_private_key = sec.key_pem;
  if (!sec.target_name.empty()) args.SetSslTargetNameOverride(sec.target_name);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(o), args);
}

namespace {

class PeerProcessor final : public grpc::AuthMetadataProcessor {
 public:
  PeerProcessor(std::string cn, std::string token) : cn_(std::move(cn)), token_(std::move(token)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext* ctx, OutputMetadata*,
                       OutputMetadata*) override {
    if (!cn_.empty() && ctx != nullptr && PeerCommonName(*ctx) == cn_) return grpc::Status::OK;
    if (!token_.empty()) {
      auto it = md.find("authorization");
      if (it != md.end() &&
          SameSecret(std::string_view(it->second.data(), it->second.size()), "Bearer " + token_))
        return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "only the cluster's controller may call this service");
  }

 private:
  std::string cn_, token_;
};

}  // namespace

std::shared_ptr<grpc::AuthMetadataProcessor> RequirePeer(std::string common_name,
                                                         std::string token) {
  return std::make_shared<PeerProcessor>(std::move(common_name), std::move(token));
}

std::string PeerCommonName(const grpc::AuthContext& ctx) {
  if (!ctx.IsPeerAuthenticated()) return "";
  for (const grpc::string_ref& v : ctx.FindPropertyValues("x509_common_name"))
    return std::string(v.data(), v.size());
  return "";
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
