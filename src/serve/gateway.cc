#include "serve/gateway.h"

#include <openssl/ssl.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/secret.h"
#include "nlohmann/json.hpp"
#include "serve/http_front.h"
#include "serve/lb/policy/builtin.h"
#include "serve/predict_request.h"

namespace meridian::serve {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
// One concrete executor type, not Asio's type-erased default: otherwise
// every operation and coroutine resumption copies and calls through an
// any_executor, which showed throughout the gateway's perf profiles.
using Executor = net::io_context::executor_type;
template <typename T>
using Task = net::awaitable<T, Executor>;
constexpr net::use_awaitable_t<Executor> use_task;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor>;
using TlsSocket = ssl::stream<Socket&>;  // over a GuardedSocket's socket
using Acceptor = net::basic_socket_acceptor<tcp, Executor>;
using Timer = net::basic_waitable_timer<std::chrono::steady_clock,
                                        net::wait_traits<std::chrono::steady_clock>, Executor>;

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

Response JsonResponse(int status, const Json& body, unsigned version = 11) {
  Response res(static_cast<http::status>(status), version);
  res.set(http::field::content_type, "application/json");
  res.set(http::field::server, "meridian-gateway");
  res.body() = body.dump();
  return res;
}

Response Error(int status, const std::string& message) {
  return JsonResponse(status, Json{{"error", message}});
}

// CPUs this process may run on: its affinity mask (a container's cpuset or
// `taskset`), else every CPU online.
int UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

constexpr std::string_view kHttps = "https://";

// A replica id `https://HOST:PORT` is reached over TLS.
bool IsTlsHost(const std::string& host) { return host.rfind(kHttps, 0) == 0; }

absl::StatusOr<tcp::endpoint> ParseHostPort(std::string s) {
  if (IsTlsHost(s)) s = s.substr(kHttps.size());
  size_t colon = s.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(s.substr(colon + 1), &port) || port < 0 ||
      port > 65535)
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not HOST:PORT"));
  beast::error_code ec;
  std::string host = s.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  net::ip::address ip = net::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("'", s, "': ", ec.message()));
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

struct Endpoint {
  std::string name;
  std::string token;
  std::unique_ptr<lb::Upstreams> upstreams;
  std::atomic<uint64_t> requests{0}, failed{0};
};

using TimePoint = std::chrono::steady_clock::time_point;

// Timeouts of one worker's sockets. Each socket carries a deadline, set
// before each operation (cleared while a connection idles in a pool); one
// sweep every 100 ms cancels the operations of sockets past theirs. A timer
// per operation (what beast::tcp_stream arms) costs two more trips through
// the event loop per operation, one of them for the cancelled timer's
// handler. The gateway's timeouts are in seconds: 100 ms late is fine.
class Watchdog {
 public:
  struct Deadline {
    explicit Deadline(Socket* s) : socket(s) {}
    Socket* socket;
    TimePoint at = TimePoint::max();
    bool expired = false;  // the sweep cancelled this socket's operations
    void Set(TimePoint t) {
      at = t;
      expired = false;
    }
    void Clear() { at = TimePoint::max(); }
  };
  // Registered from the worker's thread, unregistered from any thread
  // (pools are emptied by SetEndpoints and Stop).
  void Add(Deadline* d) {
    std::lock_guard<std::mutex> l(mu_);
    all_.insert(d);
  }
  void Remove(Deadline* d) {
    std::lock_guard<std::mutex> l(mu_);
    all_.erase(d);
  }
  void Sweep(TimePoint now) {
    std::lock_guard<std::mutex> l(mu_);
    for (Deadline* d : all_) {
      if (d->at > now) continue;
      d->expired = true;  // again each sweep, until the operation ends
      beast::error_code ignored;
      d->socket->cancel(ignored);
    }
  }

 private:
  std::mutex mu_;
  std::set<Deadline*> all_;
};

// A socket whose operations the worker's watchdog times out.
struct GuardedSocket {
  GuardedSocket(Socket s, Watchdog* w) : socket(std::move(s)), deadline(&socket), watchdog(w) {
    watchdog->Add(&deadline);
  }
  GuardedSocket(net::io_context& ioc, Watchdog* w) : socket(ioc), deadline(&socket), watchdog(w) {
    watchdog->Add(&deadline);
  }
  ~GuardedSocket() { watchdog->Remove(&deadline); }
  GuardedSocket(const GuardedSocket&) = delete;
  GuardedSocket& operator=(const GuardedSocket&) = delete;
  // An aborted operation of an expired socket timed out.
  beast::error_code Outcome(beast::error_code ec) const {
    if (deadline.expired && (!ec || ec == net::error::operation_aborted))
      return beast::error::timeout;
    return ec;
  }
  Socket socket;
  Watchdog::Deadline deadline;
  Watchdog* watchdog;
};

