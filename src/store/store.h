// Store: the controller's durable state in SQLite (WAL, synchronous=FULL).
// The database file (and its WAL) is created 0600: it holds token hashes
// and sealed secrets.
//
// Records are whole rows (jobs, replicas, nodes, meta) written by upsert.
// Writes are queued with Enqueue() and committed by one writer thread in
// group commits: everything queued while the previous transaction was being
// synced goes into the next one, so many concurrent writers share one fsync.
// A write's callback runs on the writer thread after its transaction is
// durable; callers answer their clients only then ("an acknowledged write
// survives kill -9"). Batches commit in the order they were enqueued, so a
// later batch being durable implies every earlier one is. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

namespace meridian::store {

struct JobRecord {
  uint64_t id = 0;
  std::string name;
  std::string tenant;
  std::string spec;   // the submitted document
  int32_t state = 0;  // meridian.v1.JobState value
  int32_t attempt = 0;
  int32_t failures = 0;
  std::string message;
  double created_s = 0;
  double updated_s = 0;
  double not_before_s = 0;  // retry backoff: not placed before this time
  int32_t master_port = 0;
};

struct ReplicaRecord {
  uint64_t job_id = 0;
  int32_t index = 0;
  int32_t attempt = 0;
  std::string node;   // empty when not placed
  int32_t state = 0;  // meridian.v1.ReplicaState value
  int32_t exit_code = 0;
  std::string message;
};

struct NodeRecord {
  std::string name;
  std::string region;
  std::string zone;
  std::string gpu_type;
  int32_t gpus = 0;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  std::string address;
  std::string limits;
  bool cordoned = false;
};

// A model endpoint (controller/endpoints.h): its spec and where its
// rollout stands. Deleted endpoints keep a row (deleted = true) until
// their replicas are gone.
struct EndpointRecord {
  std::string name;
  std::string spec;        // the submitted `kind: endpoint` document
  int32_t generation = 1;  // +1 per update; replicas of older ones are replaced
  int32_t desired = 0;     // replicas wanted now (autoscaled within min..max)
  double created_s = 0;
  double updated_s = 0;
  bool deleted = false;
};

// A record of the identity and secrets registry (controller/identity.h):
// users, tokens, join tokens and sealed secrets, by kind and key. The value
// is opaque to the store (JSON, or a sealed secret's bytes).
struct KvRecord {
  std::string kind;  // "user", "token", "secret", ...
  std::string key;
  std::string value;
  bool deleted = false;  // in a Batch: remove the row
};

// One line of the audit trail: who did what, to what, and how it ended.
struct AuditRecord {
  uint64_t seq = 0;  // assigned by the store when loaded (row order)
  double time_s = 0;
  std::string identity;  // "user:alice", "node:n1", "anonymous"
  std::string tenant;    // the tenant the call touched ("" for cluster objects)
  std::string method;    // "JobService/Cancel"
  std::string object;    // "job 12", "node n1", "user bob"
  std::string code;      // "OK", "PERMISSION_DENIED", ...
  std::string message;   // why it was denied or failed (no secrets)
};

struct Batch {
  std::vector<KvRecord> kv;
  std::vector<AuditRecord> audit;
  std::vector<EndpointRecord> endpoints;
  std::vector<JobRecord> jobs;
  std::vector<ReplicaRecord> replicas;
  std::vector<NodeRecord> nodes;
  std::vector<uint64_t> delete_replicas_of;  // job ids whose replica rows are removed first
  bool empty() const {
    return jobs.empty() && replicas.empty() && nodes.empty() && delete_replicas_of.empty() &&
           endpoints.empty() && kv.empty() && audit.empty();
  }
};

struct Snapshot {
  std::vector<JobRecord> jobs;          // by id
  std::vector<ReplicaRecord> replicas;  // by (job, index)
  std::vector<NodeRecord> nodes;        // by name
  std::vector<EndpointRecord> endpoints;  // by name
  std::vector<KvRecord> kv;               // by (kind, key)
  std::vector<AuditRecord> audit;         // oldest first
};

struct StoreOptions {
  std::string path;              // the database file; created when missing
  bool synchronous_full = true;  // false: synchronous=NORMAL (benchmarks of the ceiling only)
  size_t max_batches_per_commit = 4096;
};

class Store {
 public:
  // Opens (creating tables if needed) and starts the writer thread.
  static absl::StatusOr<std::unique_ptr<Store>> Open(StoreOptions options);
  ~Store();  // drains the queue, then stops the writer

  // Reads everything; call before the first Enqueue.
  absl::StatusOr<Snapshot> Load();

  using Done = std::function<void(const absl::Status&)>;
  // Queues `batch`; `done` (may be empty) runs after it is durable. Returns
  // the batch's sequence number (1, 2, ...).
  uint64_t Enqueue(Batch batch, Done done);
  // Enqueue and wait.
  absl::Status Write(Batch batch);
  // Every batch with sequence <= this is durable.
  uint64_t committed() const;
  // Blocks until batch `seq` is durable (returns at once for 0).
  void WaitCommitted(uint64_t seq) const;

  // Transactions and batches committed so far (for benchmarks and tests).
  uint64_t transactions() const;

 private:
  explicit Store(StoreOptions options);
  absl::Status Init();
  void WriterLoop();
  absl::Status Apply(const Batch& b);

  StoreOptions options_;
  sqlite3* db_ = nullptr;
  struct Pending {
    uint64_t seq;
    Batch batch;
    Done done;
  };
  mutable std::mutex mu_;
  std::condition_variable cv_;               // queue not empty / stopping
  mutable std::condition_variable done_cv_;  // committed_ advanced
  std::deque<Pending> queue_;
  uint64_t next_seq_ = 1;
  uint64_t committed_ = 0;
  uint64_t transactions_ = 0;
  bool stopping_ = false;
  std::thread writer_;
  struct Statements;
  std::unique_ptr<Statements> stmts_;
};

}  // namespace meridian::store
