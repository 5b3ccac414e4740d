#include "store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>
#include <utility>

#include "absl/strings/str_cat.h"

namespace meridian::store {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, tenant TEXT NOT NULL, spec TEXT NOT NULL,
  state INTEGER NOT NULL, attempt INTEGER NOT NULL, failures INTEGER NOT NULL,
  message TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
  not_before REAL NOT NULL, master_port INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replicas (
  job_id INTEGER NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL,
  state INTEGER NOT NULL, exit_code INTEGER NOT NULL, message TEXT NOT NULL,
  PRIMARY KEY (job_id, idx));
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY, region TEXT NOT NULL, zone TEXT NOT NULL, gpu_type TEXT NOT NULL,
  gpus INTEGER NOT NULL, cpu_milli INTEGER NOT NULL, memory_mib INTEGER NOT NULL,
  address TEXT NOT NULL, limits TEXT NOT NULL, cordoned INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
  name TEXT PRIMARY KEY, spec TEXT NOT NULL, generation INTEGER NOT NULL,
  desired INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
  deleted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
  kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, identity TEXT NOT NULL,
  tenant TEXT NOT NULL, method TEXT NOT NULL, object TEXT NOT NULL, code TEXT NOT NULL,
  message TEXT NOT NULL);
)sql";

absl::Status SqlError(sqlite3* db, const std::string& what) {
  return absl::InternalError(absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db)));
}

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* t = sqlite3_column_text(s, i);
  return t == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(t),
                                    static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

}  // namespace

struct Store::Statements {
  sqlite3_stmt* put_job = nullptr;
  sqlite3_stmt* put_replica = nullptr;
  sqlite3_stmt* put_node = nullptr;
  sqlite3_stmt* del_replicas = nullptr;
  sqlite3_stmt* put_endpoint = nullptr;
  sqlite3_stmt* put_kv = nullptr;
  sqlite3_stmt* del_kv = nullptr;
  sqlite3_stmt* put_audit = nullptr;
  ~Statements() {
    sqlite3_finalize(put_kv);
    sqlite3_finalize(del_kv);
    sqlite3_finalize(put_audit);
    sqlite3_finalize(put_endpoint);
    sqlite3_finalize(put_job);
    sqlite3_finalize(put_replica);
    sqlite3_finalize(put_node);
    sqlite3_finalize(del_replicas);
  }
};

Store::Store(StoreOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  std::unique_ptr<Store> s(new Store(std::move(options)));
  if (absl::Status st = s->Init(); !st.ok()) return st;
  s->writer_ = std::thread([p = s.get()] { p->WriterLoop(); });
  return s;
}

absl::Status Store::Init() {
  // Create the file 0600 before SQLite opens it (its WAL and shm files take
  // the database's mode); an existing file is narrowed to 0600 too.
  int fd = ::open(options_.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)::fchmod(fd, 0600);
    ::close(fd);
  }
  if (sqlite3_open_v2(options_.path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    absl::Status st = absl::UnavailableError(absl::StrCat(
        "cannot open store ", options_.path, ": ", db_ ? sqlite3_errmsg(db_) : "out of memory"));
    return st;
  }
  sqlite3_busy_timeout(db_, 5000);
  std::string pragmas = absl::StrCat("PRAGMA journal_mode=WAL; PRAGMA synchronous=",
                                     options_.synchronous_full ? "FULL" : "NORMAL", ";");
  char* err = nullptr;
  for (const std::string& sql : {pragmas, std::string(kSchema)}) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      absl::Status st = absl::InternalError(
          absl::StrCat("store ", options_.path, ": ", err ? err : "schema setup failed"));
      sqlite3_free(err);
      return st;
    }
  }
  stmts_ = std::make_unique<Statements>();
  struct {
    sqlite3_stmt** out;
    const char* sql;
  } prep[] = {
      {&stmts_->put_job,
       "INSERT OR REPLACE INTO jobs VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"},
      {&stmts_->put_replica, "INSERT OR REPLACE INTO replicas VALUES (?1,?2,?3,?4,?5,?6,?7)"},
      {&stmts_->put_node, "INSERT OR REPLACE INTO nodes VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"},
      {&stmts_->del_replicas, "DELETE FROM replicas WHERE job_id = ?1"},
      {&stmts_->put_endpoint, "INSERT OR REPLACE INTO endpoints VALUES (?1,?2,?3,?4,?5,?6,?7)"},
      {&stmts_->put_kv, "INSERT OR REPLACE INTO kv VALUES (?1,?2,?3)"},
      {&stmts_->del_kv, "DELETE FROM kv WHERE kind = ?1 AND key = ?2"},
      {&stmts_->put_audit,
       "INSERT INTO audit (time, identity, tenant, method, object, code, message) "
       "VALUES (?1,?2,?3,?4,?5,?6,?7)"},
  };
  for (auto& p : prep)
    if (sqlite3_prepare_v2(db_, p.sql, -1, p.out, nullptr) != SQLITE_OK)
      return SqlError(db_, p.sql);
  return absl::OkStatus();
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  stmts_.reset();
  if (db_ != nullptr) sqlite3_close(db_);
}

