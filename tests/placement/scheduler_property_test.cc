// Property tests: the scheduler over many seeds of random fleets (unhealthy
// nodes, taints, spot, ceilings) and random job mixes, with several passes,
// random finishes, node failures and recoveries and a FakeClock moving on.
// After every step the invariants of testing/invariants.h must hold, and the
// decisions of every pass are checked for preemption and admission rules.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/scheduler.h"
#include "testing/fleets.h"
#include "testing/invariants.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

using ::testing::IsEmpty;

constexpr uint64_t kSeeds = 40;
constexpr int kPasses = 6;

bool AtLeast(const Resources& usage, const Resources& guarantee) {
  return (guarantee.cpu_milli <= 0 || usage.cpu_milli >= guarantee.cpu_milli) &&
         (guarantee.memory_mib <= 0 || usage.memory_mib >= guarantee.memory_mib) &&
         (guarantee.gpu_milli <= 0 || usage.gpu_milli >= guarantee.gpu_milli);
}

// One seeded run: fleet, workload, scheduler and the random driver.
class SeededRun {
 public:
  explicit SeededRun(uint64_t seed) : seed_(seed), rng_(seed * 31 + 1), driver_(seed * 131 + 7) {
    fleet_ = test::RandomFleet(seed);
    workload_ = MakeSyntheticJobs(fleet_, test::RandomJobOptions(seed));
    for (Job& j : workload_.jobs)
      if (driver_.Uniform(0, 3) == 0) j.tolerations.push_back("dedicated=team");
    SchedulerOptions o;
    o.explain = driver_.Uniform(0, 1) == 1;
    o.enable_preemption = driver_.Uniform(0, 4) != 0;
    o.enable_backfill = driver_.Uniform(0, 4) != 0;
    if (driver_.Uniform(0, 3) == 0) o.engine.selector = "random_top";
    o.engine.max_candidates = static_cast<int>(driver_.Uniform(2, 24));
    explain_ = o.explain;
    auto s = Scheduler::Create(&fleet_, test::BuiltinRegistry(), o, &clock_, &rng_);
    EXPECT_TRUE(s.ok()) << s.status();
    sched_ = *std::move(s);
    for (Tenant t : workload_.tenants) {
      if (driver_.Uniform(0, 2) == 0) t.borrow_limit = t.guarantee;  // quota that bites
      EXPECT_TRUE(sched_->AddTenant(t).ok());
    }
  }

  const Scheduler& scheduler() const { return *sched_; }
  const std::vector<std::string>& log() const { return log_; }

  // Submits the next share of the jobs, runs one pass and checks it.
  void Pass(int pass) {
    const size_t n = workload_.jobs.size();
    const size_t upto = n * size_t(pass + 1) / kPasses;
    for (; submitted_ < upto; ++submitted_) {
      Job j = workload_.jobs[submitted_];
      j.submit_time_s = clock_.NowSeconds();
      ASSERT_TRUE(sched_->Submit(j).ok()) << j.name;
    }
    std::vector<Resources> usage(sched_->num_tenants());
    for (size_t t = 0; t < usage.size(); ++t)
      usage[t] = sched_->tenant_usage(TenantId(static_cast<int32_t>(t)));
    std::vector<Decision> decisions = sched_->Schedule();
    for (const Decision& d : decisions) {
      log_.push_back(absl::StrCat(pass, ":", d.job.value(), ":", DecisionKindName(d.kind), ":",
                                  d.victims.size()));
      for (const ReplicaPlacement& r : d.plan.replicas)
        log_.back() += absl::StrCat(",", r.allocation.node.value());
    }
    CheckDecisions(decisions, usage);
    if (::testing::Test::HasFailure()) {
      std::string dump;
      for (const Decision& d : decisions) {
        const Job* j = sched_->job(d.job);
        absl::StrAppend(&dump, "  ", j ? j->name : "?", " prio ", j ? j->priority : -1, " ",
                        DecisionKindName(d.kind), " victims", d.victims.size());
        for (const std::string& r : d.reasons) absl::StrAppend(&dump, " | ", r);
        dump += "\n";
      }
      ADD_FAILURE() << "decisions of pass " << pass << ":\n" << dump;
    }
    ASSERT_THAT(test::CheckSchedulerInvariants(*sched_), IsEmpty()) << "after pass " << pass;
  }

  // Random finishes, a node failure or recovery, and time passing.
  void Between(int pass) {
    clock_.Advance(double(driver_.Uniform(0, 3600)));
    for (JobId id : sched_->running())
      if (driver_.Uniform(0, 2) == 0) {
        ASSERT_TRUE(sched_->Finish(id).ok());
      }
    const int64_t nodes = int64_t(fleet_.nodes().size());
    if (driver_.Uniform(0, 1) == 0) {
      NodeId node(static_cast<int32_t>(driver_.Uniform(0, nodes - 1)));
      std::vector<JobId> expected;
      for (JobId id : sched_->running())
        for (const Allocation& a : sched_->allocations(id))
          if (a.node == node) {
            expected.push_back(id);
            break;
          }
      std::vector<JobId> requeued = sched_->SetNodeHealthy(node, false);
      std::sort(requeued.begin(), requeued.end());
      EXPECT_EQ(requeued, expected) << "node " << node;
      for (JobId id : requeued) EXPECT_FALSE(sched_->IsRunning(id));
      failed_.push_back(node);
    }
    if (!failed_.empty() && driver_.Uniform(0, 1) == 0) {
      EXPECT_THAT(sched_->SetNodeHealthy(failed_.front(), true), IsEmpty());
      failed_.erase(failed_.begin());
    }
    ASSERT_THAT(test::CheckSchedulerInvariants(*sched_), IsEmpty()) << "between passes " << pass;
  }

