// Scheduler: admission, quotas, priority order, preemption, backfill, node
// failures and weighted fair share, on small hand-built fleets with a
// FakeClock.
#include "placement/scheduler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fleets.h"
#include "testing/invariants.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int64_t kBig = int64_t{1} << 40;

class SchedulerTest : public ::testing::Test {
 protected:
  void Init(Fleet fleet, int tenants = 1, SchedulerOptions o = {}) {
    fleet_ = std::move(fleet);
    auto s = Scheduler::Create(&fleet_, test::BuiltinRegistry(), std::move(o), &clock_, &rng_);
    ASSERT_TRUE(s.ok()) << s.status();
    sched_ = *std::move(s);
    for (int t = 0; t < tenants; ++t) ASSERT_TRUE(sched_->AddTenant(test::MakeTenant(t)).ok());
  }
  void Submit(const Job& j) { ASSERT_TRUE(sched_->Submit(j).ok()) << j.name; }
  // Job `id` of `gpus` whole GPUs for `tenant`, at `priority`, `duration_s` long.
  Job Gpus(int32_t id, int32_t gpus, int32_t priority = 0, int32_t tenant = 0,
           double duration_s = 3600) {
    Job j = test::MakeJob(id, tenant, test::WholeGpus(gpus));
    j.priority = priority;
    j.duration_s = duration_s;
    return j;
  }
  std::vector<Decision> Schedule() {
    std::vector<Decision> d = sched_->Schedule();
    EXPECT_THAT(test::CheckSchedulerInvariants(*sched_), IsEmpty());
    return d;
  }
  static std::optional<Decision> Find(const std::vector<Decision>& ds, int32_t job,
                                      std::optional<DecisionKind> kind = std::nullopt) {
    for (const Decision& d : ds)
      if (d.job == JobId(job) && (!kind || d.kind == *kind)) return d;
    return std::nullopt;
  }
  static std::string Reasons(const Decision& d) {
    std::string out;
    for (const std::string& r : d.reasons) out += r + "; ";
    return out;
  }
  DecisionKind KindOf(const std::vector<Decision>& ds, int32_t job) {
    std::optional<Decision> d = Find(ds, job);
    EXPECT_TRUE(d.has_value()) << "no decision for job " << job;
    return d ? d->kind : DecisionKind::kWaiting;
  }

  FakeClock clock_;
  Rng rng_{7};
  Fleet fleet_;
  std::unique_ptr<Scheduler> sched_;
};