absl::StatusOr<Snapshot> Store::Load() {
  Snapshot snap;
  auto query = [&](const char* sql, auto&& row) -> absl::Status {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return SqlError(db_, sql);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return SqlError(db_, sql);
    return absl::OkStatus();
  };
  absl::Status st = query("SELECT * FROM jobs ORDER BY id", [&](sqlite3_stmt* s) {
    JobRecord j;
    j.id = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    j.name = ColumnText(s, 1);
    j.tenant = ColumnText(s, 2);
    j.spec = ColumnText(s, 3);
    j.state = sqlite3_column_int(s, 4);
    j.attempt = sqlite3_column_int(s, 5);
    j.failures = sqlite3_column_int(s, 6);
    j.message = ColumnText(s, 7);
    j.created_s = sqlite3_column_double(s, 8);
    j.updated_s = sqlite3_column_double(s, 9);
    j.not_before_s = sqlite3_column_double(s, 10);
    j.master_port = sqlite3_column_int(s, 11);
    snap.jobs.push_back(std::move(j));
  });
  if (!st.ok()) return st;
  st = query("SELECT * FROM replicas ORDER BY job_id, idx", [&](sqlite3_stmt* s) {
    ReplicaRecord r;
    r.job_id = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    r.index = sqlite3_column_int(s, 1);
    r.attempt = sqlite3_column_int(s, 2);
    r.node = ColumnText(s, 3);
    r.state = sqlite3_column_int(s, 4);
    r.exit_code = sqlite3_column_int(s, 5);
    r.message = ColumnText(s, 6);
    snap.replicas.push_back(std::move(r));
  });
  if (!st.ok()) return st;
  st = query("SELECT * FROM nodes ORDER BY name", [&](sqlite3_stmt* s) {
    NodeRecord n;
    n.name = ColumnText(s, 0);
    n.region = ColumnText(s, 1);
    n.zone = ColumnText(s, 2);
    n.gpu_type = ColumnText(s, 3);
    n.gpus = sqlite3_column_int(s, 4);
    n.cpu_milli = sqlite3_column_int64(s, 5);
    n.memory_mib = sqlite3_column_int64(s, 6);
    n.address = ColumnText(s, 7);
    n.limits = ColumnText(s, 8);
    n.cordoned = sqlite3_column_int(s, 9) != 0;
    snap.nodes.push_back(std::move(n));
  });
  if (!st.ok()) return st;
  st = query("SELECT * FROM endpoints ORDER BY name", [&](sqlite3_stmt* s) {
    EndpointRecord e;
    e.name = ColumnText(s, 0);
    e.spec = ColumnText(s, 1);
    e.generation = sqlite3_column_int(s, 2);
    e.desired = sqlite3_column_int(s, 3);
    e.created_s = sqlite3_column_double(s, 4);
    e.updated_s = sqlite3_column_double(s, 5);
    e.deleted = sqlite3_column_int(s, 6) != 0;
    snap.endpoints.push_back(std::move(e));
  });
  if (!st.ok()) return st;
  st = query("SELECT kind, key, value FROM kv ORDER BY kind, key", [&](sqlite3_stmt* s) {
    KvRecord r;
    r.kind = ColumnText(s, 0);
    r.key = ColumnText(s, 1);
    const void* blob = sqlite3_column_blob(s, 2);
    r.value.assign(static_cast<const char*>(blob),
                   blob == nullptr ? 0 : static_cast<size_t>(sqlite3_column_bytes(s, 2)));
    snap.kv.push_back(std::move(r));
  });
  if (!st.ok()) return st;
  st = query("SELECT * FROM audit ORDER BY seq", [&](sqlite3_stmt* s) {
    AuditRecord a;
    a.seq = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    a.time_s = sqlite3_column_double(s, 1);
    a.identity = ColumnText(s, 2);
    a.tenant = ColumnText(s, 3);
    a.method = ColumnText(s, 4);
    a.object = ColumnText(s, 5);
    a.code = ColumnText(s, 6);
    a.message = ColumnText(s, 7);
    snap.audit.push_back(std::move(a));
  });
  if (!st.ok()) return st;
  return snap;
}

uint64_t Store::Enqueue(Batch batch, Done done) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(mu_);
    seq = next_seq_++;
    queue_.push_back(Pending{seq, std::move(batch), std::move(done)});
  }
  cv_.notify_one();
  return seq;
}

absl::Status Store::Write(Batch batch) {
  std::promise<absl::Status> p;
  std::future<absl::Status> f = p.get_future();
  Enqueue(std::move(batch), [&p](const absl::Status& st) { p.set_value(st); });
  return f.get();
}

