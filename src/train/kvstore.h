// The rendezvous store of a training job: a small key-value server over TCP
// and its client, which is also a gloo::rendezvous::Store. Rank 0 (or the
// standalone launcher) serves; every rank connects. Keys carry the membership
// epoch as a prefix, so a group rebuilt after a failure never reads the
// addresses of the old one.
//
// Wire format, both directions: [u8 op or status][u32 key length][key]
// [u32 value length][value], little-endian lengths. Ops: set, get (blocks until
// the key exists or the timeout in the value passes), add (int64 counter),
// call (a named request answered by the server's handler; the launcher uses it
// to hand out netemu relays).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"

namespace meridian::train {

class KvServer {
 public:
  // Handles `call` requests: (name, argument) -> answer.
  using Handler = std::function<absl::StatusOr<std::string>(const std::string&, const std::string&)>;
  static absl::StatusOr<std::unique_ptr<KvServer>> Start(const std::string& listen,
                                                        Handler handler = nullptr);
  ~KvServer();  // closes every connection and joins its threads
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // In-process access for the process that serves.
  void Set(const std::string& key, const std::string& value);
  std::optional<std::string> Get(const std::string& key) const;

 private:
  KvServer() = default;
  void AcceptLoop();
  void Serve(int fd);
  bool WaitFor(const std::string& key, std::chrono::milliseconds timeout, std::string* value);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  bool stopping_ = false;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> data_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

class KvClient : public gloo::rendezvous::Store {
 public:
  // Retries the connection until `timeout` (the server may start later).
  static absl::StatusOr<std::unique_ptr<KvClient>> Connect(const std::string& address,
                                                          std::chrono::milliseconds timeout);
  ~KvClient() override;

  absl::Status Put(const std::string& key, const std::string& value);
  absl::StatusOr<std::string> Fetch(const std::string& key, std::chrono::milliseconds timeout);
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta);
  absl::StatusOr<std::string> Call(const std::string& name, const std::string& arg);

  // gloo::rendezvous::Store (throws gloo::IoException on failure, as gloo expects).
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

  std::chrono::milliseconds timeout = std::chrono::seconds(120);

 private:
  explicit KvClient(int fd) : fd_(fd) {}
  absl::StatusOr<std::string> Request(uint8_t op, const std::string& key, const std::string& value);
  std::mutex mu_;
  int fd_;
};

// Parses "host:port" (IPv4 literal or "localhost").
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address);

}  // namespace meridian::train