TEST_F(SchedulerTest, RejectsBadTenantsAndJobs) {
  Init(test::UniformFleet(1, 1));
  EXPECT_FALSE(sched_->AddTenant(test::MakeTenant(5)).ok());  // ids must be dense
  EXPECT_FALSE(sched_->AddTenant(test::MakeTenant(1, 0.0)).ok());
  Submit(Gpus(0, 1));
  EXPECT_EQ(sched_->Submit(Gpus(0, 1)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sched_->Submit(Gpus(1, 1, 0, /*tenant=*/3)).code(),
            absl::StatusCode::kInvalidArgument);
  Job bad = Gpus(2, 1);
  bad.replicas = 0;
  EXPECT_EQ(sched_->Submit(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = test::MakeJob(3, 0, TaskShape{1000, 1024, 2, 500});  // fractional needs gpus == 1
  EXPECT_EQ(sched_->Submit(bad).code(), absl::StatusCode::kInvalidArgument);
  bad = Gpus(4, 1);
  bad.duration_s = 0;
  EXPECT_EQ(sched_->Submit(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->Finish(JobId(0)).code(), absl::StatusCode::kNotFound);  // pending
  EXPECT_THAT(sched_->pending(), ElementsAre(JobId(0)));
}

TEST_F(SchedulerTest, PlacesAndFinishesJobs) {
  Init(test::UniformFleet(2, 2));
  Submit(Gpus(0, 2));
  std::vector<Decision> d = Schedule();
  ASSERT_THAT(d, SizeIs(1));
  EXPECT_EQ(d[0].kind, DecisionKind::kPlaced);
  EXPECT_TRUE(d[0].plan.placed);
  EXPECT_TRUE(sched_->IsRunning(JobId(0)));
  EXPECT_EQ(sched_->tenant_usage(TenantId(0)).gpu_milli, 2000);
  ASSERT_TRUE(sched_->Finish(JobId(0)).ok());
  EXPECT_FALSE(sched_->IsRunning(JobId(0)));
  EXPECT_EQ(sched_->job(JobId(0)), nullptr);
  EXPECT_TRUE(sched_->tenant_usage(TenantId(0)).IsZero());
  EXPECT_TRUE(sched_->state().total_used().IsZero());
  EXPECT_EQ(sched_->Finish(JobId(0)).code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, QuotaBlocksJobsOverGuaranteePlusBorrowing) {
  Init(test::UniformFleet(2, 4), 0);
  Tenant t = test::MakeTenant(0);
  t.guarantee = {0, 0, 2000};
  t.borrow_limit = {kBig, kBig, 1000};
  ASSERT_TRUE(sched_->AddTenant(t).ok());
  for (int i = 0; i < 4; ++i) Submit(Gpus(i, 1));
  std::vector<Decision> d = Schedule();
  EXPECT_EQ(KindOf(d, 0), DecisionKind::kPlaced);
  EXPECT_EQ(KindOf(d, 1), DecisionKind::kPlaced);
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kPlaced);  // borrowed
  std::optional<Decision> blocked = Find(d, 3);
  ASSERT_TRUE(blocked);
  EXPECT_EQ(blocked->kind, DecisionKind::kWaiting);
  ASSERT_THAT(blocked->reasons, SizeIs(1));
  EXPECT_THAT(blocked->reasons[0], HasSubstr("quota"));
  EXPECT_THAT(blocked->reasons[0], HasSubstr("GPUs"));
  EXPECT_EQ(sched_->tenant_usage(TenantId(0)).gpu_milli, 3000);
  // Room frees up under the quota: the blocked job starts.
  ASSERT_TRUE(sched_->Finish(JobId(0)).ok());
  EXPECT_EQ(KindOf(Schedule(), 3), DecisionKind::kPlaced);
}

TEST_F(SchedulerTest, HigherPriorityGoesFirstThenSubmitOrder) {
  Init(test::UniformFleet(1, 2));
  Job early_low = Gpus(0, 1, /*priority=*/0);
  Job high = Gpus(1, 1, /*priority=*/10);
  Job late_mid = Gpus(2, 1, /*priority=*/5);
  Job early_mid = Gpus(3, 1, /*priority=*/5);
  late_mid.submit_time_s = 100;
  early_mid.submit_time_s = 50;
  for (const Job& j : {early_low, high, late_mid, early_mid}) Submit(j);
  std::vector<Decision> d = Schedule();
  ASSERT_THAT(d, SizeIs(4));
  EXPECT_EQ(d[0].job, JobId(1));
  EXPECT_EQ(d[0].kind, DecisionKind::kPlaced);
  EXPECT_EQ(d[1].job, JobId(3));
  EXPECT_EQ(d[1].kind, DecisionKind::kPlaced);
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kWaiting);
  EXPECT_EQ(KindOf(d, 0), DecisionKind::kWaiting);
}

TEST_F(SchedulerTest, PreemptsOneVictimWhenOneIsEnough) {
  Init(test::UniformFleet(1, 4));
  Submit(Gpus(0, 2));
  Submit(Gpus(1, 2));
  Schedule();
  ASSERT_THAT(sched_->running(), SizeIs(2));
  Submit(Gpus(2, 2, /*priority=*/10));
  std::vector<Decision> d = Schedule();
  std::optional<Decision> win = Find(d, 2);
  ASSERT_TRUE(win);
  EXPECT_EQ(win->kind, DecisionKind::kPreempting);
  ASSERT_THAT(win->victims, SizeIs(1));
  std::optional<Decision> lost = Find(d, win->victims[0].value(), DecisionKind::kPreempted);
  ASSERT_TRUE(lost);
  EXPECT_THAT(Reasons(*lost), HasSubstr("preempted by job 'job-2'"));
  EXPECT_FALSE(sched_->IsRunning(win->victims[0]));
  EXPECT_THAT(sched_->running(), SizeIs(2));
  int preempted = 0;
  for (const Decision& x : d) preempted += x.kind == DecisionKind::kPreempted;
  EXPECT_EQ(preempted, 1);
}

TEST_F(SchedulerTest, PreemptsTheOneBigVictimNotTheSmallOneToo) {
  Init(test::UniformFleet(1, 4));
  Submit(Gpus(0, 1));
  Submit(Gpus(1, 3));
  Schedule();
  Submit(Gpus(2, 3, /*priority=*/10));
  std::vector<Decision> d = Schedule();
  std::optional<Decision> win = Find(d, 2);
  ASSERT_TRUE(win);
  EXPECT_EQ(win->kind, DecisionKind::kPreempting);
  EXPECT_THAT(win->victims, ElementsAre(JobId(1)));
  EXPECT_TRUE(sched_->IsRunning(JobId(0)));
}

TEST_F(SchedulerTest, PreemptsTheLowestPriorityFirst) {
  Init(test::UniformFleet(1, 4));
  Submit(Gpus(0, 2, /*priority=*/5));
  Submit(Gpus(1, 2, /*priority=*/0));
  Schedule();
  Submit(Gpus(2, 2, /*priority=*/10));
  std::vector<Decision> d = Schedule();
  std::optional<Decision> win = Find(d, 2);
  ASSERT_TRUE(win);
  EXPECT_THAT(win->victims, ElementsAre(JobId(1)));
}

TEST_F(SchedulerTest, NeverPreemptsEqualOrHigherPriority) {
  Init(test::UniformFleet(1, 4));
  Submit(Gpus(0, 2, /*priority=*/10));
  Submit(Gpus(1, 2, /*priority=*/20));
  Schedule();
  Submit(Gpus(2, 2, /*priority=*/10));
  std::vector<Decision> d = Schedule();
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kWaiting);
  for (const Decision& x : d) EXPECT_NE(x.kind, DecisionKind::kPreempted);
  EXPECT_TRUE(sched_->IsRunning(JobId(0)));
  EXPECT_TRUE(sched_->IsRunning(JobId(1)));
}

TEST_F(SchedulerTest, NeverPreemptsATenantBelowItsGuarantee) {
  Init(test::UniformFleet(1, 4), 1);
  Tenant owner = test::MakeTenant(1);
  owner.guarantee = {0, 0, 4000};
  ASSERT_TRUE(sched_->AddTenant(owner).ok());
  Submit(Gpus(0, 2, 0, /*tenant=*/1));
  Submit(Gpus(1, 2, 0, /*tenant=*/1));
  Schedule();
  Submit(Gpus(2, 2, /*priority=*/10, /*tenant=*/0));
  std::vector<Decision> d = Schedule();
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kWaiting);
  EXPECT_THAT(sched_->running(), ElementsAre(JobId(0), JobId(1)));
}

// One 6-GPU node full with three 2-GPU jobs of tenant 1, guaranteed 3 GPUs.
class GuaranteeTest : public SchedulerTest {
 protected:
  void SetUp() override {
    Init(test::UniformFleet(1, 6), 1);
    Tenant owner = test::MakeTenant(1);
    owner.guarantee = {0, 0, 3000};
    ASSERT_TRUE(sched_->AddTenant(owner).ok());
    for (int i = 0; i < 3; ++i) Submit(Gpus(i, 2, 0, /*tenant=*/1));
    Schedule();
    ASSERT_THAT(sched_->running(), SizeIs(3));
  }
};

TEST_F(GuaranteeTest, TwoVictimsWouldGoBelowTheGuarantee) {
  Submit(Gpus(3, 4, /*priority=*/10, /*tenant=*/0));  // 6 -> 2 GPUs < 3
  std::vector<Decision> d = Schedule();
  EXPECT_EQ(KindOf(d, 3), DecisionKind::kWaiting);
  EXPECT_THAT(sched_->running(), SizeIs(3));
}

TEST_F(GuaranteeTest, OneVictimKeepsTheGuarantee) {
  Submit(Gpus(3, 2, /*priority=*/10, /*tenant=*/0));  // 6 -> 4 GPUs >= 3
  std::vector<Decision> d = Schedule();
  std::optional<Decision> win = Find(d, 3);
  ASSERT_TRUE(win);
  EXPECT_EQ(win->kind, DecisionKind::kPreempting);
  EXPECT_THAT(win->victims, SizeIs(1));
  EXPECT_EQ(sched_->tenant_usage(TenantId(1)).gpu_milli, 4000);
}

TEST_F(GuaranteeTest, NoPreemptionBehindAReservation) {
  // The 4-GPU job cannot preempt and holds the reservation; the 2-GPU job
  // behind it may not jump ahead by preempting either.
  Submit(Gpus(3, 4, /*priority=*/10, /*tenant=*/0));
  Submit(Gpus(4, 2, /*priority=*/10, /*tenant=*/0));
  std::vector<Decision> d = Schedule();
  std::optional<Decision> big = Find(d, 3);
  ASSERT_TRUE(big);
  EXPECT_GT(big->reservation_start_s, 0);
  EXPECT_EQ(KindOf(d, 4), DecisionKind::kWaiting);
  EXPECT_THAT(sched_->running(), SizeIs(3));
}

// One 4-GPU node; a 3-GPU job runs from t=0 to t=1000, so a blocked 4-GPU
// job holds the reservation from t=1000.
class BackfillTest : public SchedulerTest {
 protected:
  void SetUp() override {
    Init(test::UniformFleet(1, 4));
    Submit(Gpus(0, 3, 0, 0, /*duration_s=*/1000));
    Schedule();
    ASSERT_TRUE(sched_->IsRunning(JobId(0)));
    Submit(Gpus(1, 4));  // blocked
  }
  void ExpectReservation(const std::vector<Decision>& d) {
    std::optional<Decision> big = Find(d, 1);
    ASSERT_TRUE(big);
    EXPECT_EQ(big->kind, DecisionKind::kWaiting);
    EXPECT_DOUBLE_EQ(big->reservation_start_s, 1000);
    EXPECT_THAT(Reasons(*big), HasSubstr("holds the backfill reservation"));
  }
};

TEST_F(BackfillTest, ShortJobThatEndsBeforeTheReservationStartsNow) {
  Submit(Gpus(2, 1, 0, 0, /*duration_s=*/500));
  std::vector<Decision> d = Schedule();
  ExpectReservation(d);
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kBackfilled);
  EXPECT_TRUE(sched_->IsRunning(JobId(2)));
}

