// libFuzzer target for the gateway's HTTP front (outside input: every byte
// a client sends). Each input is run through front::ParseFront: Beast's
// parser, the framing checks, target normalisation and routing, hop-by-hop
// stripping. Invariants checked: no crash, no escaping exception; a refusal
// has a status of 400, 404 or 413 and a message; an accepted request that is
// proxied has an upstream target under /v1/ without dot segments, empty
// segments or encoded dots and slashes, and carries no hop-by-hop header and
// no Transfer-Encoding together with Content-Length. Seeds:
// fuzz/corpus/gateway_front_fuzzer/ (xchunked, "gzip, chunked", duplicate
// Content-Length, dot segments).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "serve/http_front.h"

namespace {

namespace http = meridian::serve::front::http;

void Require(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "gateway front fuzzer invariant broken: %s\n", what);
    std::abort();
  }
}

bool Contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  meridian::serve::front::FrontResult r = meridian::serve::front::ParseFront(raw, 4096);
  if (r.status != 200) {
    Require(r.status == 400 || r.status == 404 || r.status == 413, "unexpected refusal status");
    Require(!r.error.empty(), "refusal without a message");
    return 0;
  }
  const auto& req = r.request;
  for (http::field f :
       {http::field::connection, http::field::keep_alive, http::field::te, http::field::trailer,
        http::field::transfer_encoding, http::field::upgrade, http::field::proxy_authorization})
    Require(req.find(f) == req.end(), "a hop-by-hop header survived");
  Require(req.count(http::field::content_length) <= 1, "two Content-Length");
  if (r.route.kind == meridian::serve::front::Route::Kind::kProxy) {
    const std::string& t = r.route.upstream_target;
    std::string path = t.substr(0, t.find('?'));
    Require(path.rfind("/v1/", 0) == 0, "upstream target not under /v1/");
    Require(!Contains(path, "/../") && !Contains(path, "/./") && !Contains(path + "/", "/../") &&
                !Contains(path + "/", "/./"),
            "dot segment in the upstream target");
    Require(!Contains(path, "//"), "empty segment in the upstream target");
    for (std::string_view bad : {"%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "\\"})
      Require(!Contains(path, bad), "encoded dot, slash or percent in the upstream target");
  }
  return 0;
}