uint64_t Store::committed() const {
  std::lock_guard<std::mutex> l(mu_);
  return committed_;
}

void Store::WaitCommitted(uint64_t seq) const {
  std::unique_lock<std::mutex> l(mu_);
  done_cv_.wait(l, [&] { return committed_ >= seq; });
}

uint64_t Store::transactions() const {
  std::lock_guard<std::mutex> l(mu_);
  return transactions_;
}

absl::Status Store::Apply(const Batch& b) {
  auto step = [&](sqlite3_stmt* s) -> absl::Status {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) return SqlError(db_, "write");
    return absl::OkStatus();
  };
  for (uint64_t id : b.delete_replicas_of) {
    sqlite3_bind_int64(stmts_->del_replicas, 1, static_cast<int64_t>(id));
    if (absl::Status st = step(stmts_->del_replicas); !st.ok()) return st;
  }
  for (const JobRecord& j : b.jobs) {
    sqlite3_stmt* s = stmts_->put_job;
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(j.id));
    BindText(s, 2, j.name);
    BindText(s, 3, j.tenant);
    BindText(s, 4, j.spec);
    sqlite3_bind_int(s, 5, j.state);
    sqlite3_bind_int(s, 6, j.attempt);
    sqlite3_bind_int(s, 7, j.failures);
    BindText(s, 8, j.message);
    sqlite3_bind_double(s, 9, j.created_s);
    sqlite3_bind_double(s, 10, j.updated_s);
    sqlite3_bind_double(s, 11, j.not_before_s);
    sqlite3_bind_int(s, 12, j.master_port);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  for (const ReplicaRecord& r : b.replicas) {
    sqlite3_stmt* s = stmts_->put_replica;
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(r.job_id));
    sqlite3_bind_int(s, 2, r.index);
    sqlite3_bind_int(s, 3, r.attempt);
    BindText(s, 4, r.node);
    sqlite3_bind_int(s, 5, r.state);
    sqlite3_bind_int(s, 6, r.exit_code);
    BindText(s, 7, r.message);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  for (const NodeRecord& n : b.nodes) {
    sqlite3_stmt* s = stmts_->put_node;
    BindText(s, 1, n.name);
    BindText(s, 2, n.region);
    BindText(s, 3, n.zone);
    BindText(s, 4, n.gpu_type);
    sqlite3_bind_int(s, 5, n.gpus);
    sqlite3_bind_int64(s, 6, n.cpu_milli);
    sqlite3_bind_int64(s, 7, n.memory_mib);
    BindText(s, 8, n.address);
    BindText(s, 9, n.limits);
    sqlite3_bind_int(s, 10, n.cordoned ? 1 : 0);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  for (const EndpointRecord& e : b.endpoints) {
    sqlite3_stmt* s = stmts_->put_endpoint;
    BindText(s, 1, e.name);
    BindText(s, 2, e.spec);
    sqlite3_bind_int(s, 3, e.generation);
    sqlite3_bind_int(s, 4, e.desired);
    sqlite3_bind_double(s, 5, e.created_s);
    sqlite3_bind_double(s, 6, e.updated_s);
    sqlite3_bind_int(s, 7, e.deleted ? 1 : 0);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  for (const KvRecord& r : b.kv) {
    sqlite3_stmt* s = r.deleted ? stmts_->del_kv : stmts_->put_kv;
    BindText(s, 1, r.kind);
    BindText(s, 2, r.key);
    if (!r.deleted)
      sqlite3_bind_blob(s, 3, r.value.data(), static_cast<int>(r.value.size()), SQLITE_TRANSIENT);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  for (const AuditRecord& a : b.audit) {
    sqlite3_stmt* s = stmts_->put_audit;
    sqlite3_bind_double(s, 1, a.time_s);
    BindText(s, 2, a.identity);
    BindText(s, 3, a.tenant);
    BindText(s, 4, a.method);
    BindText(s, 5, a.object);
    BindText(s, 6, a.code);
    BindText(s, 7, a.message);
    if (absl::Status st = step(s); !st.ok()) return st;
  }
  return absl::OkStatus();
}

void Store::WriterLoop() {
  for (;;) {
    std::vector<Pending> work;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && work.size() < options_.max_batches_per_commit) {
        work.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    absl::Status st;
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      st = SqlError(db_, "begin");
    } else {
      for (const Pending& p : work) {
        st = Apply(p.batch);
        if (!st.ok()) break;
      }
      if (st.ok()) {
        if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
          st = SqlError(db_, "commit");
      }
      if (!st.ok()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (st.ok()) committed_ = work.back().seq;
      ++transactions_;
    }
    done_cv_.notify_all();
    for (Pending& p : work)
      if (p.done) p.done(st);
  }
}

}  // namespace meridian::store
