// `meridian train`: the MLP on the UCI digits (or a generated set) in one
// process, or data-parallel across worker processes:
//   --standalone   launches --workers ranks on this machine, spread over
//                  --regions, with a netemu link between every two regions, and
//                  hosts their store; prints one summary;
//   --worker       one rank; under Meridian its rank, peers and store come
//                  from the job's environment (RANK, MASTER_ADDR/PORT, ...).
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "netemu/netemu.h"
#include "nlohmann/json.hpp"
#include "train/dataset.h"
#include "train/distributed.h"
#include "train/kvstore.h"
#include "train/mlp.h"
#include "train/relay_hub.h"

namespace meridian::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  train::Dataset train, test;
  std::string source;
  std::vector<int> hidden;
};

absl::StatusOr<Data> LoadData(const TrainArgs& a) {
  Data d;
  train::Dataset all;
  d.source = a.dataset;
  d.hidden = a.hidden;
  if (a.dataset == "synthetic") {
    all = train::SyntheticDigits(a.synthetic_samples > 0 ? a.synthetic_samples : 2000, a.seed);
  } else if (a.dataset == "large") {
    all = train::SyntheticClusters(a.synthetic_samples > 0 ? a.synthetic_samples : 24000, 256, 10,
                                   a.seed);
    if (d.hidden.empty()) d.hidden = {2048, 512};
  } else {
    std::string path = a.dataset;
    if (a.dataset == "digits") path = DigitsPath();
    if (!std::filesystem::exists(path))
      return absl::NotFoundError(absl::StrCat(
          "dataset file ", path,
          " not found (set MERIDIAN_DATA to the data folder, give a CSV path, or use "
          "--dataset synthetic|large)"));
    absl::StatusOr<train::Dataset> loaded = train::LoadDigitsCsv(path);
    if (!loaded.ok()) return loaded.status();
    all = *std::move(loaded);
    d.source = path;
  }
  if (d.hidden.empty()) d.hidden = {64};
  train::Split(all, a.test_fraction, a.seed, &d.train, &d.test);
  return d;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "meridian train: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsFailedPrecondition(s)
             ? kExitInvalid
             : kExitError;
}

int RunLocal(const TrainArgs& a) {
  absl::StatusOr<Data> d = LoadData(a);
  if (!d.ok()) return Fail(d.status());
  train::TrainOptions o;
  o.hidden = d->hidden;
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.lr = static_cast<float>(a.lr);
  o.seed = a.seed;
  auto t0 = Clock::now();
  train::Mlp model({1, 1}, 0);
  train::TrainResult r = train::TrainLocal(d->train, d->test, o, &model);
  if (!a.save.empty())
    if (absl::Status s = train::SaveModel(a.save, model); !s.ok()) return Fail(s);
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  nlohmann::json out = {{"mode", "local"},
                        {"workers", 1},
                        {"dataset", d->source},
                        {"train_samples", d->train.size()},
                        {"test_samples", d->test.size()},
                        {"epochs", a.epochs},
                        {"batch", a.batch},
                        {"steps", r.steps},
                        {"train_loss", r.train_loss},
                        {"test_accuracy", r.test_accuracy},
                        {"seconds", s},
                        {"samples_per_sec", static_cast<double>(r.samples) / s},
                        {"wan_bytes", 0},
                        {"compute_fraction", 1.0}};
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "trained on %zu samples of %s for %d epochs (%lld steps) in %.2fs: test accuracy "
        "%.2f%% on %zu held-out samples\n",
        d->train.size(), d->source.c_str(), a.epochs, static_cast<long long>(r.steps), s,
        r.test_accuracy * 100, d->test.size());
  }
  return kExitOk;
}

absl::StatusOr<std::vector<int>> ParseRegions(const std::string& s) {
  std::vector<int> out;
  std::map<std::string, int> index;  // names map to indexes by first appearance
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    std::string name(part);
    if (name.empty()) return absl::InvalidArgumentError("empty region name in '" + s + "'");
    auto it = index.emplace(name, static_cast<int>(index.size())).first;
    out.push_back(it->second);
  }
  return out;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

