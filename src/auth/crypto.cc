#include "auth/crypto.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace meridian::auth {

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;

std::string Hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

absl::Status SslError(std::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  return absl::InternalError(absl::StrCat(std::string(what), ": ", buf));
}

PKey NewKey() { return PKey(EVP_EC_gen("P-256")); }

std::string KeyPem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string CertPem(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

BioPtr ReadBio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return SslError(absl::StrCat("certificate extension ", value));
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

// A certificate for `pub`, named by `req`, signed by `issuer_key` (self-signed when issuer is null).
absl::StatusOr<X509Ptr> MakeCert(EVP_PKEY* pub, const CertRequest& req, X509* issuer,
                                 EVP_PKEY* issuer_key, bool ca) {
  X509Ptr c(X509_new());
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), static_cast<long>(req.days * 86400));
  X509_set_pubkey(c.get(), pub);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Meridian"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(req.common_name.c_str()), -1,
                             -1, 0);
  X509* iss = issuer != nullptr ? issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(iss));
  if (ca) {
    if (auto st = AddExt(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"); !st.ok())
      return st;
    if (auto st = AddExt(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign"); !st.ok())
      return st;
  } else {
    if (auto st = AddExt(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE"); !st.ok())
      return st;
    if (auto st = AddExt(c.get(), iss, NID_key_usage, "critical,digitalSignature,keyAgreement");
        !st.ok())
      return st;
    if (auto st = AddExt(c.get(), iss, NID_ext_key_usage, "serverAuth,clientAuth"); !st.ok())
      return st;
    std::string san;
    for (const std::string& d : req.dns) absl::StrAppend(&san, san.empty() ? "" : ",", "DNS:", d);
    for (const std::string& ip : req.ips)
      absl::StrAppend(&san, san.empty() ? "" : ",", "IP:", ip);
    if (!san.empty())
      if (auto st = AddExt(c.get(), iss, NID_subject_alt_name, san); !st.ok()) return st;
  }
  if (auto st = AddExt(c.get(), iss, NID_subject_key_identifier, "hash"); !st.ok()) return st;
  if (X509_sign(c.get(), issuer_key, EVP_sha256()) == 0) return SslError("signing a certificate");
  return c;
}

struct LoadedCa {
  X509Ptr cert;
  PKey key;
};

absl::StatusOr<LoadedCa> LoadCa(const KeyPair& ca) {
  LoadedCa out;
  BioPtr cb = ReadBio(ca.cert_pem);
  out.cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!out.cert) return SslError("reading the CA certificate");
  BioPtr kb = ReadBio(ca.key_pem);
  out.key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!out.key) return SslError("reading the CA key");
  return out;
}

}  // namespace

std::string RandomHex(size_t n) {
  std::vector<unsigned char> buf(n);
  MERIDIAN_CHECK(RAND_bytes(buf.data(), static_cast<int>(n)) == 1, "RAND_bytes failed");
  return Hex(buf.data(), n);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, len);
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  MERIDIAN_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), md,
             &len) != nullptr, "HMAC-SHA256");
  return Hex(md, len);
}

std::string HashSecret(std::string_view salt, std::string_view secret) {
  return Sha256Hex(absl::StrCat(std::string(salt), ":", std::string(secret)));
}

bool SameDigest(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  MERIDIAN_CHECK(key.size() == 32, "AES-256-GCM needs a 32-byte key");
  unsigned char nonce[12];
  MERIDIAN_CHECK(RAND_bytes(nonce, sizeof nonce) == 1, "RAND_bytes failed");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, k, nonce);
  int len = 0;
  EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                    static_cast<int>(aad.size()));
  std::string out(reinterpret_cast<char*>(nonce), sizeof nonce);
  out.resize(sizeof nonce + plaintext.size() + 16);
  auto* ct = reinterpret_cast<unsigned char*>(out.data()) + sizeof nonce;
  EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  int fin = 0;
  EVP_EncryptFinal_ex(ctx.get(), ct + len, &fin);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, ct + plaintext.size());
  return out;
}

absl::StatusOr<std::string> Open(std::string_view key, std::string_view sealed,
                                 std::string_view aad) {
  if (key.size() != 32) return absl::InvalidArgumentError("AES-256-GCM needs a 32-byte key");
  if (sealed.size() < 28) return absl::DataLossError("sealed value too short");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  const auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()), in);
  int len = 0;
  EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                    static_cast<int>(aad.size()));
  size_t n = sealed.size() - 28;
  std::string out(n, '\0');
  EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, in + 12,
                    static_cast<int>(n));
  std::string tag(sealed.substr(12 + n));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data());
  int fin = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &fin) != 1)
    return absl::DataLossError("sealed value does not authenticate (wrong key or tampered)");
  return out;
}

absl::StatusOr<KeyPair> CreateCa(const std::string& common_name) {
  PKey key = NewKey();
  if (!key) return SslError("generating the CA key");
  CertRequest req;
  req.common_name = common_name;
  req.days = 3650;
  absl::StatusOr<X509Ptr> c = MakeCert(key.get(), req, nullptr, key.get(), /*ca=*/true);
  if (!c.ok()) return c.status();
  return KeyPair{CertPem(c->get()), KeyPem(key.get())};
}

absl::StatusOr<KeyPair> IssueCert(const KeyPair& ca, const CertRequest& req) {
  absl::StatusOr<LoadedCa> l = LoadCa(ca);
  if (!l.ok()) return l.status();
  PKey key = NewKey();
  if (!key) return SslError("generating a key");
  absl::StatusOr<X509Ptr> c = MakeCert(key.get(), req, l->cert.get(), l->key.get(), false);
  if (!c.ok()) return c.status();
  return KeyPair{CertPem(c->get()), KeyPem(key.get())};
}

absl::StatusOr<KeyPair> CreateCsr(const std::string& common_name) {
  PKey key = NewKey();
  if (!key) return SslError("generating a key");
  ReqPtr r(X509_REQ_new());
  X509_REQ_set_version(r.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(r.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_REQ_set_pubkey(r.get(), key.get());
  if (X509_REQ_sign(r.get(), key.get(), EVP_sha256()) == 0) return SslError("signing the CSR");
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(b.get(), r.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return KeyPair{std::string(data, static_cast<size_t>(n)), KeyPem(key.get())};
}

absl::StatusOr<std::string> SignCsr(const KeyPair& ca, std::string_view csr_pem,
                                    const CertRequest& req) {
  if (csr_pem.size() > 16384) return absl::InvalidArgumentError("csr: larger than 16 KiB");
  absl::StatusOr<LoadedCa> l = LoadCa(ca);
  if (!l.ok()) return l.status();
  BioPtr b = ReadBio(csr_pem);
  ReqPtr r(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!r) return absl::InvalidArgumentError("csr: not a PEM certificate signing request");
  PKey pub(X509_REQ_get_pubkey(r.get()));
  if (!pub || X509_REQ_verify(r.get(), pub.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("csr: its signature does not verify");
  }
  absl::StatusOr<X509Ptr> c = MakeCert(pub.get(), req, l->cert.get(), l->key.get(), false);
  if (!c.ok()) return c.status();
  return CertPem(c->get());
}

absl::StatusOr<std::string> CertCommonName(std::string_view cert_pem) {
  BioPtr b = ReadBio(cert_pem);
  X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  char buf[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(c.get()), NID_commonName, buf, sizeof buf);
  if (n < 0) return absl::InvalidArgumentError("certificate has no common name");
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace meridian::auth