// A keep-alive connection to a replica and its read buffer.
struct Upstream {
  Upstream(net::io_context& ioc, Watchdog* w) : conn(ioc, w) {}
  GuardedSocket conn;
  std::optional<TlsSocket> tls;  // over conn.socket, to an https:// replica
  beast::flat_buffer buffer;
};

// A kept health-check connection, over TLS to an https:// replica.
struct HealthConn {
  explicit HealthConn(net::io_context& ioc) : tcp(ioc) {}
  Stream tcp;
  std::optional<ssl::stream<Stream&>> tls;
};

// Sets up `tls` as a client of `host` (`https://HOST:PORT`): the server's
// name for SNI and the certificate's name (or IP address) verified.
template <class TlsStream>
void PrepareClientTls(TlsStream& tls, const std::string& host) {
  std::string name = host.substr(kHttps.size());
  name = name.substr(0, name.rfind(':'));
  beast::error_code ec;
  net::ip::make_address(name, ec);
  if (ec) SSL_set_tlsext_host_name(tls.native_handle(), name.c_str());  // a name, not an IP
  tls.set_verify_mode(ssl::verify_peer);
  tls.set_verify_callback(ssl::host_name_verification(name));
}

// Writes `msg`: at once when the socket takes all of it, as it nearly always
// does (a few hundred bytes), and asynchronously only for what is left.
// An async_write that completes at once still resumes its coroutine from
// the back of the event loop's queue, behind every event ready then; a
// proxy pays that wait twice per request. Needs the socket in non-blocking
// mode (a would-block write then returns, it does not wait).
template <bool isRequest>
Task<beast::error_code> WriteMessage(Socket& socket,
                                     const http::message<isRequest, http::string_body>& msg) {
  http::serializer<isRequest, http::string_body> sr(msg);
  beast::error_code ec;
  http::write(socket, sr, ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    co_await http::async_write(socket, sr, net::redirect_error(use_task, ec));
  }
  co_return ec;
}

// Sent to a connection over max_connections.
const std::string& BusyResponse() {
  static const std::string* text = [] {
    std::string body = ErrorJson("too many connections to this gateway; retry");
    return new std::string(
        absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nServer: meridian-gateway\r\n"
                     "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                     "Content-Length: ",
                     body.size(), "\r\n\r\n", body));
  }();
  return *text;
}

// The outcome of one forwarded request: an answer, or why there is none.
struct Forwarded {
  bool ok = false;
  Response response;
  std::string error;
};

}  // namespace

struct Gateway::Impl {
  Impl(GatewayOptions o, const Clock* c) : options(std::move(o)), clock(c) {}

  // One io_context per thread, as nginx has one event loop per worker: a
  // connection, its coroutines and its upstream pool stay on one thread
  // (one shared multi-threaded context costs a third more CPU per request).
  // Declared first: destroyed last, after everything that refers to them
  // (but the watchdogs, which the sockets in them refer to).
  std::vector<std::unique_ptr<Watchdog>> watchdogs;  // one per worker
  std::vector<std::unique_ptr<net::io_context>> iocs;
  std::unique_ptr<Acceptor> acceptor;
  std::atomic<size_t> next_worker{0};
  GatewayOptions options;
  const Clock* clock;
  lb::LbRegistry registry;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::optional<ssl::context> server_tls;    // --tls-cert: clients speak HTTPS
  std::optional<ssl::context> upstream_tls;  // for https:// replicas
  std::atomic<size_t> open_connections{0};       // client connections
  std::atomic<uint64_t> refused_connections{0};  // over max_connections
  int port = 0;
  uint64_t next_seed = 0;

  mutable std::mutex mu;  // guards endpoints (the map; each Endpoint guards itself)
  std::map<std::string, std::shared_ptr<Endpoint>> endpoints;

  // Idle keep-alive connections to replicas, one pool per worker thread.
  struct Pool {
    std::mutex mu;  // taken by its own thread, and by SetEndpoints and Stop
    std::map<std::string, std::vector<std::unique_ptr<Upstream>>> idle;
  };
  std::vector<std::unique_ptr<Pool>> pools;
  // One keep-alive connection per replica for health checks, kept between
  // checks (a new one each second would cost a connection setup, and a TLS
  // handshake, each time), and the replicas
  // being checked now (a check does not start while one of the same replica
  // runs). Touched only on the first worker's thread, where every check runs.
  // Both by HealthKey. Declared after `iocs`: destroyed before them.
  std::map<std::string, std::unique_ptr<HealthConn>> health_conns;
  std::set<std::string> checking;
  static std::string HealthKey(const Endpoint& ep, const std::string& host) {
    return absl::StrCat(ep.name, " ", host);  // a replica may serve two endpoints
  }

