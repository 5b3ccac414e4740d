// Readiness probes: one HTTP/1.1 GET of a path on HOST:PORT, as the agent
// does for a run whose job has a `readiness_path` (the run's own
// MASTER_ADDR:MASTER_PORT, so only addresses the controller handed out).
//
// Blocking (Boost.Beast on a private io_context), with one deadline for
// connect, send and the answer (body at most 64 KiB). Thread-safe (no state).
#pragma once

#include <string>

namespace meridian::agent {

struct ProbeResult {
  bool ready = false;  // the answer's status was 200
  int status = 0;      // HTTP status; 0 when none arrived
  std::string error;   // why there is no status (connect refused, timeout, ...)
};

// GET `path` from HOST:PORT (a numeric IPv4/IPv6 address or a name) within
// `timeout_s`.
ProbeResult ProbeHttp(const std::string& host, int port, const std::string& path, double timeout_s);

}  // namespace meridian::agent
