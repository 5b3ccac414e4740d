// netemu: the link model on exact numbers; the relay carries bytes intact,
// both ways, passes end-of-stream on and counts what it carried.
#include "netemu/netemu.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"

namespace meridian::netemu {
namespace {

TEST(LinkModelTest, DelayAndBandwidthSerialiseChunks) {
  LinkOptions o;
  o.one_way_delay_ms = 40;
  o.mbps = 100;  // 1,250,000 bytes take 0.1 s
  LinkModel m(o);
  EXPECT_DOUBLE_EQ(m.Deliver(0.0, 1'250'000), 0.1 + 0.04);
  // Arrives while the link is busy: waits for it.
  EXPECT_DOUBLE_EQ(m.Deliver(0.05, 1'250'000), 0.2 + 0.04);
  // Arrives after the link went idle: starts at once.
  EXPECT_DOUBLE_EQ(m.Deliver(10.0, 125'000), 10.01 + 0.04);
}

TEST(LinkModelTest, UnlimitedBandwidthIsDelayOnly) {
  LinkOptions o;
  o.one_way_delay_ms = 5;
  LinkModel m(o);
  EXPECT_DOUBLE_EQ(m.Deliver(1.0, 1 << 30), 1.005);
  EXPECT_DOUBLE_EQ(m.Deliver(1.0, 1 << 30), 1.005);
}

TEST(LinkModelTest, LossAddsThePenaltyAtTheSeededRate) {
  LinkOptions o;
  o.loss = 0.1;
  o.loss_penalty_ms = 200;
  o.seed = 42;
  LinkModel m(o);
  int penalised = 0;
  for (int i = 0; i < 10000; ++i) penalised += m.Deliver(100.0 + i, 100) > 100.0 + i ? 1 : 0;
  EXPECT_GT(penalised, 900);
  EXPECT_LT(penalised, 1100);
  LinkModel again(o);  // same seed, same draws
  int penalised2 = 0;
  for (int i = 0; i < 10000; ++i) penalised2 += again.Deliver(100.0 + i, 100) > 100.0 + i ? 1 : 0;
  EXPECT_EQ(penalised, penalised2);
}

// An echo server on 127.0.0.1:0: one connection, echoes until EOF, then closes.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::listen(fd_, 4);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(c, buf, sizeof buf, 0)) > 0)
        ::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~EchoServer() {
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
  std::thread thread_;
};

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

TEST(RelayTest, CarriesBytesIntactBothWaysAndCountsThem) {
  EchoServer echo;
  RelayOptions o;
  o.target = "127.0.0.1:" + std::to_string(echo.port());
  o.forward.one_way_delay_ms = 1;
  o.forward.mbps = 2000;
  o.reverse.one_way_delay_ms = 1;
  o.reverse.loss = 0.05;
  o.reverse.loss_penalty_ms = 1;
  absl::StatusOr<std::unique_ptr<Relay>> relay = Relay::Start(o);
  ASSERT_TRUE(relay.ok()) << relay.status();
  int fd = Connect((*relay)->port());
  std::string sent(1 << 20, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>((i * 131 + 7) % 251);
  std::thread writer([&] {
    size_t off = 0;
    while (off < sent.size()) {
      ssize_t w = ::send(fd, sent.data() + off, std::min<size_t>(65536, sent.size() - off), 0);
      ASSERT_GT(w, 0);
      off += static_cast<size_t>(w);
    }
    ::shutdown(fd, SHUT_WR);  // end of stream must pass through the relay
  });
  std::string got;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  writer.join();
  ::close(fd);
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent) << "bytes changed in transit";
  EXPECT_EQ((*relay)->bytes_forward(), sent.size());
  EXPECT_EQ((*relay)->bytes_reverse(), sent.size());
  EXPECT_EQ((*relay)->connections(), 1u);
}

TEST(RelayTest, BadOptionsAreClearErrors) {
  RelayOptions o;
  o.target = "127.0.0.1:1";
  o.forward.loss = 2;
  absl::StatusOr<std::unique_ptr<Relay>> r = Relay::Start(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  o.forward.loss = 0;
  o.target = "nowhere";
  r = Relay::Start(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("HOST:PORT"), std::string::npos);
}

}  // namespace
}  // namespace meridian::netemu