  absl::Status SetEndpoints(std::vector<EndpointConfig> configs);
  absl::Status SetUpTls();
  std::shared_ptr<Endpoint> Find(const std::string& name, std::string* known) const;

  Task<void> Listen();
  Task<void> Session(Socket socket, size_t worker);
  template <class S>
  Task<void> Serve(GuardedSocket& client, S& stream, size_t worker);
  Task<Response> Handle(Request& req, size_t worker);
  Task<Response> Proxy(std::shared_ptr<Endpoint> ep, Request& req, std::string target,
                       size_t worker);
  Task<Forwarded> Forward(const std::string& host, const Request& req, size_t worker);
  Task<void> HealthLoop();
  Task<void> Sweep(size_t worker);  // the worker's watchdog, every 100 ms
  Task<void> Check(std::shared_ptr<Endpoint> ep, std::string host);
  template <class S>
  Task<bool> Probe(S& conn, const std::string& host, int64_t* in_flight,
                   beast::error_code* error);

  std::unique_ptr<Upstream> TakeIdle(size_t worker, const std::string& host) {
    Pool& p = *pools[worker];
    std::lock_guard<std::mutex> l(p.mu);
    auto it = p.idle.find(host);
    if (it == p.idle.end() || it->second.empty()) return nullptr;
    std::unique_ptr<Upstream> s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }
  void PutIdle(size_t worker, const std::string& host, std::unique_ptr<Upstream> s) {
    Pool& p = *pools[worker];
    std::lock_guard<std::mutex> l(p.mu);
    auto& v = p.idle[host];
    if (v.size() < options.max_idle_per_host) v.push_back(std::move(s));
  }
  void DropIdle(size_t worker, const std::string& host) {
    Pool& p = *pools[worker];
    std::lock_guard<std::mutex> l(p.mu);
    p.idle.erase(host);
  }
  Json Status() const;
};

absl::Status Gateway::Impl::SetEndpoints(std::vector<EndpointConfig> configs) {
  std::map<std::string, std::shared_ptr<Endpoint>> next;
  std::set<std::string> live_hosts;
  {
    std::lock_guard<std::mutex> l(mu);
    for (EndpointConfig& c : configs) {
      std::shared_ptr<Endpoint> ep;
      if (auto it = endpoints.find(c.name); it != endpoints.end()) {
        ep = it->second;
      } else {
        absl::StatusOr<std::unique_ptr<lb::Policy>> p =
            registry.Make(options.policy, options.policy_options);
        if (!p.ok()) return p.status();
        ep = std::make_shared<Endpoint>();
        ep->name = c.name;
        ep->upstreams = std::make_unique<lb::Upstreams>(*std::move(p), options.outlier, clock,
                                                        options.seed + next_seed++);
      }
      for (const std::string& h : ep->upstreams->SetHosts(c.hosts))
        if (!stopping && options.health.interval_s > 0 && !iocs.empty())
          net::co_spawn(*iocs[0], Check(ep, h), net::detached);  // new: check it now
      for (const lb::HostConfig& h : c.hosts) live_hosts.insert(h.id);
      next[c.name] = ep;
      // The token is read by request handlers: swap it under the map lock.
      ep->token = c.token;
    }
    endpoints.swap(next);
  }
  // Connections to replicas that are gone are closed on their own thread.
  for (size_t w = 0; w < pools.size(); ++w) {
    net::post(*iocs[w], [this, w, live_hosts] {
      Pool& p = *pools[w];
      std::lock_guard<std::mutex> l(p.mu);
      for (auto it = p.idle.begin(); it != p.idle.end();)
        it = live_hosts.count(it->first) ? std::next(it) : p.idle.erase(it);
    });
  }
  return absl::OkStatus();
}

std::shared_ptr<Endpoint> Gateway::Impl::Find(const std::string& name, std::string* known) const {
  std::lock_guard<std::mutex> l(mu);
  if (name.empty() && endpoints.size() == 1) return endpoints.begin()->second;
  auto it = endpoints.find(name);
  if (it != endpoints.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, e] : endpoints) names.push_back(n);
  *known = names.empty() ? "none" : absl::StrJoin(names, ", ");
  return nullptr;
}

Task<void> Gateway::Impl::Listen() {
  for (;;) {
    beast::error_code ec;
    size_t worker = next_worker++ % iocs.size();
    Socket socket(*iocs[worker]);
    co_await acceptor->async_accept(socket, net::redirect_error(use_task, ec));
    if (stopping) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted || ec == net::error::bad_descriptor) co_return;
      continue;  // EMFILE and the like: go on accepting
    }
    socket.non_blocking(true, ec);  // for WriteMessage, and the 503 below
    if (open_connections >= options.max_connections) {
      ++refused_connections;
      const std::string& busy = BusyResponse();  // best effort, without waiting
      if (!server_tls) socket.write_some(net::buffer(busy), ec);
      socket.shutdown(Socket::shutdown_send, ec);
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++open_connections;
    net::co_spawn(*iocs[worker], Session(std::move(socket), worker),
                  [this](std::exception_ptr) { --open_connections; });
  }
}