TEST_F(BackfillTest, LongJobThatWouldDelayTheReservationWaits) {
  Submit(Gpus(2, 1, 0, 0, /*duration_s=*/5000));
  std::vector<Decision> d = Schedule();
  ExpectReservation(d);
  std::optional<Decision> small = Find(d, 2);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->kind, DecisionKind::kWaiting);
  EXPECT_THAT(Reasons(*small), HasSubstr("would delay job 'job-1'"));
  EXPECT_FALSE(sched_->IsRunning(JobId(2)));
  EXPECT_EQ(sched_->state().total_used().gpu_milli, 3000);
}

TEST_F(BackfillTest, TheClockDecidesWhetherAJobEndsInTime) {
  clock_.Set(600);  // 600 + 500 > 1000
  Submit(Gpus(2, 1, 0, 0, /*duration_s=*/500));
  std::vector<Decision> d = Schedule();
  ExpectReservation(d);
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kWaiting);
}

TEST(BackfillDisabledTest, JobsStartWithoutAReservation) {
  FakeClock clock;
  Rng rng(1);
  Fleet fleet = test::UniformFleet(1, 4);
  SchedulerOptions o;
  o.enable_backfill = false;
  auto s = *Scheduler::Create(&fleet, test::BuiltinRegistry(), o, &clock, &rng);
  ASSERT_TRUE(s->AddTenant(test::MakeTenant(0)).ok());
  Job running = test::MakeJob(0, 0, test::WholeGpus(3));
  ASSERT_TRUE(s->Submit(running).ok());
  s->Schedule();
  Job big = test::MakeJob(1, 0, test::WholeGpus(4));
  Job small = test::MakeJob(2, 0, test::WholeGpus(1));
  small.duration_s = 1e6;
  ASSERT_TRUE(s->Submit(big).ok());
  ASSERT_TRUE(s->Submit(small).ok());
  std::vector<Decision> d = s->Schedule();
  ASSERT_THAT(d, SizeIs(2));
  EXPECT_EQ(d[0].kind, DecisionKind::kWaiting);
  EXPECT_LT(d[0].reservation_start_s, 0);
  EXPECT_EQ(d[1].kind, DecisionKind::kPlaced);
}

