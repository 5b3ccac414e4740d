// The cryptography Meridian's trust model needs, on OpenSSL 3: random
// bytes, SHA-256, salted token hashes compared in constant time, AES-256-GCM
// for secrets at rest, and a small PKI (a cluster CA that signs the
// controller's certificate and, from certificate signing requests, each
// node's). Keys are ECDSA P-256. Thread-safe (OpenSSL 3 is).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace meridian::auth {

// `n` random bytes from the OS CSPRNG (RAND_bytes), as lowercase hex.
std::string RandomHex(size_t n);
std::string Sha256Hex(std::string_view data);
// HMAC-SHA256 of `message` under `key`, as 64 hex digits.
std::string HmacSha256Hex(std::string_view key, std::string_view message);
// SHA-256(salt || secret) in hex: what the store keeps of a token.
std::string HashSecret(std::string_view salt, std::string_view secret);
// Constant-time comparison of equal-length hex digests (false when lengths differ).
bool SameDigest(std::string_view a, std::string_view b);

// AES-256-GCM with a 32-byte key. Seal's output is nonce (12) || ciphertext ||
// tag (16); `aad` binds it to its name (a sealed value moved to another name
// fails to open).
std::string Seal(std::string_view key, std::string_view plaintext, std::string_view aad);
absl::StatusOr<std::string> Open(std::string_view key, std::string_view sealed,
                                 std::string_view aad);

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA certificate (10 years) and its key.
absl::StatusOr<KeyPair> CreateCa(const std::string& common_name);

struct CertRequest {
  std::string common_name;
  std::vector<std::string> dns;  // subjectAltName DNS entries
  std::vector<std::string> ips;  // subjectAltName IP entries
  double days = 825;
};
// A new key and a certificate for it signed by `ca` (serverAuth + clientAuth).
absl::StatusOr<KeyPair> IssueCert(const KeyPair& ca, const CertRequest& req);

// A new key and a PEM certificate signing request for `common_name`.
absl::StatusOr<KeyPair> CreateCsr(const std::string& common_name);  // cert_pem holds the CSR
// Signs the CSR's public key (after checking its self-signature) with the
// subject and names of `req`, not the CSR's: the signer decides identity.
absl::StatusOr<std::string> SignCsr(const KeyPair& ca, std::string_view csr_pem,
                                    const CertRequest& req);

// The subject common name of a PEM certificate.
absl::StatusOr<std::string> CertCommonName(std::string_view cert_pem);

}  // namespace meridian::auth
