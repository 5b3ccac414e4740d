// ProbeHttp against real sockets on 127.0.0.1: a tiny server thread that
// answers with a chosen status, a port nobody listens on, and a server that
// accepts but never answers (the deadline ends the probe).
#include "agent/probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A listening socket on 127.0.0.1 with a kernel-chosen port.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  int fd() const { return fd_; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Accepts one connection, reads the request head into *request, answers
// `answer` (nothing when empty, holding the connection until `hold_ms`).
std::thread ServeOnce(const Listener& l, std::string answer, std::string* request,
                      int hold_ms = 0) {
  return std::thread([fd = l.fd(), answer, request, hold_ms] {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::string got;
    char buf[512];
    while (got.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    *request = got;
    if (!answer.empty()) (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    if (hold_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    ::close(c);
  });
}

// Probes a server that answers `answer` once; its request head in *request.
ProbeResult ProbeServer(const std::string& answer, std::string* request) {
  Listener l;
  std::thread t = ServeOnce(l, answer, request);
  ProbeResult r = ProbeHttp("127.0.0.1", l.port(), "/readyz", 2.0);
  t.join();
  return r;
}

TEST(ProbeTest, ReadyOnlyOnA200) {
  std::string request;
  ProbeResult r = ProbeServer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &request);
  EXPECT_TRUE(r.ready) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(request, StartsWith("GET /readyz HTTP/1.1\r\n"));

  r = ProbeServer("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", &request);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.status, 503);
}

TEST(ProbeTest, NobodyListeningIsNotReadyAndSaysWhy) {
  int port = 0;
  {
    Listener l;  // a port that was free a moment ago and is closed now
    port = l.port();
  }
  ProbeResult r = ProbeHttp("127.0.0.1", port, "/readyz", 2.0);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.error, HasSubstr("connect"));
}

TEST(ProbeTest, AServerThatNeverAnswersEndsAtTheDeadline) {
  Listener l;
  std::string request;
  std::thread t = ServeOnce(l, "", &request, 1500);
  ProbeResult r = ProbeHttp("127.0.0.1", l.port(), "/readyz", 0.3);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.error, HasSubstr("timed out"));
  t.join();
}

TEST(ProbeTest, NotHttpIsNotReady) {
  std::string request;
  ProbeResult r = ProbeServer("SSH-2.0-OpenSSH\r\n", &request);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.error, HasSubstr("read"));
}

}  // namespace
}  // namespace meridian::agent