TEST_F(SchedulerTest, BackfillInAnotherPoolDoesNotDelayTheReservation) {
  test::TestFleet tf;
  RegionId a = tf.Region("a"), b = tf.Region("b");
  tf.Group({.name = "a", .region = a, .gpus = 4});
  tf.Group({.name = "b", .region = b, .gpus = 4});
  Init(std::move(tf).Build());
  Job runner = Gpus(0, 3, 0, 0, 1000);
  runner.allowed_regions = {a};
  Job big = Gpus(1, 4);
  big.allowed_regions = {a};
  Job other = Gpus(2, 4, 0, 0, /*duration_s=*/1e6);
  other.allowed_regions = {b};
  Submit(runner);
  Schedule();
  Submit(big);
  Submit(other);
  std::vector<Decision> d = Schedule();
  EXPECT_EQ(KindOf(d, 1), DecisionKind::kWaiting);
  EXPECT_EQ(KindOf(d, 2), DecisionKind::kBackfilled);
}

TEST_F(SchedulerTest, NodeFailureRequeuesTheWholeGang) {
  Init(test::UniformFleet(3, 1));
  Submit(test::MakeJob(0, 0, test::WholeGpus(1), /*replicas=*/2));
  Submit(Gpus(1, 1));
  Schedule();
  ASSERT_THAT(sched_->running(), ElementsAre(JobId(0), JobId(1)));
  const NodeId failed = sched_->allocations(JobId(0)).at(0).node;
  EXPECT_THAT(sched_->SetNodeHealthy(failed, false), ElementsAre(JobId(0)));
  EXPECT_FALSE(sched_->IsRunning(JobId(0)));
  EXPECT_THAT(sched_->allocations(JobId(0)), IsEmpty());
  EXPECT_TRUE(sched_->IsRunning(JobId(1)));
  EXPECT_EQ(sched_->tenant_usage(TenantId(0)).gpu_milli, 1000);
  EXPECT_EQ(sched_->state().total_used().gpu_milli, 1000);  // both replicas released
  EXPECT_THAT(test::CheckSchedulerInvariants(*sched_), IsEmpty());

  EXPECT_EQ(KindOf(Schedule(), 0), DecisionKind::kWaiting);  // one healthy free GPU
  EXPECT_THAT(sched_->SetNodeHealthy(failed, true), IsEmpty());
  EXPECT_EQ(KindOf(Schedule(), 0), DecisionKind::kPlaced);
}

