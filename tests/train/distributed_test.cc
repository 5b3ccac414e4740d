// The distributed training runtime in one process: every rank a thread with
// its own Gloo device, a real store over TCP, and netemu relays between
// regions that count the bytes crossing them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "netemu/netemu.h"
#include "train/collective.h"
#include "train/dataset.h"
#include "train/distributed.h"
#include "train/kvstore.h"
#include "train/mlp.h"
#include "train/relay_hub.h"

namespace meridian::train {
namespace {

using ::testing::ElementsAre;

TEST(KvStore, SetGetAddCallAndTimeout) {
  auto server = KvServer::Start("127.0.0.1:0", [](const std::string& name, const std::string& arg)
                                                   -> absl::StatusOr<std::string> {
    if (name == "echo") return "echo:" + arg;
    return absl::NotFoundError("no call " + name);
  });
  ASSERT_TRUE(server.ok()) << server.status();
  auto c = KvClient::Connect((*server)->address(), std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Put("a", std::string("x\0y", 3)).ok());
  EXPECT_EQ(*(*c)->Fetch("a", std::chrono::seconds(1)), std::string("x\0y", 3));
  EXPECT_EQ(*(*c)->Add("n", 5), 5);
  EXPECT_EQ(*(*c)->Add("n", -2), 3);
  EXPECT_EQ(*(*c)->Call("echo", "hi"), "echo:hi");
  EXPECT_FALSE((*c)->Call("nope", "").ok());
  absl::StatusOr<std::string> missing = (*c)->Fetch("never", std::chrono::milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(missing.status())) << missing.status();
  // A get blocks until another client sets the key.
  auto c2 = KvClient::Connect((*server)->address(), std::chrono::seconds(5));
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE((*c2)->Put("late", "v").ok());
  });
  EXPECT_EQ(*(*c)->Fetch("late", std::chrono::seconds(10)), "v");
  later.join();
  EXPECT_EQ((*server)->Get("late"), "v");
}

TEST(KvStore, BadAddressesAreErrors) {
  EXPECT_FALSE(KvServer::Start("nonsense").ok());
  EXPECT_FALSE(KvClient::Connect("127.0.0.1:1", std::chrono::milliseconds(100)).ok());
}

TEST(Shares, ProportionalToRatesAndSumToTheBatch) {
  EXPECT_THAT(Shares({1, 1, 1, 1}, 32), ElementsAre(8, 8, 8, 8));
  EXPECT_THAT(Shares({1, 1, 1}, 32), ElementsAre(11, 11, 10));
  EXPECT_THAT(Shares({3, 3, 1}, 70), ElementsAre(30, 30, 10));
  std::vector<int> s = Shares({100, 0.001, 50}, 10);
  EXPECT_EQ(s[0] + s[1] + s[2], 10);
  EXPECT_GE(s[1], 1);  // everyone keeps at least one sample
  EXPECT_GT(s[0], s[2]);
  EXPECT_THAT(Shares({0, 0}, 5), ElementsAre(3, 2));
}

TEST(Codec, RoundTripsWithinItsPrecision) {
  std::vector<float> x(3000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i)) * (i % 7 == 0 ? 5.f : 0.1f);
  for (Codec c : {Codec::kFp32, Codec::kFp16, Codec::kInt8}) {
    std::vector<uint8_t> enc(EncodedBytes(c, x.size()));
    Encode(c, x.data(), x.size(), enc.data());
    std::vector<float> y(x.size());
    Decode(c, enc.data(), x.size(), y.data());
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::fabs(x[i] - y[i])));
    double bound = c == Codec::kFp32 ? 0 : c == Codec::kFp16 ? 5e-3 : 5.0 / 127 / 2 + 1e-6;
    EXPECT_LE(worst, bound) << CodecName(c);
  }
  EXPECT_EQ(EncodedBytes(Codec::kFp32, 10), 40u);
  EXPECT_EQ(EncodedBytes(Codec::kFp16, 10), 20u);
  EXPECT_EQ(EncodedBytes(Codec::kInt8, 2048), 2048u + 8u);  // a scale per 1024 values
  EXPECT_FALSE(ParseCodec("bf16").ok());
}

TEST(RelayHub, HandsOutOneRelayPerPairOfListenersAndRejectsBadRequests) {
  RelayHub hub(netemu::LinkOptions{});
  KvServer::Handler h = hub.Handler();
  absl::StatusOr<std::string> a = h("relay", "0 1 127.0.0.1:40001 127.0.0.1:40002");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*h("relay", "0 1 127.0.0.1:40001 127.0.0.1:40002"), *a);
  int port = std::stoi(a->substr(a->rfind(':') + 1));
  EXPECT_TRUE(RelayPortKeepsOrder(port, 40002, 40001));
  EXPECT_FALSE(h("relay", "0 0 127.0.0.1:1 127.0.0.1:2").ok());
  EXPECT_FALSE(h("relay", "0 1 nowhere 127.0.0.1:2").ok());
  EXPECT_FALSE(h("other", "").ok());
  EXPECT_EQ(hub.TotalBytes(), 0u);
}