Task<void> Gateway::Impl::Session(Socket socket, size_t worker) {
  GuardedSocket client(std::move(socket), watchdogs[worker].get());
  if (!server_tls) {
    co_await Serve(client, client.socket, worker);
  } else {
    TlsSocket tls(client.socket, *server_tls);
    beast::error_code ec;
    client.deadline.Set(std::chrono::steady_clock::now() + Seconds(options.request_timeout_s));
    co_await tls.async_handshake(ssl::stream_base::server, net::redirect_error(use_task, ec));
    if (!client.Outcome(ec)) {
      co_await Serve(client, tls, worker);
      client.deadline.Set(std::chrono::steady_clock::now() + std::chrono::seconds(1));
      co_await tls.async_shutdown(net::redirect_error(use_task, ec));
    }
  }
  beast::error_code ignored;
  client.socket.shutdown(Socket::shutdown_both, ignored);
}

// The requests of one client connection, on `stream` (the client's socket,
// or TLS over it).
template <class S>
Task<void> Gateway::Impl::Serve(GuardedSocket& client, S& stream, size_t worker) {
  constexpr bool kPlain = std::is_same_v<S, Socket>;
  beast::flat_buffer buffer;
  bool refused = false;  // answered a request it did not read to its end
  for (;;) {
    beast::error_code ec;
    // Idle: the first byte of the next request, unless it is buffered already.
    if (buffer.size() == 0) {
      client.deadline.Set(std::chrono::steady_clock::now() + Seconds(options.idle_timeout_s));
      size_t n = co_await stream.async_read_some(buffer.prepare(16 * 1024),
                                                 net::redirect_error(use_task, ec));
      buffer.commit(n);
      if (client.Outcome(ec)) break;
    }
    // The header and the body within the request timeout; the framing is
    // checked before any of the body is read.
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    parser.header_limit(16 * 1024);
    client.deadline.Set(std::chrono::steady_clock::now() + Seconds(options.request_timeout_s));
    co_await http::async_read_header(stream, buffer, parser, net::redirect_error(use_task, ec));
    ec = client.Outcome(ec);
    std::optional<Response> refusal;
    if (!ec) {
      if (absl::Status f = front::CheckFraming(parser.get()); !f.ok()) {
        refusal = Error(400, std::string(f.message()));
      } else {
        co_await http::async_read(stream, buffer, parser, net::redirect_error(use_task, ec));
        ec = client.Outcome(ec);
      }
    }
    Response res;
    bool keep_alive = false;
    refused = refusal || ec == http::error::body_limit ||
              (ec && ec.category() == http::make_error_code(http::error::bad_method).category());
    if (refusal) {
      res = *std::move(refusal);
    } else if (ec == http::error::body_limit) {
      res = Error(413, absl::StrCat("request body over the limit of ", options.max_body_bytes,
                                    " bytes"));
    } else if (ec && ec.category() == http::make_error_code(http::error::bad_method).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      res = Error(400, absl::StrCat("malformed HTTP request: ", ec.message()));
    } else if (ec) {
      break;  // closed, reset or timed out: nothing to answer
    } else {
      Request req = parser.release();
      keep_alive = req.keep_alive();
      unsigned version = req.version();  // Handle rewrites req for the replica
      res = co_await Handle(req, worker);
      res.version(version);
    }
    res.keep_alive(keep_alive && !stopping);
    res.prepare_payload();
    client.deadline.Set(std::chrono::steady_clock::now() + Seconds(options.request_timeout_s));
    if constexpr (kPlain) {
      ec = co_await WriteMessage(stream, res);
    } else {
      co_await http::async_write(stream, res, net::redirect_error(use_task, ec));
    }
    ec = client.Outcome(ec);
    if (ec || !res.keep_alive()) break;
  }
  if (refused && kPlain) {
    // Lingering close: the client may still be sending what we refused;
    // closing with it unread would reset the connection, and the reset can
    // destroy our answer before the client reads it. Read and drop it (1 s
    // at most), after saying we are done.
    beast::error_code ec;
    client.socket.shutdown(Socket::shutdown_send, ec);
    client.deadline.Set(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    for (int i = 0; i < 256 && !ec; ++i) {
      buffer.consume(buffer.size());
      co_await stream.async_read_some(buffer.prepare(16 * 1024), net::redirect_error(use_task, ec));
    }
  }
}

Task<Response> Gateway::Impl::Handle(Request& req, size_t worker) {
  absl::StatusOr<front::Route> route =
      front::RouteTarget(std::string_view(req.target().data(), req.target().size()));
  if (!route.ok())
    co_return Error(front::HttpStatus(route.status()), std::string(route.status().message()));
  if (route->kind == front::Route::Kind::kHealth)
    co_return JsonResponse(200, Json{{"status", "ok"}});
  if (route->kind == front::Route::Kind::kStatus) co_return JsonResponse(200, Status());
  std::string name = std::move(route->endpoint);
  std::string upstream_target = std::move(route->upstream_target);
  std::string known;
  std::shared_ptr<Endpoint> ep = Find(name, &known);
  if (!ep) {
    co_return Error(404, name.empty()
                             ? absl::StrCat("name the endpoint: /v1/endpoints/NAME/...; endpoints: ",
                                            known)
                             : absl::StrCat("no endpoint '", name, "'; endpoints: ", known));
  }
  std::string token;
  {
    std::lock_guard<std::mutex> l(mu);
    token = ep->token;
  }
  if (!token.empty()) {
    auto it = req.find(http::field::authorization);
    std::string_view given;
    if (it != req.end()) given = std::string_view(it->value().data(), it->value().size());
    if (!SameSecret(given, "Bearer " + token)) {
      Response res = Error(401, it == req.end()
                                    ? absl::StrCat("endpoint ", ep->name,
                                                   " needs a bearer token (Authorization: Bearer ...)")
                                    : absl::StrCat("wrong token for endpoint ", ep->name));
      res.set(http::field::www_authenticate, "Bearer realm=\"meridian\"");
      co_return res;
    }
  }
  co_return co_await Proxy(std::move(ep), req, std::move(upstream_target), worker);
}

Task<Response> Gateway::Impl::Proxy(std::shared_ptr<Endpoint> ep, Request& req,
                                    std::string target, size_t worker) {
  ++ep->requests;
  lb::PickContext ctx;
  auto region = req.find("X-Meridian-Region");
  ctx.client_region = region == req.end() ? options.region : std::string(region->value());
  // The caller's zone: its header, else the gateway's when the caller is
  // taken to be in the gateway's region.
  auto zone = req.find("X-Meridian-Zone");
  if (zone != req.end()) {
    ctx.client_zone = std::string(zone->value());
  } else if (region == req.end()) {
    ctx.client_zone = options.zone;
  }
  auto key = req.find("X-Affinity-Key");
  if (key != req.end()) ctx.affinity_key = std::string(key->value());
  // The client's request, rewritten in place for the replica.
  Request& up = req;
  front::StripHopByHop(up);
  up.target(target);
  up.version(11);
  up.keep_alive(true);
  up.erase(http::field::authorization);
  up.prepare_payload();
  std::vector<std::string> tried;
  Response last;
  bool have_last = false;
  bool only_unreachable = true;  // every attempt failed to connect
  std::string unreachable;
  for (int attempt = 0; attempt <= options.retries; ++attempt) {
    std::optional<std::string> host = ep->upstreams->Pick(ctx, tried);
    if (!host) break;
    tried.push_back(*host);
    auto t0 = std::chrono::steady_clock::now();
    Forwarded f = co_await Forward(*host, up, worker);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool ok = f.ok && f.response.result_int() < 500;
    ep->upstreams->Done(*host, ok, ms);
    if (ok) {
      f.response.set("X-Meridian-Replica", *host);
      co_return std::move(f.response);
    }
    have_last = true;
    if (!f.ok && absl::StartsWith(f.error, "connect")) {
      absl::StrAppend(&unreachable, unreachable.empty() ? "" : "; ", *host, ": ", f.error);
    } else {
      only_unreachable = false;
    }
    if (f.ok) {
      last = std::move(f.response);
    } else {
      last = Error(f.error.find("timed out") != std::string::npos ? 504 : 502,
                   absl::StrCat("replica ", *host, " of endpoint ", ep->name, ": ", f.error));
    }
    last.set("X-Meridian-Replica", *host);
  }
  ++ep->failed;
  if (have_last && only_unreachable)
    co_return Error(503, absl::StrCat("no replica of endpoint ", ep->name, " could be reached (",
                                      unreachable, ")"));
  if (have_last) co_return last;
  co_return Error(503, absl::StrCat("no healthy replica for endpoint ", ep->name, " (",
                                    ep->upstreams->Describe(), ")"));
}

Task<Forwarded> Gateway::Impl::Forward(const std::string& host, const Request& req,
                                       size_t worker) {
  Forwarded out;
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<Upstream> conn = round == 0 ? TakeIdle(worker, host) : nullptr;
    bool reused = conn != nullptr;
    beast::error_code ec;
    if (!conn) {
      absl::StatusOr<tcp::endpoint> to = ParseHostPort(host);
      if (!to.ok()) {
        out.error = std::string(to.status().message());
        co_return out;
      }
      conn = std::make_unique<Upstream>(*iocs[worker], watchdogs[worker].get());
      Socket& socket = conn->conn.socket;
      conn->conn.deadline.Set(std::chrono::steady_clock::now() +
                              Seconds(options.connect_timeout_s));
      co_await socket.async_connect(*to, net::redirect_error(use_task, ec));
      ec = conn->conn.Outcome(ec);
      if (ec) {
        out.error = ec == beast::error::timeout
                        ? absl::StrCat("connect timed out after ", options.connect_timeout_s, " s")
                        : absl::StrCat("connect: ", ec.message());
        co_return out;
      }
      socket.set_option(tcp::no_delay(true), ec);
      socket.non_blocking(true, ec);  // for WriteMessage
      if (IsTlsHost(host)) {
        conn->tls.emplace(socket, *upstream_tls);
        PrepareClientTls(*conn->tls, host);
        co_await conn->tls->async_handshake(ssl::stream_base::client,
                                            net::redirect_error(use_task, ec));
        ec = conn->conn.Outcome(ec);
        if (ec) {
          out.error = ec == beast::error::timeout
                          ? absl::StrCat("TLS handshake timed out after ", options.connect_timeout_s,
                                         " s")
                          : absl::StrCat("TLS handshake: ", ec.message());
          co_return out;
        }
      }
    }
    // One deadline for sending the request and reading the whole answer.
    conn->conn.deadline.Set(std::chrono::steady_clock::now() +
                            Seconds(options.upstream_timeout_s));
    if (conn->tls) {
      co_await http::async_write(*conn->tls, req, net::redirect_error(use_task, ec));
      ec = conn->conn.Outcome(ec);
    } else {
      ec = conn->conn.Outcome(co_await WriteMessage(conn->conn.socket, req));
    }
    if (!ec) {
      http::response_parser<http::string_body> parser;
      parser.body_limit(64 << 20);
      if (conn->tls) {
        co_await http::async_read(*conn->tls, conn->buffer, parser,
                                  net::redirect_error(use_task, ec));
      } else {
        co_await http::async_read(conn->conn.socket, conn->buffer, parser,
                                  net::redirect_error(use_task, ec));
      }
      ec = conn->conn.Outcome(ec);
      if (!ec) {
        out.ok = true;
        out.response = parser.release();
        if (out.response.keep_alive() && !stopping) {
          conn->conn.deadline.Clear();
          PutIdle(worker, host, std::move(conn));
        }
        out.response.keep_alive(true);
        co_return out;
      }
    }
    // A pooled connection the replica has closed meanwhile: once more, fresh.
    if (reused && (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                   ec == net::error::broken_pipe || ec == net::error::eof ||
                   ec == ssl::error::stream_truncated))
      continue;
    out.error = ec == beast::error::timeout
                    ? absl::StrCat("timed out after ", options.upstream_timeout_s, " s")
                    : ec.message();
    if (ec != beast::error::timeout) DropIdle(worker, host);  // the others are likely dead too
    co_return out;
  }
  out.error = "connection closed";
  co_return out;
}