train::DistOptions DistFrom(const TrainArgs& a, const Data& d) {
  train::DistOptions o;
  o.mode = *train::ParseMode(a.mode);
  o.hidden = d.hidden;
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.lr = static_cast<float>(a.lr);
  o.seed = a.seed;
  o.local_steps = a.local_steps;
  o.outer_lr = static_cast<float>(a.outer_lr);
  o.outer_momentum = static_cast<float>(a.outer_momentum);
  o.codec = *train::ParseCodec(a.compression);
  o.overlap = a.overlap;
  o.dynamic_shares = a.shares == "dynamic";
  o.rebalance_every = a.rebalance_every;
  o.target_accuracy = a.target_accuracy;
  o.eval_every = a.eval_every;
  o.eval_samples = a.eval_samples;
  o.checkpoint_dir = a.checkpoint_dir;
  o.checkpoint_every = a.checkpoint_every;
  o.save_path = a.save;
  return o;
}

nlohmann::json ResultJson(const train::DistResult& r) {
  return {{"rank", r.rank},
          {"test_accuracy", r.test_accuracy},
          {"train_loss", r.train_loss},
          {"steps", r.steps},
          {"start_step", r.start_step},
          {"samples", r.samples},
          {"wall_s", r.wall_s},
          {"compute_s", r.compute_s},
          {"eval_s", r.eval_s},
          {"exchange_wait_s", r.exchange_wait_s},
          {"time_to_target_s", r.time_to_target_s},
          {"steps_to_target", r.steps_to_target},
          {"checkpoints", r.checkpoints},
          {"shares", r.final_shares}};
}

absl::Status CheckDistArgs(const TrainArgs& a) {
  absl::StatusOr<train::Mode> m = train::ParseMode(a.mode);
  if (!m.ok()) return m.status();
  absl::StatusOr<train::Codec> c = train::ParseCodec(a.compression);
  if (!c.ok()) return c.status();
  if (a.shares != "dynamic" && a.shares != "equal")
    return absl::InvalidArgumentError("--shares must be dynamic or equal, not '" + a.shares + "'");
  if (*c != train::Codec::kFp32 && *m != train::Mode::kDiloco)
    return absl::InvalidArgumentError("--compression applies to --mode diloco only");
  if (a.overlap && *m != train::Mode::kDiloco)
    return absl::InvalidArgumentError("--overlap applies to --mode diloco only");
  if (!a.checkpoint_dir.empty() && a.checkpoint_every <= 0)
    return absl::InvalidArgumentError("--checkpoint-dir needs --checkpoint-every STEPS");
  return absl::OkStatus();
}

