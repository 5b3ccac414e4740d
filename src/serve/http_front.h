// The gateway's HTTP front, as pure functions over a parsed request header:
// framing checks (request smuggling), hop-by-hop headers, target
// normalisation and routing. The gateway calls them on every request
// between reading the header and reading the body; fuzz/gateway_front_fuzzer.cc
// drives ParseFront (raw bytes through Beast's parser and all of the checks).
// Internal to src/serve (it exposes Beast types). Thread-safe (no state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
// clang-format off
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/beast/http.hpp>
// clang-format on

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meridian::serve::front {

namespace http = boost::beast::http;

// Refuses (InvalidArgument, answered 400) a message framing that a replica
// or another proxy could read differently from us (RFC 9112 6.1-6.3):
// Transfer-Encoding other than exactly one `chunked` (`xchunked`,
// `gzip, chunked`, `chunked, chunked`, two Transfer-Encoding fields),
// Transfer-Encoding together with Content-Length, more than one
// Content-Length (even if equal) or one that is not plain digits.
absl::Status CheckFraming(const http::fields& fields);

// Removes the hop-by-hop headers (RFC 9110 7.6.1) before a request goes
// on: Connection and every header it names, Keep-Alive, Proxy-*, TE,
// Trailer, Transfer-Encoding, Upgrade.
void StripHopByHop(http::fields& fields);

struct Route {
  enum class Kind { kHealth, kStatus, kProxy };
  Kind kind = Kind::kHealth;
  std::string endpoint;         // kProxy: the endpoint; empty = the only one
  std::string upstream_target;  // kProxy: the target for the replica (/v1/...)
};

// The route of a request target. Only origin-form targets (`/path?query`)
// whose path is already normal are accepted: InvalidArgument (400) for
// `.` or `..` segments, empty segments (`//`), percent-encoded `.`, `/`,
// `\`, `%` or control bytes, a backslash, a fragment, or bytes outside the
// URI character set; NotFound (404) for a clean path that is not served.
absl::StatusOr<Route> RouteTarget(std::string_view target);

// HTTP status for a Status from the functions above (400, 404, else 500).
int HttpStatus(const absl::Status& s);

// Everything the front does to one request, from raw bytes: parse it
// (Beast, header at most 16 KiB, body at most `max_body_bytes`), check its
// framing, route it, strip hop-by-hop headers. status 200 with the
// request as it would go on, or the status and message of the refusal
// (413 over the body limit, 400 for malformed HTTP or the refusals above,
// 404 unknown path). Incomplete input is a 400.
struct FrontResult {
  int status = 200;
  std::string error;
  Route route;
  http::request<http::string_body> request;
};
FrontResult ParseFront(std::string_view raw, size_t max_body_bytes);

}  // namespace meridian::serve::front
