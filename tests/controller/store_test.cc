// Store: upserts, reload after reopen, ordering and group commit.
#include "store/store.h"

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace meridian::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("store-", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                         "-", ::getpid(), ".db");
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  std::unique_ptr<Store> Open() {
    StoreOptions o;
    o.path = path_;
    absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  }
  std::string path_;
};

TEST_F(StoreTest, WritesSurviveReopenAndUpsertsReplace) {
  {
    auto s = Open();
    Batch b;
    JobRecord j;
    j.id = 7;
    j.name = "train";
    j.tenant = "research";
    j.spec = "kind: job";
    j.state = 1;
    b.jobs.push_back(j);
    ReplicaRecord r;
    r.job_id = 7;
    r.index = 0;
    r.node = "a1";
    r.state = 2;
    b.replicas.push_back(r);
    NodeRecord n;
    n.name = "a1";
    n.region = "east";
    n.cpu_milli = 2000;
    n.memory_mib = 4096;
    n.cordoned = true;
    b.nodes.push_back(n);
    ASSERT_TRUE(s->Write(b).ok());
    j.state = 4;
    j.message = "done";
    Batch b2;
    b2.jobs.push_back(j);
    ASSERT_TRUE(s->Write(b2).ok());
    EXPECT_EQ(s->committed(), 2u);
  }
  auto s = Open();
  absl::StatusOr<Snapshot> snap = s->Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->jobs.size(), 1u);
  EXPECT_EQ(snap->jobs[0].state, 4);
  EXPECT_EQ(snap->jobs[0].message, "done");
  EXPECT_EQ(snap->jobs[0].tenant, "research");
  ASSERT_EQ(snap->replicas.size(), 1u);
  EXPECT_EQ(snap->replicas[0].node, "a1");
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_TRUE(snap->nodes[0].cordoned);
  EXPECT_EQ(snap->nodes[0].cpu_milli, 2000);
}

TEST_F(StoreTest, ConcurrentWritersShareCommitsInOrder) {
  auto s = Open();
  constexpr int kThreads = 8, kPer = 200;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> max_seen{0};
  std::atomic<bool> out_of_order{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        Batch b;
        JobRecord j;
        j.id = static_cast<uint64_t>(t * kPer + i + 1);
        j.name = "j";
        j.spec = "s";
        b.jobs.push_back(j);
        uint64_t seq = 0;
        std::promise<void> p;
        seq = s->Enqueue(b, [&](const absl::Status& st) {
          EXPECT_TRUE(st.ok());
          p.set_value();
        });
        p.get_future().wait();
        // Durable means everything up to seq is committed.
        if (s->committed() < seq) out_of_order = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(out_of_order.load());
  EXPECT_EQ(s->committed(), uint64_t{kThreads * kPer});
  // Group commit: fewer transactions than batches under concurrency.
  EXPECT_LT(s->transactions(), uint64_t{kThreads * kPer});
  absl::StatusOr<Snapshot> snap = s->Load();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->jobs.size(), size_t{kThreads * kPer});
}

TEST_F(StoreTest, EndpointRecordsSurviveReopen) {
  {
    auto s = Open();
    Batch b;
    EndpointRecord e;
    e.name = "digits";
    e.spec = "kind: endpoint\nname: digits\nmodel: m\n";
    e.generation = 3;
    e.desired = 4;
    e.created_s = 10;
    e.updated_s = 20;
    b.endpoints.push_back(e);
    ASSERT_TRUE(s->Write(b).ok());
    e.deleted = true;  // an upsert replaces the row
    b.endpoints = {e};
    ASSERT_TRUE(s->Write(b).ok());
  }
  auto s = Open();
  absl::StatusOr<Snapshot> snap = s->Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->endpoints.size(), 1u);
  const EndpointRecord& e = snap->endpoints[0];
  EXPECT_EQ(e.name, "digits");
  EXPECT_EQ(e.spec, "kind: endpoint\nname: digits\nmodel: m\n");
  EXPECT_EQ(e.generation, 3);
  EXPECT_EQ(e.desired, 4);
  EXPECT_EQ(e.created_s, 10);
  EXPECT_EQ(e.updated_s, 20);
  EXPECT_TRUE(e.deleted);
}

TEST_F(StoreTest, UnopenablePathIsAClearError) {
  StoreOptions o;
  o.path = "/nonexistent-dir/for/sure/state.db";
  absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("/nonexistent-dir"), std::string::npos);
}

}  // namespace
}  // namespace meridian::store