// One rank.
int RunWorkerRank(TrainArgs a) {
  if (absl::Status s = CheckDistArgs(a); !s.ok()) return Fail(s);
  // Under Meridian the job's environment says who we are and where the store is.
  if (a.rank < 0 && !absl::SimpleAtoi(Env("RANK"), &a.rank))
    return Fail(absl::InvalidArgumentError("--worker needs --rank or RANK in the environment"));
  if (a.rank_regions.empty()) a.rank_regions = Env("MERIDIAN_PEER_REGIONS");
  if (a.rank_regions.empty()) {
    int world = 0;
    if (!absl::SimpleAtoi(Env("WORLD_SIZE"), &world) || world < 1)
      return Fail(absl::InvalidArgumentError(
          "--worker needs --rank-regions, MERIDIAN_PEER_REGIONS or WORLD_SIZE"));
    a.rank_regions = "r";
    for (int i = 1; i < world; ++i) a.rank_regions += ",r";
  }
  // Under Meridian every rank must see the same checkpoints, and the model
  // must outlive the run: relative paths live in the cluster's shared directory.
  for (std::string* path : {&a.checkpoint_dir, &a.save}) {
    if (path->empty() || (*path)[0] == '/') continue;
    std::string shared = Env("MERIDIAN_SHARED_DIR");
    if (shared.empty())
      return Fail(absl::InvalidArgumentError(
          "'" + *path + "' is relative and MERIDIAN_SHARED_DIR is not set; give an absolute path"));
    *path = shared + "/" + *path;
    if (path == &a.save) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(*path).parent_path(), ec);
    }
  }
  absl::StatusOr<std::vector<int>> regions = ParseRegions(a.rank_regions);
  if (!regions.ok()) return Fail(regions.status());
  if (a.epoch.empty()) a.epoch = "a" + (Env("MERIDIAN_ATTEMPT").empty() ? "0" : Env("MERIDIAN_ATTEMPT"));
  std::unique_ptr<train::RelayHub> hub;      // declared first: the server's handler uses it
  std::unique_ptr<train::KvServer> server;
  const bool standalone = !a.store.empty();  // the launcher gave the store
  if (a.store.empty()) {
    std::string host = Env("MASTER_ADDR"), port = Env("MASTER_PORT");
    if (host.empty() || port.empty())
      return Fail(absl::InvalidArgumentError("--worker needs --store or MASTER_ADDR/MASTER_PORT"));
    a.store = host + ":" + port;
    // A cluster that emulates a WAN (meridian dev --wan-rtt-ms/--wan-mbps)
    // routes traffic between regions through relays in rank 0.
    double rtt = 0, mbps = 0;
    bool has_rtt = absl::SimpleAtod(Env("MERIDIAN_WAN_RTT_MS"), &rtt);
    bool has_mbps = absl::SimpleAtod(Env("MERIDIAN_WAN_MBPS"), &mbps);
    bool wan = has_rtt || has_mbps;
    a.relays = wan;
    if (a.rank == 0) {  // rank 0 hosts the job's store, as torch's TCPStore does
      train::KvServer::Handler handler;
      if (wan) {
        netemu::LinkOptions lo;
        lo.one_way_delay_ms = rtt / 2;
        lo.mbps = mbps;
        hub = std::make_unique<train::RelayHub>(lo);
        handler = hub->Handler();
      }
      absl::StatusOr<std::unique_ptr<train::KvServer>> s = train::KvServer::Start(a.store, handler);
      if (!s.ok()) return Fail(s.status());
      server = *std::move(s);
    }
  }
  absl::StatusOr<Data> d = LoadData(a);
  if (!d.ok()) return Fail(d.status());
  absl::StatusOr<std::unique_ptr<train::KvClient>> client =
      train::KvClient::Connect(a.store, std::chrono::seconds(60));
  if (!client.ok()) return Fail(client.status());
  train::KvClient* store = client->get();
  train::DistOptions o = DistFrom(a, *d);
  o.rank = a.rank;
  o.regions = *regions;
  o.epoch = a.epoch;
  o.fail_after_step = a.fail_after_step;
  if (a.rank == a.slow_rank) o.slow_factor = a.slow_factor;
  if (a.relays) {
    o.resolver = [store](int from, int to, const std::string& target, const std::string& self) {
      return store->Call("relay", absl::StrCat(from, " ", to, " ", target, " ", self));
    };
  }
  if (a.rank == 0 && !a.quiet)
    o.progress = [](const std::string& line) {
      std::printf("[train] %s\n", line.c_str());
      std::fflush(stdout);
    };
  absl::StatusOr<train::DistResult> r = train::RunWorker(store, d->train, d->test, o);
  if (!r.ok()) {
    std::fprintf(stderr, "meridian train: rank %d: %s\n", a.rank,
                 std::string(r.status().message()).c_str());
    return kExitError;
  }
  nlohmann::json j = ResultJson(*r);
  if (standalone) {  // the launcher collects results
    absl::Status s = store->Put(absl::StrCat("result/", a.rank), j.dump());
    if (!s.ok()) return Fail(s);
  }
  if (a.rank == 0) {
    if (hub) j["wan_bytes"] = hub->TotalBytes();
    j["mode"] = a.mode;
    j["world"] = regions->size();
    j["epoch"] = a.epoch;
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return kExitOk;
}

