// Simulation results: metrics per policy, JSON and a self-contained HTML report.
//
// The HTML report has no external references (inline SVG and CSS, no
// scripts needed), so it opens offline: a metrics table, JCT CDF per policy,
// GPU utilization and queue length over time, cost per policy, and (openb)
// allocation rate as load grows. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace meridian::sim {

struct PolicyResult {
  std::string policy;
  int64_t jobs_total = 0;
  int64_t jobs_completed = 0;
  int64_t jobs_unschedulable = 0;  // could never fit the fleet
  double avg_jct_s = 0;
  double median_jct_s = 0;
  double p99_jct_s = 0;
  double avg_queue_s = 0;  // submit -> first start
  double makespan_s = 0;   // first submit -> last finish
  double gpu_util = 0;     // time-averaged allocated GPUs / GPUs, over the makespan
  double cost_usd = 0;  // GPU node-hours x price, plus dataset egress
  double egress_gb = 0;
  int64_t preemptions = 0;
  double fairness = 0;  // Jain's index over tenants' mean slowdown (1 = perfectly fair)
  double unallocated_gpu_share = 0;  // openb scenario: GPUs left unallocated at saturation
  double wall_s = 0;    // simulator run time
  // Sorted JCTs, downsampled to at most ~2000 points, for the CDF.
  std::vector<double> jct_cdf;
  // (virtual time s, value), downsampled to at most ~1000 points.
  std::vector<std::pair<double, double>> utilization;
  std::vector<std::pair<double, double>> queue_length;
  // openb: (GPU demand arrived / fleet GPUs, GPUs allocated / fleet GPUs).
  std::vector<std::pair<double, double>> allocation_curve;
  // No departures: the state when GPU demand arrived first reached each of
  // SimOptions::arrival_checkpoints (share of the fleet's GPUs).
  struct Checkpoint {
    double arrived = 0;             // the checkpoint (e.g. 1.0 = 100%)
    double unallocated = 0;         // GPUs unallocated / fleet GPUs
    double fragmentation_rate = 0;  // expected fragment / unallocated GPUs (FGD's measure)
  };
  std::vector<Checkpoint> checkpoints;
};

struct RunInfo {
  std::string fleet;   // path or description
  std::string trace;   // KIND:PATH
  int64_t nodes = 0;
  int64_t gpus = 0;
  uint64_t seed = 1;
  std::string scenario;  // free text title
  // Modelling (docs/traces.md): "event-driven" or "rounds of N s", restart
  // penalty, job model ("fixed" | "goodput"). Empty: not recorded.
  std::string modelling;
};

// Fills avg, median and p99 JCT and the CDF from the JCTs of the completed
// jobs (any order). p99 interpolates linearly between ranks (numpy's default
// percentile, which the Pollux and Gavel artifacts report).
void SetJctStats(std::vector<double> jcts, PolicyResult* r);
// Jain's fairness index over the groups' means sum[g] / n[g] (groups with
// n[g] == 0 left out); 1 when there is nothing to compare.
double JainIndexOfMeans(const std::vector<double>& sum, const std::vector<int64_t>& n);
// Evenly spaced samples of a step function given as (t, value) change points.
std::vector<std::pair<double, double>> DownsampleSeries(
    const std::vector<std::pair<double, double>>& in, size_t max_points);

// One JSON document: {"run": {...}, "policies": {"<name>": {metrics...}, ...}}.
// Each policy object has at least avg_jct_s, p99_jct_s, makespan_s, gpu_util,
// cost_usd, jobs_completed.
std::string ResultsToJson(const std::vector<PolicyResult>& results, const RunInfo& info);

std::string RenderHtmlReport(const std::vector<PolicyResult>& results, const RunInfo& info);

}  // namespace meridian::sim