TEST(RelayStore, RelayPortKeepsGloosConnectDecision) {
  EXPECT_TRUE(RelayPortKeepsOrder(/*relay=*/4, /*self=*/2, /*target=*/3));
  EXPECT_FALSE(RelayPortKeepsOrder(/*relay=*/1, /*self=*/2, /*target=*/3));
  EXPECT_TRUE(RelayPortKeepsOrder(/*relay=*/1, /*self=*/2, /*target=*/1));
  // Gloo compares ports as raw network-order values read on this host: port
  // 256 (bytes 01 00) sorts below port 2 (bytes 00 02) on a little-endian CPU.
  EXPECT_TRUE(RelayPortKeepsOrder(/*relay=*/256, /*self=*/2, /*target=*/1));
  EXPECT_FALSE(RelayPortKeepsOrder(2, 2, 3));
}

// A job of `regions.size()` ranks as threads, with relays between regions.
struct Job {
  explicit Job(std::vector<int> regions)
      : regions(std::move(regions)), hub(netemu::LinkOptions{}) {
    server = *KvServer::Start("127.0.0.1:0", hub.Handler());
  }
  uint64_t WanBytes() const { return hub.TotalBytes(); }
  // Runs every rank; returns their results (rank order).
  std::vector<DistResult> Run(DistOptions base, const Dataset& train, const Dataset& test) {
    std::vector<DistResult> out(regions.size());
    std::vector<std::thread> threads;
    std::vector<std::string> errors(regions.size());
    for (size_t r = 0; r < regions.size(); ++r) {
      threads.emplace_back([&, r] {
        auto client = KvClient::Connect(server->address(), std::chrono::seconds(5));
        if (!client.ok()) {
          errors[r] = client.status().ToString();
          return;
        }
        KvClient* store = client->get();
        DistOptions o = base;
        o.rank = static_cast<int>(r);
        o.regions = regions;
        o.resolver = [store](int from, int to, const std::string& t, const std::string& s) {
          return store->Call("relay", absl::StrCat(from, " ", to, " ", t, " ", s));
        };
        absl::StatusOr<DistResult> res = RunWorker(store, train, test, o);
        if (res.ok()) {
          out[r] = *res;
        } else {
          errors[r] = res.status().ToString();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
    return out;
  }

  std::vector<int> regions;
  RelayHub hub;
  std::unique_ptr<KvServer> server;
};

class DistributedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Dataset all = SyntheticDigits(1200, 3);
    Split(all, 0.25, 3, &train_, &test_);
  }
  DistOptions Base(Mode m, const std::string& epoch) {
    DistOptions o;
    o.mode = m;
    o.epoch = epoch;
    o.epochs = 8;
    o.batch = 32;
    o.dynamic_shares = false;  // deterministic: shares follow no clock
    o.seed = 5;
    return o;
  }
  double LocalAccuracy(int epochs) {
    TrainOptions t;
    t.epochs = epochs;
    t.batch = 32;
    t.seed = 5;
    return TrainLocal(train_, test_, t).test_accuracy;
  }
  Dataset train_, test_;
};

TEST_F(DistributedTest, EveryModeMatchesSingleProcessAccuracy) {
  double local = LocalAccuracy(8);
  ASSERT_GT(local, 0.9);
  int n = 0;
  for (Mode m : {Mode::kAllreduce, Mode::kCentral, Mode::kHierarchical, Mode::kDiloco}) {
    Job job({0, 0, 1, 1});
    DistOptions o = Base(m, absl::StrCat("m", n++));
    o.local_steps = 20;
    std::vector<DistResult> r = job.Run(o, train_, test_);
    EXPECT_GE(r[0].test_accuracy, local - 0.01) << ModeName(m);
    EXPECT_EQ(r[0].steps, (8 * int64_t(train_.size()) + 31) / 32) << ModeName(m);
    int64_t samples = 0;
    for (const DistResult& x : r) samples += x.samples;
    EXPECT_EQ(samples, r[0].steps * 32) << ModeName(m);  // every step used the whole batch
    EXPECT_GT(job.WanBytes(), 0u) << ModeName(m);
  }
}

TEST_F(DistributedTest, OverlappedDilocoMatchesSingleProcessAccuracy) {
  double local = LocalAccuracy(8);
  for (Codec codec : {Codec::kFp32, Codec::kInt8}) {
    Job job({0, 0, 1, 1, 2, 2});
    DistOptions o = Base(Mode::kDiloco, absl::StrCat("ov", CodecName(codec)));
    o.local_steps = 10;
    o.overlap = true;
    o.codec = codec;
    std::vector<DistResult> r = job.Run(o, train_, test_);
    EXPECT_GE(r[0].test_accuracy, local - 0.01) << CodecName(codec);
    EXPECT_EQ(r[0].steps, (8 * int64_t(train_.size()) + 31) / 32);
  }
}

TEST_F(DistributedTest, DilocoSendsFarFewerBytesAcrossRegions) {
  Job sync({0, 0, 1, 1, 2, 2});
  DistOptions so = Base(Mode::kAllreduce, "sync");
  so.epochs = 16;
  std::vector<DistResult> a = sync.Run(so, train_, test_);
  uint64_t sync_bytes = sync.WanBytes();
  for (auto [codec, factor] : {std::pair{Codec::kFp32, 50.0}, std::pair{Codec::kInt8, 200.0}}) {
    Job job({0, 0, 1, 1, 2, 2});
    DistOptions o = Base(Mode::kDiloco, absl::StrCat("d", CodecName(codec)));
    o.local_steps = 50;
    o.epochs = 16;
    o.codec = codec;
    std::vector<DistResult> d = job.Run(o, train_, test_);
    EXPECT_EQ(d[0].steps, a[0].steps);  // equal samples
    EXPECT_GE(double(sync_bytes) / double(job.WanBytes()), factor)
        << CodecName(codec) << ": " << sync_bytes << " vs " << job.WanBytes();
    EXPECT_GE(d[0].test_accuracy, a[0].test_accuracy - 0.02) << CodecName(codec);
  }
}

TEST_F(DistributedTest, ResumesFromTheLastCheckpoint) {
  std::string dir = ::testing::TempDir() + "/ckpt-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  DistOptions o = Base(Mode::kAllreduce, "c1");
  o.checkpoint_dir = dir;
  o.checkpoint_every = 40;
  Job first({0, 1});
  std::vector<DistResult> r1 = first.Run(o, train_, test_);
  EXPECT_EQ(r1[0].start_step, 0);
  EXPECT_EQ(r1[0].checkpoints, int(r1[0].steps - 1) / 40);
  ASSERT_TRUE(std::filesystem::exists(dir + "/checkpoint.bin"));
  // A new epoch picks up where the last checkpoint was taken.
  o.epoch = "c2";
  Job second({0, 1});
  std::vector<DistResult> r2 = second.Run(o, train_, test_);
  EXPECT_EQ(r2[0].start_step, (r1[0].steps - 1) / 40 * 40);
  EXPECT_EQ(r2[1].start_step, r2[0].start_step);
  EXPECT_EQ(r2[0].steps, r1[0].steps);
  EXPECT_EQ(r2[0].samples + r2[1].samples, (r2[0].steps - r2[0].start_step) * 32);
  EXPECT_GE(r2[0].test_accuracy, r1[0].test_accuracy - 0.01);
  std::filesystem::remove_all(dir);
}

TEST_F(DistributedTest, SlowRankGetsASmallerShare) {
  Job job({0, 0, 0});
  DistOptions o = Base(Mode::kAllreduce, "slow");
  o.dynamic_shares = true;
  o.rebalance_every = 5;
  o.epochs = 3;
  o.batch = 60;
  std::vector<DistResult> r(3);
  // Rank 2 computes 4x slower (a sleep after each compute).
  std::vector<DistResult> res;
  {
    std::vector<int> regions = {0, 0, 0};
    std::vector<std::thread> threads;
    std::vector<std::string> errors(3);
    for (int k = 0; k < 3; ++k)
      threads.emplace_back([&, k] {
        auto client = KvClient::Connect(job.server->address(), std::chrono::seconds(5));
        DistOptions mine = o;
        mine.rank = k;
        mine.regions = regions;
        if (k == 2) mine.slow_factor = 4;
        auto x = RunWorker(client->get(), train_, test_, mine);
        if (x.ok()) r[size_t(k)] = *x;
        else errors[size_t(k)] = x.status().ToString();
      });
    for (auto& t : threads) t.join();
    for (auto& e : errors) ASSERT_EQ(e, "");
  }
  const std::vector<int>& s = r[0].final_shares;
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0] + s[1] + s[2], 60);
  EXPECT_LT(s[2], s[0]);
  EXPECT_LT(s[2], s[1]);
  EXPECT_EQ(r[1].final_shares, s);  // every rank computed the same shares
}

TEST_F(DistributedTest, BadOptionsAreErrors) {
  Job job({0});
  auto client = KvClient::Connect(job.server->address(), std::chrono::seconds(5));
  DistOptions o = Base(Mode::kAllreduce, "bad");
  o.rank = 3;
  o.regions = {0, 0};
  EXPECT_TRUE(absl::IsInvalidArgument(RunWorker(client->get(), train_, test_, o).status()));
  o.rank = 0;
  o.batch = 1;
  EXPECT_TRUE(absl::IsInvalidArgument(RunWorker(client->get(), train_, test_, o).status()));
  EXPECT_FALSE(ParseMode("ring").ok());
}

}  // namespace
}  // namespace meridian::train