std::vector<std::string> WorkerArgs(const TrainArgs& a, const Data& d) {
  std::vector<std::string> v = {"train", "--worker", "--relays", "--quiet"};
  auto add = [&v](const char* flag, const std::string& value) {
    v.push_back(flag);
    v.push_back(value);
  };
  add("--dataset", a.dataset);
  if (a.synthetic_samples > 0) add("--samples", absl::StrCat(a.synthetic_samples));
  for (int h : d.hidden) add("--hidden", absl::StrCat(h));
  add("--epochs", absl::StrCat(a.epochs));
  add("--batch", absl::StrCat(a.batch));
  add("--lr", absl::StrCat(a.lr));
  add("--test-fraction", absl::StrCat(a.test_fraction));
  add("--seed", absl::StrCat(a.seed));
  add("--mode", a.mode);
  add("--local-steps", absl::StrCat(a.local_steps));
  add("--outer-lr", absl::StrCat(a.outer_lr));
  add("--outer-momentum", absl::StrCat(a.outer_momentum));
  add("--compression", a.compression);
  if (a.overlap) v.push_back("--overlap");
  add("--shares", a.shares);
  add("--rebalance-every", absl::StrCat(a.rebalance_every));
  add("--slow-rank", absl::StrCat(a.slow_rank));
  add("--slow-factor", absl::StrCat(a.slow_factor));
  add("--target-accuracy", absl::StrCat(a.target_accuracy));
  add("--eval-every", absl::StrCat(a.eval_every));
  add("--eval-samples", absl::StrCat(a.eval_samples));
  if (!a.save.empty()) add("--save", a.save);
  if (!a.checkpoint_dir.empty()) {
    add("--checkpoint-dir", a.checkpoint_dir);
    add("--checkpoint-every", absl::StrCat(a.checkpoint_every));
  }
  return v;
}