 private:
  // Replays the pass's decisions in order against the tenant usage before it.
  void CheckDecisions(const std::vector<Decision>& decisions, std::vector<Resources> usage) {
    std::map<JobId, int> preempted;
    for (const Decision& d : decisions) {
      const Job* job = sched_->job(d.job);
      ASSERT_NE(job, nullptr);
      const size_t t = job->tenant.index();
      const std::string who = absl::StrCat("seed ", seed_, " job '", job->name, "' ");
      switch (d.kind) {
        case DecisionKind::kPlaced:
        case DecisionKind::kBackfilled:
        case DecisionKind::kPreempting: {
          usage[t] += job->Demand();
          EXPECT_TRUE(d.plan.placed) << who;
          const Tenant& spec = sched_->tenant(job->tenant);
          EXPECT_TRUE((spec.guarantee + spec.borrow_limit).Contains(usage[t]))
              << who << "admitted over quota";
          break;
        }
        case DecisionKind::kPreempted: {
          usage[t] -= job->Demand();
          ++preempted[d.job];
          const Tenant& spec = sched_->tenant(job->tenant);
          EXPECT_TRUE(AtLeast(usage[t], spec.guarantee))
              << who << "evicted below its tenant's guarantee: " << usage[t].ToString() << " < "
              << spec.guarantee.ToString();
          break;
        }
        case DecisionKind::kWaiting:
          EXPECT_FALSE(d.plan.placed) << who;
          if (explain_) {
            EXPECT_TRUE(!d.reasons.empty() || !d.plan.why_not.empty()) << who << "waits unexplained";
          }
          break;
      }
      for (JobId v : d.victims) {
        const Job* victim = sched_->job(v);
        ASSERT_NE(victim, nullptr);
        EXPECT_LT(victim->priority, job->priority)
            << who << "preempted '" << victim->name << "' of equal or higher priority";
        EXPECT_EQ(preempted[v], 1) << who << "victim '" << victim->name << "' has no decision";
      }
    }
    // A victim may be placed again later in the same pass; the last decision
    // about a job says whether it runs now.
    std::map<JobId, DecisionKind> last;
    for (const Decision& d : decisions) last[d.job] = d.kind;
    for (const auto& [id, kind] : last) {
      const bool started = kind == DecisionKind::kPlaced || kind == DecisionKind::kBackfilled ||
                           kind == DecisionKind::kPreempting;
      EXPECT_EQ(sched_->IsRunning(id), started)
          << "seed " << seed_ << " job " << id << " last decision " << DecisionKindName(kind);
    }
    int victims = 0;
    for (const Decision& d : decisions) victims += int(d.victims.size());
    int evicted = 0;
    for (const auto& [id, n] : preempted) evicted += n;
    EXPECT_EQ(victims, evicted) << "every kPreempted decision belongs to one preemptor";
  }

  uint64_t seed_;
  FakeClock clock_;
  Rng rng_;
  Rng driver_;
  Fleet fleet_;
  Workload workload_;
  std::unique_ptr<Scheduler> sched_;
  bool explain_ = false;
  size_t submitted_ = 0;
  std::vector<NodeId> failed_;
  std::vector<std::string> log_;
};

class SchedulerPropertyTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SchedulerPropertyTest, InvariantsHoldThroughPassesFinishesAndFailures) {
  SeededRun run(GetParam());
  for (int pass = 0; pass < kPasses; ++pass) {
    ASSERT_NO_FATAL_FAILURE(run.Pass(pass));
    ASSERT_NO_FATAL_FAILURE(run.Between(pass));
  }
}

TEST_P(SchedulerPropertyTest, SameSeedSameDecisions) {
  SeededRun a(GetParam()), b(GetParam());
  for (int pass = 0; pass < 3; ++pass) {
    ASSERT_NO_FATAL_FAILURE(a.Pass(pass));
    ASSERT_NO_FATAL_FAILURE(b.Pass(pass));
    ASSERT_NO_FATAL_FAILURE(a.Between(pass));
    ASSERT_NO_FATAL_FAILURE(b.Between(pass));
  }
  EXPECT_EQ(a.log(), b.log());
  EXPECT_FALSE(a.log().empty());
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerPropertyTest, ::testing::Range<uint64_t>(1, kSeeds + 1));

// Work gets done at all: over the seeds, a fair share of jobs start and some
// preemption and backfill happen, so the properties above are not vacuous.
TEST(SchedulerPropertyCoverageTest, RandomRunsExerciseEveryDecisionKind) {
  std::map<std::string, int> kinds;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SeededRun run(seed);
    for (int pass = 0; pass < kPasses; ++pass) {
      ASSERT_NO_FATAL_FAILURE(run.Pass(pass));
      ASSERT_NO_FATAL_FAILURE(run.Between(pass));
    }
    for (const std::string& line : run.log()) {
      size_t a = line.find(':', line.find(':') + 1), b = line.find(':', a + 1);
      ++kinds[line.substr(a + 1, b - a - 1)];
    }
  }
  for (DecisionKind k : {DecisionKind::kPlaced, DecisionKind::kBackfilled,
                         DecisionKind::kPreempting, DecisionKind::kPreempted,
                         DecisionKind::kWaiting})
    EXPECT_GT(kinds[DecisionKindName(k)], 0) << DecisionKindName(k);
}

}  // namespace
}  // namespace meridian