TEST_F(SchedulerTest, FairShareFollowsTenantWeights) {
  Init(test::UniformFleet(60, 1), 0);
  for (int t = 0; t < 3; ++t) ASSERT_TRUE(sched_->AddTenant(test::MakeTenant(t, t + 1.0)).ok());
  int32_t id = 0;
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < 200; ++i) Submit(Gpus(id++, 1, 0, t));
  Schedule();
  EXPECT_EQ(sched_->state().total_used().gpu_milli, 60000);
  const int64_t want[] = {10000, 20000, 30000};
  for (int t = 0; t < 3; ++t)
    EXPECT_NEAR(double(sched_->tenant_usage(TenantId(t)).gpu_milli), double(want[t]), 1000.0)
        << "tenant " << t;
}

// The learned task mix keeps full shapes (CPU-only ones too) and follows the
// workload: with a half-life of 10 replicas, 40 later 2-GPU jobs outweigh 40
// earlier 1-GPU ones by far.
TEST_F(SchedulerTest, LearnedTaskMixHasFullShapesAndDecays) {
  SchedulerOptions o;
  o.task_mix_half_life = 10;
  Init(test::UniformFleet(2, 8), 1, o);
  int id = 0;
  for (int i = 0; i < 40; ++i) Submit(Gpus(id++, 1, 0, 0, 1));
  Submit(test::MakeJob(id++, 0, test::WholeGpus(0)));
  for (int i = 0; i < 40; ++i) Submit(Gpus(id++, 2, 0, 0, 1));
  Schedule();
  const std::vector<TaskClass>& mix = sched_->task_mix();
  double one = 0, two = 0, cpu = 0, sum = 0;
  for (const TaskClass& c : mix) {
    sum += c.weight;
    if (c.shape.gpus == 1) one += c.weight;
    if (c.shape.gpus == 2) {
      two += c.weight;
      EXPECT_EQ(c.shape.cpu_milli, test::WholeGpus(2).cpu_milli);
      EXPECT_EQ(c.shape.memory_mib, test::WholeGpus(2).memory_mib);
    }
    if (c.shape.gpus == 0) cpu += c.weight;
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_GT(two, 0.9);
  EXPECT_GT(two, 10 * one);  // as many jobs each, but the 1-GPU ones are old
  EXPECT_LT(cpu, 0.01);
  // Without decay to speak of, the two shapes weigh alike and the CPU-only job is a class.
  SchedulerOptions slow;
  slow.task_mix_half_life = 1e9;
  Init(test::UniformFleet(2, 8), 1, slow);
  id = 0;
  for (int i = 0; i < 40; ++i) Submit(Gpus(id++, 1, 0, 0, 1));
  for (int i = 0; i < 6; ++i) Submit(test::MakeJob(id++, 0, test::WholeGpus(0)));
  for (int i = 0; i < 40; ++i) Submit(Gpus(id++, 2, 0, 0, 1));
  Schedule();
  std::map<int32_t, double> by_gpus;
  for (const TaskClass& c : sched_->task_mix()) by_gpus[c.shape.gpus] += c.weight;
  EXPECT_NEAR(by_gpus[1], 40.0 / 86, 1e-6);
  EXPECT_NEAR(by_gpus[2], 40.0 / 86, 1e-6);
  EXPECT_NEAR(by_gpus[0], 6.0 / 86, 1e-6);  // 93% before it: inside the 95% coverage
}

TEST(SchedulerOptionsTest, RejectsABadTaskMixHalfLife) {
  Fleet fleet = test::UniformFleet(1, 8);
  FakeClock clock;
  Rng rng(1);
  for (double bad : {0.0, -5.0, std::nan("")}) {
    SchedulerOptions o;
    o.task_mix_half_life = bad;
    auto s = Scheduler::Create(&fleet, test::BuiltinRegistry(), o, &clock, &rng);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("task_mix_half_life"));
  }
}

}  // namespace
}  // namespace meridian
