// `meridian bench collective`: allreduce speed on loopback, measured in one
// run three ways on the same buffer: Gloo's ring called directly, the
// training runtime's Group::Allreduce (what every mode uses), and OpenMPI's
// MPI_Allreduce (bench/mpi_allreduce, when built and mpirun is present).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "nlohmann/json.hpp"
#include "train/collective.h"
#include "train/kvstore.h"

namespace meridian::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int RunWorker(const BenchCollectiveArgs& a) {
  auto client = train::KvClient::Connect(a.store, std::chrono::seconds(30));
  if (!client.ok()) {
    std::fprintf(stderr, "bench collective: %s\n", std::string(client.status().message()).c_str());
    return kExitError;
  }
  train::GroupOptions go;
  go.prefix = "bench";
  go.member_regions.assign(size_t(a.procs), 0);
  go.rank = a.rank;
  auto group = train::Group::Connect(client->get(), train::LoopbackDevice(), go);
  if (!group.ok()) {
    std::fprintf(stderr, "bench collective: %s\n", std::string(group.status().message()).c_str());
    return kExitError;
  }
  size_t n = size_t(a.bytes) / 4;
  std::vector<float> buf(n, 1.0f);
  std::vector<double> raw, ours;
  const auto& ctx = (*group)->context();
  for (int i = 0; i < a.iters + 3; ++i) {
    // Alternate the two paths so that both see the same machine state.
    for (int path = 0; path < 2; ++path) {
      gloo::BarrierOptions bo(ctx);
      gloo::barrier(bo);
      Clock::time_point t0 = Clock::now();
      if (path == 0) {
        gloo::AllreduceOptions opts(ctx);
        opts.setOutput(buf.data(), n);
        opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
        opts.setReduceFunction(&train::SumFloats);
        gloo::allreduce(opts);
      } else if (absl::Status s = (*group)->Allreduce(buf.data(), n); !s.ok()) {
        std::fprintf(stderr, "bench collective: %s\n", std::string(s.message()).c_str());
        return kExitError;
      }
      double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (i >= 3) (path == 0 ? raw : ours).push_back(dt);
    }
  }
  nlohmann::json r = {{"raw", Median(raw)}, {"ours", Median(ours)}};
  (void)(*client)->Put(absl::StrCat("result/", a.rank), r.dump());
  return kExitOk;
}

}  // namespace

int RunBenchCollective(const BenchCollectiveArgs& a) {
  if (a.worker) return RunWorker(a);
  auto server = train::KvServer::Start("127.0.0.1:0");
  if (!server.ok()) {
    std::fprintf(stderr, "bench collective: %s\n", std::string(server.status().message()).c_str());
    return kExitError;
  }
  std::string logs = (std::filesystem::temp_directory_path() / "meridian-bench-collective").string();
  std::filesystem::create_directories(logs);
  std::vector<Child> children;
  for (int r = 0; r < a.procs; ++r) {
    auto c = SpawnSelf(absl::StrCat("rank ", r),
                       {"bench", "collective", "--worker", "--rank", absl::StrCat(r), "--store",
                        (*server)->address(), "--procs", absl::StrCat(a.procs), "--bytes",
                        absl::StrCat(a.bytes), "--iters", absl::StrCat(a.iters)},
                       absl::StrCat(logs, "/rank-", r, ".log"));
    if (!c.ok()) {
      std::fprintf(stderr, "bench collective: %s\n", std::string(c.status().message()).c_str());
      return kExitError;
    }
    children.push_back(*c);
  }
  bool ok = true;
  for (Child& c : children) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  if (!ok) {
    std::fprintf(stderr, "bench collective: a worker failed; logs in %s\n", logs.c_str());
    return kExitError;
  }
  // The slowest rank's median is the collective's time.
  double raw = 0, ours = 0;
  for (int r = 0; r < a.procs; ++r) {
    nlohmann::json j = nlohmann::json::parse(*(*server)->Get(absl::StrCat("result/", r)));
    raw = std::max(raw, j["raw"].get<double>());
    ours = std::max(ours, j["ours"].get<double>());
  }
  nlohmann::json out = {{"benchmark", "collective"},
                        {"procs", a.procs},
                        {"bytes", a.bytes},
                        {"iters", a.iters},
                        {"gloo_ring_gbps", a.bytes / raw / 1e9},
                        {"meridian_gbps", a.bytes / ours / 1e9},
                        {"meridian_vs_gloo", raw / ours}};
  // OpenMPI on the same buffer size, when built and mpirun is installed.
  std::string mpi = (std::filesystem::path(SelfExePath()).parent_path() / "mpi_allreduce").string();
  if (std::filesystem::exists(mpi) && ::system("command -v mpirun > /dev/null 2>&1") == 0) {
    // Shared memory (OpenMPI's default on one host) and TCP over loopback
    // (what Gloo uses here).
    for (const char* btl : {"vader", "tcp"}) {
      std::string cmd = absl::StrCat("mpirun --allow-run-as-root --oversubscribe --mca btl self,",
                                     btl, " -np ", a.procs, " ", mpi, " --bytes ", a.bytes,
                                     " --iters ", a.iters, " 2>/dev/null");
      FILE* p = ::popen(cmd.c_str(), "r");
      char line[1024] = {0};
      std::string text = p && std::fgets(line, sizeof line, p) ? line : "";
      if (p) ::pclose(p);
      std::string key = std::string("openmpi_") + (btl == std::string("vader") ? "shm" : "tcp");
      try {
        nlohmann::json m = nlohmann::json::parse(text);
        out[key + "_gbps"] = m["gbps"];
      } catch (const std::exception&) {
        out[key + "_gbps"] = nullptr;
        out["openmpi_note"] = "mpirun failed";
      }
    }
  } else {
    out["openmpi_shm_gbps"] = nullptr;
    out["openmpi_tcp_gbps"] = nullptr;
    out["openmpi_note"] = "bench/mpi_allreduce not built or mpirun absent";
  }
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("allreduce of %lld bytes over %d processes: gloo ring %.3f GB/s, meridian %.3f GB/s",
                static_cast<long long>(a.bytes), a.procs, out["gloo_ring_gbps"].get<double>(),
                out["meridian_gbps"].get<double>());
    for (const char* k : {"openmpi_shm_gbps", "openmpi_tcp_gbps"})
      if (!out[k].is_null()) std::printf(", %s %.3f", k, out[k].get<double>());
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace meridian::cli
