#include "serve/http_front.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "serve/predict_request.h"

namespace meridian::serve::front {
namespace {

// This abseil's string_view is its own type, not std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
absl::string_view AV(boost::beast::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view SV(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

bool IsDigits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;  // 18 digits: no overflow of uint64
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// RFC 3986 pchar, less '%' (escapes are checked apart).
bool IsPathChar(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':  // unreserved
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':  // sub-delims
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
    case '/':
      return true;
    default:
      return false;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::Status CheckPath(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '%') {
      int hi = i + 2 < path.size() ? HexValue(path[i + 1]) : -1;
      int lo = hi >= 0 ? HexValue(path[i + 2]) : -1;
      if (lo < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("request path '", Printable(path), "' has a malformed % escape"));
      int v = hi * 16 + lo;
      if (v == '.' || v == '/' || v == '\\' || v == '%' || v < 0x20 || v >= 0x7f)
        return absl::InvalidArgumentError(absl::StrCat(
            "request path '", Printable(path),
            "' percent-encodes a dot, slash, backslash, % or control byte; send it plainly"));
      i += 2;
    } else if (!IsPathChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("request path '", Printable(path),
                                                     "' has a byte not allowed in a URI path"));
    }
  }
  std::vector<absl::string_view> segments = absl::StrSplit(AV(path.substr(1)), '/');
  for (size_t i = 0; i < segments.size(); ++i) {
    absl::string_view s = segments[i];
    if (s == "." || s == "..")
      return absl::InvalidArgumentError(
          absl::StrCat("request path '", Printable(path), "' has a '", s, "' segment"));
    if (s.empty() && i + 1 < segments.size())
      return absl::InvalidArgumentError(
          absl::StrCat("request path '", Printable(path), "' has an empty segment ('//')"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFraming(const http::fields& fields) {
  int te_fields = 0, cl_fields = 0;
  std::string te;
  std::string_view cl;
  for (const auto& f : fields) {
    if (f.name() == http::field::transfer_encoding) {
      ++te_fields;
      absl::StrAppend(&te, te.empty() ? "" : ",", AV(f.value()));
    } else if (f.name() == http::field::content_length) {
      ++cl_fields;
      cl = SV(f.value());
    }
  }
  if (te_fields > 0) {
    if (cl_fields > 0)
      return absl::InvalidArgumentError(
          "request has both Transfer-Encoding and Content-Length; send one");
    std::vector<absl::string_view> codings = absl::StrSplit(te, ',');
    if (te_fields != 1 || codings.size() != 1 ||
        !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(codings[0]), "chunked"))
      return absl::InvalidArgumentError(absl::StrCat("unsupported Transfer-Encoding '",
                                                     Printable(te),
                                                     "': only a single 'chunked' is accepted"));
  }
  if (cl_fields > 1) return absl::InvalidArgumentError("request has more than one Content-Length");
  if (cl_fields == 1 && !IsDigits(cl))
    return absl::InvalidArgumentError(
        absl::StrCat("Content-Length '", Printable(cl), "' is not a number of bytes"));
  return absl::OkStatus();
}

void StripHopByHop(http::fields& fields) {
  std::vector<std::string> named;  // by Connection
  for (const auto& f : fields) {
    if (f.name() != http::field::connection) continue;
    for (absl::string_view token : absl::StrSplit(AV(f.value()), ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (!token.empty()) named.emplace_back(token.data(), token.size());
    }
  }
  for (const std::string& n : named) fields.erase(n);
  for (http::field f : {http::field::connection, http::field::keep_alive, http::field::te,
                        http::field::trailer, http::field::transfer_encoding, http::field::upgrade})
    fields.erase(f);
  std::vector<std::string> proxy;
  for (const auto& f : fields)
    if (absl::StartsWithIgnoreCase(AV(f.name_string()), "proxy-"))
      proxy.emplace_back(f.name_string());
  for (const std::string& n : proxy) fields.erase(n);
}

absl::StatusOr<Route> RouteTarget(std::string_view target) {
  if (target.empty() || target[0] != '/')
    return absl::InvalidArgumentError(
        absl::StrCat("request target '", Printable(target), "' is not a path (/...)"));
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? "" : target.substr(q);
  if (absl::Status s = CheckPath(path); !s.ok()) return s;
  for (unsigned char c : query)
    if (c <= 0x20 || c >= 0x7f || c == '#')
      return absl::InvalidArgumentError(
          absl::StrCat("request query '", Printable(query), "' has a byte not allowed there"));
  Route r;
  if (path == "/healthz") return r;
  if (path == "/gateway/status" || path == "/metrics") {
    r.kind = Route::Kind::kStatus;
    return r;
  }
  r.kind = Route::Kind::kProxy;
  constexpr std::string_view kPrefix = "/v1/endpoints/";
  if (absl::StartsWith(AV(path), AV(kPrefix))) {
    std::string_view rest = path.substr(kPrefix.size());
    size_t slash = rest.find('/');
    r.endpoint = std::string(rest.substr(0, slash));
    if (r.endpoint.empty()) return absl::NotFoundError("name the endpoint: /v1/endpoints/NAME/...");
    r.upstream_target = slash == std::string_view::npos
                            ? absl::StrCat("/v1/", AV(query))
                            : absl::StrCat("/v1", AV(rest.substr(slash)), AV(query));
    return r;
  }
  if (absl::StartsWith(AV(path), "/v1/")) {
    r.upstream_target = std::string(target);  // the only endpoint, if there is one
    return r;
  }
  return absl::NotFoundError(
      absl::StrCat("no such path ", Printable(path),
                   "; try POST /v1/endpoints/NAME/predict, GET /healthz, GET /gateway/status"));
}

int HttpStatus(const absl::Status& s) {
  if (absl::IsInvalidArgument(s)) return 400;
  if (absl::IsNotFound(s)) return 404;
  return 500;
}

FrontResult ParseFront(std::string_view raw, size_t max_body_bytes) {
  FrontResult out;
  auto fail = [&out](int status, std::string message) {
    out.status = status;
    out.error = std::move(message);
    return std::move(out);
  };
  http::request_parser<http::string_body> parser;
  parser.eager(false);
  parser.header_limit(16 * 1024);
  parser.body_limit(max_body_bytes);
  boost::beast::error_code ec;
  size_t used = parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (ec == http::error::need_more || (!ec && !parser.is_header_done()))
    return fail(400, "incomplete HTTP request header");
  if (ec == http::error::body_limit)
    return fail(413, absl::StrCat("request body over the limit of ", max_body_bytes, " bytes"));
  if (ec) return fail(400, absl::StrCat("malformed HTTP request: ", ec.message()));
  if (absl::Status s = CheckFraming(parser.get()); !s.ok())
    return fail(400, std::string(s.message()));
  absl::StatusOr<Route> route = RouteTarget(SV(parser.get().target()));
  if (!route.ok()) return fail(HttpStatus(route.status()), std::string(route.status().message()));
  parser.eager(true);
  raw.remove_prefix(used);
  while (!parser.is_done() && !ec) {
    size_t n = parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
    raw.remove_prefix(n);
    if (n == 0 && !ec) break;
  }
  if (ec == http::error::body_limit)
    return fail(413, absl::StrCat("request body over the limit of ", max_body_bytes, " bytes"));
  if (ec && ec != http::error::need_more)
    return fail(400, absl::StrCat("malformed HTTP request: ", ec.message()));
  if (!parser.is_done()) return fail(400, "incomplete HTTP request body");
  out.route = *std::move(route);
  out.request = parser.release();
  StripHopByHop(out.request);
  return out;
}

}  // namespace meridian::serve::front