Task<void> Gateway::Impl::Sweep(size_t worker) {
  Timer timer(*iocs[worker]);
  while (!stopping) {
    timer.expires_after(std::chrono::milliseconds(100));
    beast::error_code ec;
    co_await timer.async_wait(net::redirect_error(use_task, ec));
    if (ec) co_return;
    watchdogs[worker]->Sweep(std::chrono::steady_clock::now());
  }
}

Task<void> Gateway::Impl::HealthLoop() {
  Timer timer(*iocs[0]);
  for (;;) {
    // SetEndpoints checked every replica at once: the first round waits.
    timer.expires_after(Seconds(options.health.interval_s));
    beast::error_code ec;
    co_await timer.async_wait(net::redirect_error(use_task, ec));
    if (stopping) co_return;
    std::vector<std::pair<std::shared_ptr<Endpoint>, std::string>> checks;
    {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& [name, ep] : endpoints)
        for (const std::string& h : ep->upstreams->HostIds()) checks.emplace_back(ep, h);
    }
    std::set<std::string> keys;
    for (auto& [ep, h] : checks) keys.insert(HealthKey(*ep, h));
    for (auto it = health_conns.begin(); it != health_conns.end();)  // replicas now gone
      it = keys.count(it->first) ? std::next(it) : health_conns.erase(it);
    for (auto& [ep, h] : checks) net::co_spawn(*iocs[0], Check(ep, h), net::detached);
  }
}