int RunStandalone(TrainArgs a) {
  if (absl::Status s = CheckDistArgs(a); !s.ok()) return Fail(s);
  if (!a.checkpoint_dir.empty()) a.checkpoint_dir = std::filesystem::absolute(a.checkpoint_dir).string();
  if (!a.save.empty()) a.save = std::filesystem::absolute(a.save).string();
  if (a.workers < 1 || a.regions < 1 || a.regions > a.workers)
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--regions ", a.regions, " must be between 1 and --workers ", a.workers)));
  if (a.batch < a.workers)
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--batch ", a.batch, " must be at least --workers ", a.workers)));
  if (a.slow_rank >= a.workers)
    return Fail(absl::InvalidArgumentError(absl::StrCat("--slow-rank ", a.slow_rank,
                                                        " is not a rank below ", a.workers)));
  absl::StatusOr<Data> d = LoadData(a);  // checks the dataset before starting anything
  if (!d.ok()) return Fail(d.status());

  std::string work = a.work_dir;
  if (work.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "meridian-train-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return Fail(absl::UnavailableError("cannot create a work dir"));
    work = tmpl;
  }
  std::error_code ec;
  std::filesystem::create_directories(work, ec);

  // Ranks fill regions in contiguous blocks; rank 0 leads region 0.
  std::vector<int> region_of(size_t(a.workers));
  for (int r = 0; r < a.workers; ++r) region_of[size_t(r)] = r * a.regions / a.workers;
  std::string rank_regions;
  for (int r = 0; r < a.workers; ++r)
    absl::StrAppend(&rank_regions, r ? "," : "", "region", region_of[size_t(r)]);

  // One emulated link per direction between every two regions, shared by all
  // the connections that cross it.
  netemu::LinkOptions lo;
  lo.one_way_delay_ms = a.wan_rtt_ms / 2;
  lo.mbps = a.wan_mbps;
  lo.loss = a.wan_loss;
  train::RelayHub hub(lo);
  absl::StatusOr<std::unique_ptr<train::KvServer>> server =
      train::KvServer::Start("127.0.0.1:0", hub.Handler());
  if (!server.ok()) return Fail(server.status());

  std::vector<std::string> base = WorkerArgs(a, *d);
  std::vector<Child> children;
  auto t0 = Clock::now();
  for (int r = 0; r < a.workers; ++r) {
    std::vector<std::string> args = base;
    for (std::string x : {std::string("--rank"), absl::StrCat(r), std::string("--store"),
                          (*server)->address(), std::string("--rank-regions"), rank_regions,
                          std::string("--epoch"), std::string("e0")})
      args.push_back(x);
    if (r == 0 && !a.quiet) {
      // Rank 0 reports progress; it is echoed below.
      args.erase(std::find(args.begin(), args.end(), "--quiet"));
    }
    absl::StatusOr<Child> c =
        SpawnSelf(absl::StrCat("rank ", r), args, absl::StrCat(work, "/rank-", r, ".log"));
    if (!c.ok()) {
      for (Child& k : children) StopChild(k, 1);
      return Fail(c.status());
    }
    children.push_back(*c);
  }
  if (!a.quiet)
    std::fprintf(stderr, "meridian train: %d workers in %d regions, mode %s, logs in %s\n",
                 a.workers, a.regions, a.mode.c_str(), work.c_str());

  // Wait, echoing rank 0's progress; one failed rank stops the run.
  std::ifstream progress(work + "/rank-0.log");
  std::vector<bool> done(children.size(), false);
  size_t remaining = children.size();
  int failed = -1, failed_status = 0;
  while (remaining > 0 && failed < 0) {
    for (size_t i = 0; i < children.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      if (::waitpid(children[i].pid, &status, WNOHANG) == children[i].pid) {
        done[i] = true;
        --remaining;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
          failed = static_cast<int>(i);
          failed_status = status;
        }
      }
    }
    if (!a.quiet) {
      std::string line;
      while (std::getline(progress, line)) {
        if (line.rfind("[train] ", 0) == 0) std::fprintf(stderr, "  %s\n", line.c_str() + 8);
      }
      progress.clear();
    }
    if (remaining > 0 && failed < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed >= 0) {
    for (size_t i = 0; i < children.size(); ++i)
      if (!done[i]) StopChild(children[i], 2);
    std::string why = WIFEXITED(failed_status)
                          ? absl::StrCat("exited with status ", WEXITSTATUS(failed_status))
                          : absl::StrCat("was killed by signal ", WTERMSIG(failed_status));
    std::fprintf(stderr, "meridian train: rank %d %s; its log: %s/rank-%d.log\n", failed,
                 why.c_str(), work.c_str(), failed);
    std::ifstream log(absl::StrCat(work, "/rank-", failed, ".log"));
    std::string line, tail[5];
    int n = 0;
    while (std::getline(log, line)) tail[n++ % 5] = line;
    for (int k = std::max(0, n - 5); k < n; ++k) std::fprintf(stderr, "  %s\n", tail[k % 5].c_str());
    return kExitError;
  }

  // Summary.
  std::vector<nlohmann::json> ranks;
  int64_t samples = 0;
  double wall = 0, compute_fraction = 0, capacity = 0;
  for (int r = 0; r < a.workers; ++r) {
    std::optional<std::string> v = (*server)->Get(absl::StrCat("result/", r));
    if (!v) return Fail(absl::InternalError(absl::StrCat("rank ", r, " reported no result")));
    nlohmann::json j = nlohmann::json::parse(*v);
    samples += j["samples"].get<int64_t>();
    double w = j["wall_s"].get<double>(), c = j["compute_s"].get<double>();
    wall = std::max(wall, w);
    compute_fraction += w > 0 ? c / w / a.workers : 0;
    capacity += c > 0 ? j["samples"].get<double>() / c : 0;
    ranks.push_back(j);
  }
  uint64_t wan_bytes = hub.TotalBytes();
  nlohmann::json link_bytes = nlohmann::json::array();
  for (const auto& [k, bytes] : hub.LinkBytes())
    link_bytes.push_back({{"from", absl::StrCat("region", k.first)},
                          {"to", absl::StrCat("region", k.second)},
                          {"bytes", bytes}});
  hub.Stop();
  const nlohmann::json& r0 = ranks[0];
  double sps = wall > 0 ? samples / wall : 0;
  nlohmann::json out = {{"mode", a.mode},
                        {"workers", a.workers},
                        {"regions", a.regions},
                        {"dataset", d->source},
                        {"train_samples", d->train.size()},
                        {"test_samples", d->test.size()},
                        {"params", 0},
                        {"epochs", a.epochs},
                        {"batch", a.batch},
                        {"steps", r0["steps"]},
                        {"test_accuracy", r0["test_accuracy"]},
                        {"train_loss", r0["train_loss"]},
                        {"seconds", wall},
                        {"launch_seconds", seconds},
                        {"samples", samples},
                        {"samples_per_sec", sps},
                        {"capacity_samples_per_sec", capacity},
                        {"balance_efficiency", capacity > 0 ? sps / capacity : 0},
                        {"compute_fraction", compute_fraction},
                        {"wan_bytes", wan_bytes},
                        {"wan_links", link_bytes},
                        {"wan_rtt_ms", a.wan_rtt_ms},
                        {"wan_mbps", a.wan_mbps},
                        {"shares", a.shares},
                        {"final_shares", r0["shares"]},
                        {"time_to_target_s", r0["time_to_target_s"]},
                        {"steps_to_target", r0["steps_to_target"]},
                        {"target_accuracy", a.target_accuracy}};
  {
    std::vector<int> sizes = {static_cast<int>(d->train.x.cols())};
    sizes.insert(sizes.end(), d->hidden.begin(), d->hidden.end());
    sizes.push_back(d->train.classes);
    size_t p = 0;
    for (size_t i = 0; i + 1 < sizes.size(); ++i) p += size_t(sizes[i] + 1) * size_t(sizes[i + 1]);
    out["params"] = p;
  }
  if (a.mode == "diloco") {
    out["local_steps"] = a.local_steps;
    out["compression"] = a.compression;
    out["overlap"] = a.overlap;
  }
  if (a.slow_rank >= 0) {
    out["slow_rank"] = a.slow_rank;
    out["slow_factor"] = a.slow_factor;
  }
  if (a.work_dir.empty()) std::filesystem::remove_all(work, ec);
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "mode %s, %d workers in %d regions: test accuracy %.2f%% after %lld steps in %.2fs "
        "(%.0f samples/s, compute fraction %.2f), %llu bytes across regions\n",
        a.mode.c_str(), a.workers, a.regions, r0["test_accuracy"].get<double>() * 100,
        static_cast<long long>(r0["steps"].get<int64_t>()), wall, sps, compute_fraction,
        static_cast<unsigned long long>(wan_bytes));
  }
  return kExitOk;
}

}  // namespace

std::string DataDir() {
  if (const char* data = std::getenv("MERIDIAN_DATA"); data != nullptr && *data != '\0')
    return data;
  std::error_code ec;
  std::vector<std::filesystem::path> candidates = {"../shared/data"};
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path() / "../../shared/data");
#ifdef MERIDIAN_CHECKOUT_DATA_DIR
  candidates.push_back(MERIDIAN_CHECKOUT_DATA_DIR);
#endif
  for (const auto& c : candidates)
    if (std::filesystem::is_directory(c, ec))
      return std::filesystem::weakly_canonical(std::filesystem::absolute(c, ec), ec).string();
  return "../shared/data";
}

std::string DigitsPath() { return DataDir() + "/sklearn-digits/digits.csv.gz"; }

int RunTrain(const TrainArgs& a) {
  if (a.worker) return RunWorkerRank(a);
  if (a.standalone) return RunStandalone(a);
  return RunLocal(a);
}

}  // namespace meridian::cli