Task<void> Gateway::Impl::Check(std::shared_ptr<Endpoint> ep, std::string host) {
  const std::string key = HealthKey(*ep, host);
  if (!checking.insert(key).second) co_return;  // the running check reports
  bool ok = false;
  int64_t in_flight = -1;
  absl::StatusOr<tcp::endpoint> to = ParseHostPort(host);
  if (to.ok()) {
    std::unique_ptr<HealthConn> conn;
    if (auto it = health_conns.find(key); it != health_conns.end()) {
      conn = std::move(it->second);
      health_conns.erase(it);
    }
    beast::error_code ec;
    for (int round = 0; round < 2; ++round) {
      bool reused = conn != nullptr;
      if (!reused) {
        conn = std::make_unique<HealthConn>(*iocs[0]);
        conn->tcp.expires_after(Seconds(options.health.timeout_s));
        co_await conn->tcp.async_connect(*to, net::redirect_error(use_task, ec));
        if (!ec && IsTlsHost(host)) {
          conn->tls.emplace(conn->tcp, *upstream_tls);
          PrepareClientTls(*conn->tls, host);
          co_await conn->tls->async_handshake(ssl::stream_base::client,
                                              net::redirect_error(use_task, ec));
        }
        if (ec) {
          conn.reset();
          break;
        }
      }
      conn->tcp.expires_after(Seconds(options.health.timeout_s));
      if (conn->tls) {
        ok = co_await Probe(*conn->tls, host, &in_flight, &ec);
      } else {
        ok = co_await Probe(conn->tcp, host, &in_flight, &ec);
      }
      if (!ec) break;  // answered, ready or not
      ok = false;
      conn.reset();
      // A kept connection the replica closed meanwhile: once more, fresh.
      if (!reused || ec == beast::error::timeout) break;
    }
    if (ok && conn && !stopping) {
      conn->tcp.expires_never();
      health_conns[key] = std::move(conn);  // keep it for the next check
    }
  }
  checking.erase(key);
  ep->upstreams->HealthResult(host, ok, in_flight, options.health.unhealthy_threshold,
                              options.health.healthy_threshold);
}

// GET /readyz, then (when ready) /metrics on `conn`: true when ready, with
// the replica's requests in flight (less this probe) in *in_flight when it
// says. *error: why there was no answer, if there was none.
template <class S>
Task<bool> Gateway::Impl::Probe(S& conn, const std::string& host, int64_t* in_flight,
                                beast::error_code* error) {
  bool ok = false;
  beast::error_code ec;
  beast::flat_buffer buffer;
  for (const char* path : {"/readyz", "/metrics"}) {
    Request req(http::verb::get, path, 11);
    req.set(http::field::host, host);
    req.keep_alive(true);
    co_await http::async_write(conn, req, net::redirect_error(use_task, ec));
    Response res;
    if (!ec) co_await http::async_read(conn, buffer, res, net::redirect_error(use_task, ec));
    if (ec) break;
    if (std::string(path) == "/readyz") {
      ok = res.result_int() == 200;
      if (!ok) break;
    } else {
      Json m = Json::parse(res.body(), nullptr, false);
      if (m.is_object() && m.contains("in_flight") && m["in_flight"].is_number_integer())
        *in_flight = std::max<int64_t>(0, m["in_flight"].get<int64_t>() - 1);  // not this probe
    }
  }
  *error = ec;
  co_return ok;
}

Json Gateway::Impl::Status() const {
  Json eps = Json::array();
  std::map<std::string, std::shared_ptr<Endpoint>> copy;
  {
    std::lock_guard<std::mutex> l(mu);
    copy = endpoints;
  }
  for (const auto& [name, ep] : copy) {
    Json replicas = Json::array();
    for (const lb::HostStatus& h : ep->upstreams->Status()) {
      Json r{{"address", h.id},        {"region", h.region},     {"zone", h.zone},
             {"healthy", h.healthy},   {"ejected", h.ejected},
             {"in_flight", h.in_flight}, {"latency_ms", h.latency_ms},
             {"requests", h.requests}, {"errors", h.errors},
             {"ejections", h.ejections}};
      if (h.ejected) r["ejected_for_s"] = h.ejected_for_s;
      if (!h.last_ejection_reason.empty()) r["last_ejection"] = h.last_ejection_reason;
      replicas.push_back(std::move(r));
    }
    eps.push_back(Json{{"name", name},
                       {"policy", std::string(ep->upstreams->policy_name())},
                       {"requests", ep->requests.load()},
                       {"failed", ep->failed.load()},
                       {"replicas", replicas}});
  }
  return Json{{"endpoints", eps},
              {"connections_open", open_connections.load()},
              {"connections_refused", refused_connections.load()},
              {"policy", options.policy},
              {"threads", options.threads},
              {"region", options.region},
              {"zone", options.zone}};
}

absl::Status Gateway::Impl::SetUpTls() {
  beast::error_code ec;
  if (options.tls_cert.empty() != options.tls_key.empty())
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (!options.tls_cert.empty()) {
    server_tls.emplace(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(server_tls->native_handle(), TLS1_2_VERSION);
    server_tls->use_certificate_chain_file(options.tls_cert, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-cert ", options.tls_cert, ": ", ec.message()));
    server_tls->use_private_key_file(options.tls_key, ssl::context::pem, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key ", options.tls_key, ": ", ec.message()));
  }
  upstream_tls.emplace(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(upstream_tls->native_handle(), TLS1_2_VERSION);
  if (options.upstream_ca.empty()) {
    upstream_tls->set_default_verify_paths(ec);
  } else {
    upstream_tls->load_verify_file(options.upstream_ca, ec);
  }
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream-ca ", options.upstream_ca.empty() ? "(system default)" : options.upstream_ca,
        ": ", ec.message()));
  return absl::OkStatus();
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(GatewayOptions options,
                                                        std::vector<EndpointConfig> endpoints,
                                                        const Clock* clock) {
  if (absl::Status s = CheckPolicy(options.policy, options.policy_options); !s.ok()) return s;
  absl::StatusOr<tcp::endpoint> listen = ParseHostPort(options.listen);
  if (!listen.ok())
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", listen.status().message()));
  if (options.threads == 0) options.threads = UsableCpus();
  if (options.threads < 1) options.threads = 1;
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  for (int i = 0; i < impl->options.threads; ++i) {
    impl->iocs.push_back(std::make_unique<net::io_context>(1));
    impl->pools.push_back(std::make_unique<Impl::Pool>());
    impl->watchdogs.push_back(std::make_unique<Watchdog>());
  }
  impl->acceptor = std::make_unique<Acceptor>(*impl->iocs[0]);
  if (absl::Status s = impl->SetUpTls(); !s.ok()) return s;
  lb::RegisterBuiltinLbPolicies(impl->registry);
  if (absl::Status s = impl->SetEndpoints(std::move(endpoints)); !s.ok()) return s;
  beast::error_code ec;
  impl->acceptor->open(listen->protocol(), ec);
  if (!ec) impl->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(*listen, ec);
  if (!ec) impl->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", impl->options.listen, ": ", ec.message()));
  impl->port = impl->acceptor->local_endpoint().port();
  Impl* p = impl.get();
  net::co_spawn(*p->iocs[0], p->Listen(), net::detached);
  if (p->options.health.interval_s > 0) net::co_spawn(*p->iocs[0], p->HealthLoop(), net::detached);
  for (size_t w = 0; w < p->iocs.size(); ++w)
    net::co_spawn(*p->iocs[w], p->Sweep(w), net::detached);
  for (auto& ioc : p->iocs) {
    net::io_context* c = ioc.get();
    p->threads.emplace_back([c] {
      auto work = net::make_work_guard(*c);  // idle workers wait for connections
      c->run();
    });
  }
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Gateway::~Gateway() { Stop(); }

void Gateway::Stop() {
  if (impl_->stopping.exchange(true)) return;
  for (auto& ioc : impl_->iocs) ioc->stop();
  for (std::thread& t : impl_->threads) t.join();
  beast::error_code ec;
  impl_->acceptor->close(ec);
  for (auto& p : impl_->pools) p->idle.clear();
}

void Gateway::SetEndpoints(std::vector<EndpointConfig> endpoints) {
  (void)impl_->SetEndpoints(std::move(endpoints));  // the policy was checked at Start
}

int Gateway::port() const { return impl_->port; }

std::string Gateway::StatusJson() const { return impl_->Status().dump(); }

std::vector<EndpointLoad> Gateway::Load() const {
  std::map<std::string, std::shared_ptr<Endpoint>> copy;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    copy = impl_->endpoints;
  }
  std::vector<EndpointLoad> out;
  for (const auto& [name, ep] : copy) {
    EndpointLoad e;
    e.name = name;
    e.in_flight = ep->upstreams->InFlight();
    e.requests = ep->requests;
    e.failed = ep->failed;
    for (const lb::HostStatus& h : ep->upstreams->Status()) {
      ++e.replicas;
      if (h.healthy && !h.ejected) ++e.eligible;
    }
    out.push_back(e);
  }
  return out;
}

absl::Status CheckPolicy(const std::string& policy, const lb::LbOptions& options) {
  lb::LbRegistry r;
  lb::RegisterBuiltinLbPolicies(r);
  return r.Make(policy, options).status();
}

}  // namespace meridian::serve
