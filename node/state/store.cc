#include "node/state/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <set>

#include "base/crypto.h"

namespace qiao {
namespace {

constexpr int kSchemaVersion = 11;
constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// Each migration takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE vms(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
CREATE TABLE tasks(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  tenant TEXT NOT NULL,
  target TEXT NOT NULL,
  identity TEXT NOT NULL,
  state TEXT NOT NULL,
  progress INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  error_json TEXT NOT NULL DEFAULT '',
  params_json TEXT NOT NULL DEFAULT '{}',
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX tasks_by_state ON tasks(state);
CREATE INDEX tasks_by_target ON tasks(tenant, target);
CREATE TABLE journal(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  step TEXT NOT NULL,
  phase TEXT NOT NULL,
  at TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX journal_by_task ON journal(task_id, seq);
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  identity TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  tenant TEXT NOT NULL,
  target TEXT NOT NULL,
  status INTEGER NOT NULL,
  request_digest TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE bindings(
  identity TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  tenants_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
)sql",
    // 2: volumes.
    R"sql(
CREATE TABLE volumes(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  backend TEXT NOT NULL,
  object TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  state TEXT NOT NULL,
  attached_vm TEXT NOT NULL DEFAULT '',
  image TEXT NOT NULL DEFAULT '',
  qos_iops INTEGER NOT NULL DEFAULT 0,
  qos_bytes_per_sec INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
)sql",
    // 3: the image catalog.
    R"sql(
CREATE TABLE images(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  state TEXT NOT NULL,
  source TEXT NOT NULL,
  declared_format TEXT NOT NULL DEFAULT '',
  format TEXT NOT NULL DEFAULT '',
  virtual_size INTEGER NOT NULL DEFAULT 0,
  file_size INTEGER NOT NULL DEFAULT 0,
  sha256 TEXT NOT NULL DEFAULT '',
  backend TEXT NOT NULL,
  object TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
)sql",
    // 4: tenant networks and their ports. local_id tags a network in the flows; ofports are
    // unique on the host (ports and DHCP ports alike), addresses and MACs within a network.
    R"sql(
CREATE TABLE networks(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  local_id INTEGER NOT NULL UNIQUE,
  type TEXT NOT NULL,
  segment_id INTEGER NOT NULL,
  subnet TEXT NOT NULL,
  gateway TEXT NOT NULL DEFAULT '',
  dhcp INTEGER NOT NULL,
  dns_json TEXT NOT NULL DEFAULT '[]',
  mtu INTEGER NOT NULL,
  dhcp_ip TEXT NOT NULL DEFAULT '',
  dhcp_mac TEXT NOT NULL DEFAULT '',
  dhcp_ofport INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name),
  UNIQUE (type, segment_id)
);
CREATE TABLE ports(
  uuid TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  network TEXT NOT NULL REFERENCES networks(uuid),
  vm TEXT NOT NULL,
  vm_name TEXT NOT NULL,
  nic INTEGER NOT NULL,
  name TEXT NOT NULL UNIQUE,
  mac TEXT NOT NULL,
  ip TEXT NOT NULL,
  ofport INTEGER NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  UNIQUE (network, ip),
  UNIQUE (network, mac),
  UNIQUE (vm, nic)
);
)sql",
    // 5: security groups; a port names its groups (a JSON array of names of its tenant).
    R"sql(
CREATE TABLE security_groups(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  rules_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
ALTER TABLE ports ADD COLUMN security_groups TEXT NOT NULL DEFAULT '["default"]';
)sql",
    // 6: reads and writes of a volume get I/O limits of their own.
    R"sql(
ALTER TABLE volumes ADD COLUMN qos_read_iops INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN qos_write_iops INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN qos_read_bytes_per_sec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volumes ADD COLUMN qos_write_bytes_per_sec INTEGER NOT NULL DEFAULT 0;
)sql",
    // 7: a volume may live in another pool than the node's first ('' = that one).
    R"sql(
ALTER TABLE volumes ADD COLUMN pool TEXT NOT NULL DEFAULT '';
)sql",
    // 8: certificates and their revocation; a binding names its identity's current
    // certificate ('' = any of the CA's, for bindings made before).
    R"sql(
ALTER TABLE bindings ADD COLUMN serial TEXT NOT NULL DEFAULT '';
CREATE TABLE certificates(
  serial TEXT PRIMARY KEY,
  identity TEXT NOT NULL,
  not_after TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  revoked_at TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX certificates_by_identity ON certificates(identity);
)sql",
    // 9: a tenant's quotas, as an admin set them (keys not in the JSON: the node's defaults).
    R"sql(
CREATE TABLE quotas(
  tenant TEXT PRIMARY KEY,
  limits_json TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
)sql",
    // 10: the audit log's exported segments (their entries are gone from `audit`; the last
    // one's last hash is where the chain in the database goes on) and how far each syslog
    // destination has confirmed delivery.
    R"sql(
CREATE TABLE audit_segments(
  last_seq INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  first_prev_hash TEXT NOT NULL,
  last_hash TEXT NOT NULL,
  file TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  exported_at TEXT NOT NULL
);
CREATE TABLE audit_shipping(
  destination TEXT PRIMARY KEY,
  confirmed_seq INTEGER NOT NULL,
  updated_at TEXT NOT NULL
);
)sql",
    // 11: the host a VM is on (the cluster moves VMs between hosts); '' = this host.
    R"sql(
ALTER TABLE vms ADD COLUMN host TEXT NOT NULL DEFAULT '';
)sql",
};

std::string hexEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

bool hexDecode(const std::string& s, std::string* out) {
  if (s.size() % 2 != 0) return false;
  out->clear();
  auto v = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

// Tenants are stored as a JSON array of DNS labels (no escaping needed, but done anyway).
std::string tenantsToJson(const std::vector<std::string>& tenants) {
  std::string out = "[";
  for (size_t i = 0; i < tenants.size(); ++i) {
    out += i ? ",\"" : "\"";
    for (char c : tenants[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "]";
}

std::vector<std::string> tenantsFromJson(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in = false, esc = false;
  for (char c : text) {
    if (!in) {
      if (c == '"') {
        in = true;
        cur.clear();
      }
      continue;
    }
    if (esc) {
      cur += c;
      esc = false;
    } else if (c == '\\') {
      esc = true;
    } else if (c == '"') {
      out.push_back(cur);
      in = false;
    } else {
      cur += c;
    }
  }
  return out;
}

std::string placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i ? ",?" : "?";
  return out;
}

// " AND tenant IN (...) AND state = ?" with the values to bind, for the list queries.
void appendScope(const std::vector<std::string>& tenants, const std::string& state,
                 std::string* sql, std::vector<std::string>* args) {
  if (!tenants.empty()) {
    *sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
    args->insert(args->end(), tenants.begin(), tenants.end());
  }
  if (!state.empty()) {
    *sql += " AND state = ?";
    args->push_back(state);
  }
}

}  // namespace

const std::string kAuditGenesisHash(64, '0');

std::string auditHash(const AuditEntry& e, const std::string& prev_hash) {
  std::string canonical;
  auto field = [&](const std::string& v) {
    canonical += std::to_string(v.size());
    canonical += ':';
    canonical += v;
    canonical += ';';
  };
  field(prev_hash);
  field(std::to_string(e.seq));
  field(e.at);
  field(e.identity);
  field(e.method);
  field(e.path);
  field(e.tenant);
  field(e.target);
  field(std::to_string(e.status));
  field(e.request_digest);
  return sha256Hex(canonical);
}

// A prepared statement with positional binding; finalized on destruction.
class Store::Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Statement& bind(const std::string& v) {
    sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int64_t v) {
    sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Statement& bindAll(const std::vector<std::string>& values) {
    for (const auto& v : values) bind(v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return rc_ = sqlite3_step(stmt_); }
  int rc() const { return rc_; }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int index_ = 0;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
class Store::Transaction {
 public:
  explicit Transaction(Store& store) : store_(store) {
    status_ = store_.exec("BEGIN IMMEDIATE");
  }
  ~Transaction() {
    if (status_ && !committed_) (void)store_.exec("ROLLBACK");
  }
  const Status& status() const { return status_; }
  Status commit() {
    auto s = store_.exec("COMMIT");
    committed_ = s.has_value();
    return s;
  }

 private:
  Store& store_;
  Status status_;
  bool committed_ = false;
};

Store::Store(sqlite3* db) : db_(db) {}

Store::~Store() { sqlite3_close_v2(db_); }

Error Store::sqlError(const std::string& what) const {
  int code = sqlite3_extended_errcode(db_);
  ErrorCode mapped = ErrorCode::kInternal;
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
    mapped = ErrorCode::kUnavailable;
  } else if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE) {
    mapped = ErrorCode::kConflict;
  }
  return Error{mapped, "store", what + ": " + sqlite3_errmsg(db_), ""};
}

Status Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    Error e = sqlError(sql);
    e.message = std::string(sql).substr(0, 40) + ": " + message;
    return std::unexpected(e);
  }
  return {};
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  // Created 0600: the store holds identities and the audit log.
  mode_t old_mask = umask(077);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  umask(old_mask);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return makeError(ErrorCode::kUnavailable, "store", "cannot open " + path + ": " + message);
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON"}) {
    if (auto s = store->exec(pragma); !s) return std::unexpected(s.error());
  }
  // Migrate under the write lock, so two processes starting at once do not both migrate.
  Transaction tx(*store);
  if (!tx.status()) return std::unexpected(tx.status().error());
  if (auto s = store->exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      !s) {
    return std::unexpected(s.error());
  }
  int version = 0;
  {
    Statement q(db, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (q.ok() && q.step() == SQLITE_ROW) version = std::stoi(q.text(0));
  }
  constexpr int kKnown = static_cast<int>(std::size(kMigrations));
  static_assert(kKnown == kSchemaVersion);
  if (version > kKnown) {
    return makeError(ErrorCode::kInternal, "store",
                     path + " has schema version " + std::to_string(version) +
                         ", newer than this qiaod knows (" + std::to_string(kKnown) +
                         "); run a newer qiaod");
  }
  for (int v = version; v < kKnown; ++v) {
    if (auto s = store->exec(kMigrations[v]); !s) return std::unexpected(s.error());
  }
  {
    Statement up(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)");
    up.bind(std::to_string(kKnown));
    if (up.step() != SQLITE_DONE) return std::unexpected(store->sqlError("schema version"));
  }
  if (auto s = tx.commit(); !s) return std::unexpected(s.error());
  return store;
}

namespace {

constexpr const char* kVmColumns =
    "tenant, name, uuid, spec_json, state, last_error, created_at, updated_at, host";
constexpr const char* kVolumeColumns =
    "tenant, name, uuid, backend, object, size_bytes, state, attached_vm, image, qos_iops, "
    "qos_bytes_per_sec, last_error, created_at, updated_at, qos_read_iops, qos_write_iops, "
    "qos_read_bytes_per_sec, qos_write_bytes_per_sec, pool";
constexpr const char* kImageColumns =
    "tenant, name, uuid, owner, state, source, declared_format, format, virtual_size, "
    "file_size, sha256, backend, object, last_error, created_at, updated_at";
constexpr const char* kNetworkColumns =
    "tenant, name, uuid, local_id, type, segment_id, subnet, gateway, dhcp, dns_json, mtu, "
    "dhcp_ip, dhcp_mac, dhcp_ofport, state, last_error, created_at, updated_at";
constexpr const char* kPortColumns =
    "uuid, tenant, network, vm, vm_name, nic, name, mac, ip, ofport, created_at, security_groups";
constexpr const char* kGroupColumns = "tenant, name, uuid, rules_json, created_at, updated_at";
constexpr const char* kTaskColumns =
    "id, kind, tenant, target, identity, state, progress, message, error_json, params_json, "
    "created_at, updated_at, attempts, seq";

}  // namespace

#define QIAO_VM_FROM(q)                                                                  \
  VmRecord {                                                                             \
    q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6), q.text(7), \
        q.text(8)                                                                       \
  }

template <typename Q>
VolumeRecord volumeFrom(const Q& q) {
  VolumeRecord v;
  v.tenant = q.text(0);
  v.name = q.text(1);
  v.uuid = q.text(2);
  v.backend = q.text(3);
  v.object = q.text(4);
  v.size_bytes = q.integer(5);
  v.state = q.text(6);
  v.attached_vm = q.text(7);
  v.image = q.text(8);
  v.qos.iops = q.integer(9);
  v.qos.bytes_per_sec = q.integer(10);
  v.last_error = q.text(11);
  v.created_at = q.text(12);
  v.updated_at = q.text(13);
  v.qos.read_iops = q.integer(14);
  v.qos.write_iops = q.integer(15);
  v.qos.read_bytes_per_sec = q.integer(16);
  v.qos.write_bytes_per_sec = q.integer(17);
  v.pool = q.text(18);
  return v;
}

template <typename Q>
ImageRecord imageFrom(const Q& q) {
  ImageRecord i;
  i.tenant = q.text(0);
  i.name = q.text(1);
  i.uuid = q.text(2);
  i.owner = q.text(3);
  i.state = q.text(4);
  i.source = q.text(5);
  i.declared_format = q.text(6);
  i.format = q.text(7);
  i.virtual_size = q.integer(8);
  i.file_size = q.integer(9);
  i.sha256 = q.text(10);
  i.backend = q.text(11);
  i.object = q.text(12);
  i.last_error = q.text(13);
  i.created_at = q.text(14);
  i.updated_at = q.text(15);
  return i;
}

template <typename Q>
NetworkRecord networkFrom(const Q& q) {
  NetworkRecord n;
  n.tenant = q.text(0);
  n.name = q.text(1);
  n.uuid = q.text(2);
  n.local_id = q.integer(3);
  n.type = q.text(4);
  n.segment_id = q.integer(5);
  n.subnet = q.text(6);
  n.gateway = q.text(7);
  n.dhcp = q.integer(8) != 0;
  n.dns_json = q.text(9);
  n.mtu = q.integer(10);
  n.dhcp_ip = q.text(11);
  n.dhcp_mac = q.text(12);
  n.dhcp_ofport = q.integer(13);
  n.state = q.text(14);
  n.last_error = q.text(15);
  n.created_at = q.text(16);
  n.updated_at = q.text(17);
  return n;
}

template <typename Q>
PortRecord portFrom(const Q& q) {
  PortRecord p;
  p.uuid = q.text(0);
  p.tenant = q.text(1);
  p.network = q.text(2);
  p.vm = q.text(3);
  p.vm_name = q.text(4);
  p.nic = q.integer(5);
  p.name = q.text(6);
  p.mac = q.text(7);
  p.ip = q.text(8);
  p.ofport = q.integer(9);
  p.created_at = q.text(10);
  p.security_groups = q.text(11);
  return p;
}

template <typename Q>
SecurityGroupRecord groupFrom(const Q& q) {
  return {q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5)};
}

static TaskRecord taskFrom(const std::function<std::string(int)>& text,
                           const std::function<int64_t(int)>& integer) {
  TaskRecord t;
  t.id = text(0);
  t.kind = text(1);
  t.tenant = text(2);
  t.target = text(3);
  t.identity = text(4);
  t.state = text(5);
  t.progress = static_cast<int>(integer(6));
  t.message = text(7);
  t.error_json = text(8);
  t.params_json = text(9);
  t.created_at = text(10);
  t.updated_at = text(11);
  t.attempts = static_cast<int>(integer(12));
  return t;
}

Status Store::createVmWithTask(const VmRecord& vm, const TaskRecord& task) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_, std::string("INSERT INTO vms(") + kVmColumns +
                         ") VALUES (?,?,?,?,?,?," + kNow + "," + kNow + ",?)");
    q.bind(vm.tenant).bind(vm.name).bind(vm.uuid).bind(vm.spec_json).bind(vm.state).bind(
        vm.last_error).bind(vm.host);
    if (q.step() != SQLITE_DONE) {
      Error e = sqlError("insert vm");
      if (e.code == ErrorCode::kConflict) {
        e.message = "vm " + vm.tenant + "/" + vm.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (auto inserted = insertTaskLocked(task); !inserted) return inserted;
  return tx.commit();
}

Status Store::createVolume(const VolumeRecord& volume, const TaskRecord* task) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_, std::string("INSERT INTO volumes(") + kVolumeColumns +
                         ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?," + kNow + "," + kNow +
                         ",?,?,?,?,?)");
    q.bind(volume.tenant).bind(volume.name).bind(volume.uuid).bind(volume.backend)
        .bind(volume.object).bind(volume.size_bytes).bind(volume.state).bind(volume.attached_vm)
        .bind(volume.image).bind(volume.qos.iops).bind(volume.qos.bytes_per_sec)
        .bind(volume.last_error).bind(volume.qos.read_iops).bind(volume.qos.write_iops)
        .bind(volume.qos.read_bytes_per_sec).bind(volume.qos.write_bytes_per_sec)
        .bind(volume.pool);
    if (q.step() != SQLITE_DONE) {
      Error e = sqlError("insert volume");
      if (e.code == ErrorCode::kConflict) {
        e.message = "volume " + volume.tenant + "/" + volume.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = insertTaskLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

// The one record of (tenant, name) that `list` selects; kNotFound naming the `kind` when there
// is none. An empty name finds nothing (it would select every record of the tenant).
template <typename Record, typename List>
Result<Record> theOne(const char* kind, const std::string& tenant, const std::string& name,
                      List list) {
  Result<std::vector<Record>> found = std::vector<Record>{};
  if (!name.empty()) found = list();
  if (!found) return std::unexpected(found.error());
  if (found->empty()) {
    return makeError(ErrorCode::kNotFound, "store",
                     std::string("no ") + kind + " " + tenant + "/" + name);
  }
  return found->front();
}

Result<VolumeRecord> Store::getVolume(const std::string& tenant, const std::string& name) {
  return theOne<VolumeRecord>("volume", tenant, name, [&] { return listVolumes({tenant}, name); });
}

template <typename Record, typename From>
Result<std::vector<Record>> Store::selectByTenant(const char* table, const char* columns,
                                                  From from,
                                                  const std::vector<std::string>& tenants,
                                                  const std::string& name) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + columns + " FROM " + table + " WHERE 1";
  if (!tenants.empty()) sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
  if (!name.empty()) sql += " AND name = ?";
  sql += " ORDER BY tenant, name";
  Statement q(db_, sql);
  q.bindAll(tenants);
  if (!name.empty()) q.bind(name);
  std::vector<Record> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(from(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError(std::string("list ") + table));
  return out;
}

Result<std::vector<VolumeRecord>> Store::listVolumes(const std::vector<std::string>& tenants,
                                                     const std::string& name) {
  return selectByTenant<VolumeRecord>("volumes", kVolumeColumns,
                                      [](const Statement& q) { return volumeFrom(q); }, tenants,
                                      name);
}

Status Store::updateVolume(const VolumeRecord& volume) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE volumes SET size_bytes = ?, state = ?, attached_vm = ?, "
                               "qos_iops = ?, qos_bytes_per_sec = ?, qos_read_iops = ?, "
                               "qos_write_iops = ?, qos_read_bytes_per_sec = ?, "
                               "qos_write_bytes_per_sec = ?, last_error = ?, updated_at = ") +
                       kNow + " WHERE tenant = ? AND name = ?");
  q.bind(volume.size_bytes).bind(volume.state).bind(volume.attached_vm).bind(volume.qos.iops)
      .bind(volume.qos.bytes_per_sec).bind(volume.qos.read_iops).bind(volume.qos.write_iops)
      .bind(volume.qos.read_bytes_per_sec).bind(volume.qos.write_bytes_per_sec)
      .bind(volume.last_error).bind(volume.tenant).bind(volume.name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("update volume"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store",
                     "no volume " + volume.tenant + "/" + volume.name);
  }
  return {};
}

Status Store::transitionVolume(const std::string& tenant, const std::string& name,
                               const std::vector<std::string>& from_states,
                               const std::string& from_vm, const std::string& to_state,
                               const std::string& to_vm) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE volumes SET state = ?, attached_vm = ?, last_error = '', "
                               "updated_at = ") +
                       kNow + " WHERE tenant = ? AND name = ? AND attached_vm = ? AND state IN (" +
                       placeholders(from_states.size()) + ")");
  q.bind(to_state).bind(to_vm).bind(tenant).bind(name).bind(from_vm).bindAll(from_states);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("transition volume"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kConflict, "store",
                     "volume " + tenant + "/" + name + " changed meanwhile");
  }
  return {};
}

Status Store::deleteVolume(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM volumes WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete volume"));
  return {};
}

Status Store::createImage(const ImageRecord& image, const TaskRecord* task) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_, std::string("INSERT INTO images(") + kImageColumns +
                         ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?," + kNow + "," + kNow + ")");
    q.bind(image.tenant).bind(image.name).bind(image.uuid).bind(image.owner).bind(image.state)
        .bind(image.source).bind(image.declared_format).bind(image.format)
        .bind(image.virtual_size).bind(image.file_size).bind(image.sha256).bind(image.backend)
        .bind(image.object).bind(image.last_error);
    if (q.step() != SQLITE_DONE) {
      Error e = sqlError("insert image");
      if (e.code == ErrorCode::kConflict) {
        e.message = "image " + (image.tenant.empty() ? "(public) " : image.tenant + "/") +
                    image.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = insertTaskLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

Result<std::vector<ImageRecord>> Store::listImages(const std::vector<std::string>& tenants,
                                                   const std::string& name) {
  return selectByTenant<ImageRecord>("images", kImageColumns,
                                     [](const Statement& q) { return imageFrom(q); }, tenants,
                                     name);
}

Result<ImageRecord> Store::getImage(const std::string& tenant, const std::string& name) {
  return theOne<ImageRecord>("image", tenant, name, [&] { return listImages({tenant}, name); });
}

Status Store::updateImage(const ImageRecord& image) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE images SET state = ?, format = ?, virtual_size = ?, "
                               "file_size = ?, sha256 = ?, last_error = ?, updated_at = ") +
                       kNow + " WHERE tenant = ? AND name = ?");
  q.bind(image.state).bind(image.format).bind(image.virtual_size).bind(image.file_size)
      .bind(image.sha256).bind(image.last_error).bind(image.tenant).bind(image.name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("update image"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no image " + image.tenant + "/" + image.name);
  }
  return {};
}

Status Store::deleteImage(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM images WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete image"));
  return {};
}

// The lowest number from `first` that no row of `sql` (one integer column) has.
int64_t Store::lowestFreeLocked(const std::string& sql, int64_t first) {
  Statement q(db_, sql);
  std::set<int64_t> used;
  while (q.step() == SQLITE_ROW) used.insert(q.integer(0));
  int64_t n = first;
  while (used.contains(n)) ++n;
  return n;
}

Status Store::createNetwork(NetworkRecord& network, const TaskRecord* task) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  network.local_id = lowestFreeLocked("SELECT local_id FROM networks", 1);
  if (network.dhcp) {
    network.dhcp_ofport = lowestFreeLocked(
        "SELECT ofport FROM ports UNION SELECT dhcp_ofport FROM networks", kFirstOfport);
  }
  {
    Statement q(db_, std::string("INSERT INTO networks(") + kNetworkColumns +
                         ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?," + kNow + "," + kNow + ")");
    q.bind(network.tenant).bind(network.name).bind(network.uuid).bind(network.local_id)
        .bind(network.type).bind(network.segment_id).bind(network.subnet).bind(network.gateway)
        .bind(int64_t{network.dhcp ? 1 : 0}).bind(network.dns_json).bind(network.mtu)
        .bind(network.dhcp_ip).bind(network.dhcp_mac).bind(network.dhcp_ofport)
        .bind(network.state).bind(network.last_error);
    if (q.step() != SQLITE_DONE) {
      Error e = sqlError("insert network");
      if (e.code == ErrorCode::kConflict) {
        e.message = sqlite3_errmsg(db_);
        e.message = e.message.find("segment_id") != std::string::npos
                        ? network.type + " segment " + std::to_string(network.segment_id) +
                              " is taken by another network"
                        : "network " + network.tenant + "/" + network.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = insertTaskLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

Result<std::vector<NetworkRecord>> Store::listNetworks(const std::vector<std::string>& tenants,
                                                       const std::string& name) {
  return selectByTenant<NetworkRecord>("networks", kNetworkColumns,
                                       [](const Statement& q) { return networkFrom(q); }, tenants,
                                       name);
}

Result<NetworkRecord> Store::getNetwork(const std::string& tenant, const std::string& name) {
  return theOne<NetworkRecord>("network", tenant, name,
                               [&] { return listNetworks({tenant}, name); });
}

Status Store::setNetworkState(const std::string& tenant, const std::string& name,
                              const std::string& state, const std::string& last_error) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE networks SET state = ?, last_error = ?, updated_at = ") +
                       kNow + " WHERE tenant = ? AND name = ?");
  q.bind(state).bind(last_error).bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("update network"));
  return {};
}

Status Store::deleteNetwork(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM networks WHERE tenant = ? AND name = ? AND uuid NOT IN "
                   "(SELECT network FROM ports)");
  q.bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete network"));
  return {};
}

Result<std::vector<int64_t>> Store::segmentsInUse(const std::string& type) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT segment_id FROM networks WHERE type = ? ORDER BY segment_id");
  q.bind(type);
  std::vector<int64_t> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(q.integer(0));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list segments"));
  return out;
}

Status Store::createPort(PortRecord& port) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  port.ofport = lowestFreeLocked("SELECT ofport FROM ports UNION SELECT dhcp_ofport FROM networks",
                                 kFirstOfport);
  Statement q(db_, std::string("INSERT INTO ports(") + kPortColumns +
                       ") VALUES (?,?,?,?,?,?,?,?,?,?," + kNow + ",?)");
  q.bind(port.uuid).bind(port.tenant).bind(port.network).bind(port.vm).bind(port.vm_name)
      .bind(port.nic).bind(port.name).bind(port.mac).bind(port.ip).bind(port.ofport)
      .bind(port.security_groups);
  if (q.step() != SQLITE_DONE) {
    Error e = sqlError("insert port");
    if (e.code == ErrorCode::kConflict) {
      std::string what = sqlite3_errmsg(db_);
      e.message = what.find("ports.ip") != std::string::npos
                      ? "address " + port.ip + " is taken on this network"
                  : what.find("ports.mac") != std::string::npos
                      ? "MAC " + port.mac + " is taken on this network"
                      : "port conflict: " + what;
    }
    return std::unexpected(e);
  }
  return tx.commit();
}

Result<std::vector<PortRecord>> Store::listPorts(const std::string& column,
                                                 const std::string& value) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kPortColumns + " FROM ports";
  if (column == "network" || column == "vm") sql += " WHERE " + column + " = ?";
  sql += " ORDER BY vm, nic";
  Statement q(db_, sql);
  if (column == "network" || column == "vm") q.bind(value);
  std::vector<PortRecord> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(portFrom(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list ports"));
  return out;
}

Status Store::createSecurityGroup(const SecurityGroupRecord& group) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT INTO security_groups(") + kGroupColumns +
                       ") VALUES (?,?,?,?," + kNow + "," + kNow + ")");
  q.bind(group.tenant).bind(group.name).bind(group.uuid).bind(group.rules_json);
  if (q.step() != SQLITE_DONE) {
    Error e = sqlError("insert security group");
    if (e.code == ErrorCode::kConflict) {
      e.message = "security group " + group.tenant + "/" + group.name + " already exists";
    }
    return std::unexpected(e);
  }
  return {};
}

Result<std::vector<SecurityGroupRecord>> Store::listSecurityGroups(
    const std::vector<std::string>& tenants, const std::string& name) {
  return selectByTenant<SecurityGroupRecord>(
      "security_groups", kGroupColumns, [](const Statement& q) { return groupFrom(q); }, tenants,
      name);
}

Result<SecurityGroupRecord> Store::getSecurityGroup(const std::string& tenant,
                                                    const std::string& name) {
  return theOne<SecurityGroupRecord>("security group", tenant, name,
                                     [&] { return listSecurityGroups({tenant}, name); });
}

Status Store::setSecurityGroupRules(const std::string& tenant, const std::string& name,
                                    const std::string& rules_json) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE security_groups SET rules_json = ?, updated_at = ") +
                       kNow + " WHERE tenant = ? AND name = ?");
  q.bind(rules_json).bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("update security group"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no security group " + tenant + "/" + name);
  }
  return {};
}

Status Store::deleteSecurityGroup(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  // Not while a port of the tenant names it (names are DNS labels: "\"name\"" is exact).
  Statement q(db_, "DELETE FROM security_groups WHERE tenant = ? AND name = ? AND NOT EXISTS "
                   "(SELECT 1 FROM ports WHERE tenant = ? AND instr(security_groups, ?) > 0)");
  q.bind(tenant).bind(name).bind(tenant).bind("\"" + name + "\"");
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete security group"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kConflict, "store",
                     "security group " + tenant + "/" + name + " is gone or in use");
  }
  return {};
}

Status Store::deletePort(const std::string& uuid) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM ports WHERE uuid = ?");
  q.bind(uuid);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete port"));
  return {};
}

Status Store::deletePortOfNic(const std::string& port_uuid) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  std::string vm;
  int64_t nic = 0;
  {
    Statement q(db_, "SELECT vm, nic FROM ports WHERE uuid = ?");
    q.bind(port_uuid);
    int rc = q.step();
    if (rc == SQLITE_DONE) return tx.commit();  // gone already
    if (rc != SQLITE_ROW) return std::unexpected(sqlError("find a port"));
    vm = q.text(0);
    nic = q.integer(1);
  }
  // Later NICs move up one; through negative numbers, since (vm, nic) stays unique at every
  // row of an UPDATE.
  for (const char* sql : {"DELETE FROM ports WHERE vm = ?1 AND nic = ?2",
                          "UPDATE ports SET nic = -(nic - 1) WHERE vm = ?1 AND nic > ?2",
                          "UPDATE ports SET nic = -nic WHERE vm = ?1 AND nic < 0"}) {
    Statement q(db_, sql);
    q.bind(vm).bind(nic);
    if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete a vm's port"));
  }
  return tx.commit();
}

Result<VmRecord> Store::getVm(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kVmColumns + " FROM vms WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  int rc = q.step();
  if (rc == SQLITE_ROW) return QIAO_VM_FROM(q);
  if (rc == SQLITE_DONE) {
    return makeError(ErrorCode::kNotFound, "store", "no vm " + tenant + "/" + name);
  }
  return std::unexpected(sqlError("get vm"));
}

Result<std::vector<VmRecord>> Store::findVmsByName(const std::string& name,
                                                   const std::vector<std::string>& tenants) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kVmColumns + " FROM vms WHERE name = ?";
  if (!tenants.empty()) sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
  sql += " ORDER BY tenant";
  Statement q(db_, sql);
  q.bind(name).bindAll(tenants);
  std::vector<VmRecord> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(QIAO_VM_FROM(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("find vms"));
  return out;
}

Result<VmPage> Store::listVms(const VmFilter& filter) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kVmColumns + " FROM vms WHERE 1";
  std::vector<std::string> args;
  appendScope(filter.tenants, filter.state, &sql, &args);
  for (const auto& [key, value] : filter.labels) {
    // json_each: the key is compared as a value, never spliced into a JSON path.
    sql += " AND EXISTS (SELECT 1 FROM json_each(vms.spec_json, '$.labels') WHERE "
           "json_each.key = ? AND json_each.value = ?)";
    args.push_back(key);
    args.push_back(value);
  }
  if (!filter.page_token.empty()) {
    std::string decoded;
    auto slash = std::string::npos;
    if (!hexDecode(filter.page_token, &decoded) ||
        (slash = decoded.find('/')) == std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "store", "page_token is not valid");
    }
    sql += " AND (tenant, name) > (?, ?)";
    args.push_back(decoded.substr(0, slash));
    args.push_back(decoded.substr(slash + 1));
  }
  int limit = std::max(1, filter.limit);
  sql += " ORDER BY tenant, name LIMIT " + std::to_string(limit + 1);
  Statement q(db_, sql);
  q.bindAll(args);
  VmPage page;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) page.items.push_back(QIAO_VM_FROM(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list vms"));
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    const auto& last = page.items.back();
    page.next_page_token = hexEncode(last.tenant + "/" + last.name);
  }
  return page;
}

Result<std::vector<VmRecord>> Store::allVms() {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kVmColumns + " FROM vms ORDER BY tenant, name");
  std::vector<VmRecord> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(QIAO_VM_FROM(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("all vms"));
  return out;
}

Status Store::upsertVm(const VmRecord& vm) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT INTO vms(") + kVmColumns + ") VALUES (?,?,?,?,?,?," +
                       kNow + "," + kNow +
                       ",?) ON CONFLICT(tenant, name) DO UPDATE SET uuid = excluded.uuid, "
                       "spec_json = excluded.spec_json, state = excluded.state, "
                       "last_error = excluded.last_error, updated_at = excluded.updated_at, "
                       "host = excluded.host");
  q.bind(vm.tenant).bind(vm.name).bind(vm.uuid).bind(vm.spec_json).bind(vm.state).bind(
      vm.last_error).bind(vm.host);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("upsert vm"));
  return {};
}

Status Store::setVmSpec(const std::string& tenant, const std::string& name,
                        const std::string& spec_json) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE vms SET spec_json = ?, updated_at = ") + kNow +
                       " WHERE tenant = ? AND name = ?");
  q.bind(spec_json).bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("set vm spec"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no vm " + tenant + "/" + name);
  }
  return {};
}

Status Store::setVmState(const std::string& tenant, const std::string& name,
                         const std::string& state, const std::string& last_error) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE vms SET state = ?, last_error = ?, updated_at = ") + kNow +
                       " WHERE tenant = ? AND name = ?");
  q.bind(state).bind(last_error).bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("set vm state"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no vm " + tenant + "/" + name);
  }
  return {};
}

Status Store::deleteVm(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM vms WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete vm"));
  return {};
}

Result<std::map<std::string, int>> Store::countVmsByState() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT state, COUNT(*) FROM vms GROUP BY state");
  std::map<std::string, int> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out[q.text(0)] = static_cast<int>(q.integer(1));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("count vms"));
  return out;
}

Status Store::insertTaskLocked(const TaskRecord& task) {
  Statement q(db_, std::string("INSERT INTO tasks(id, kind, tenant, target, identity, state, "
                               "progress, message, error_json, params_json, attempts, "
                               "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,") +
                       kNow + "," + kNow + ")");
  q.bind(task.id).bind(task.kind).bind(task.tenant).bind(task.target).bind(task.identity)
      .bind(task.state).bind(int64_t{task.progress}).bind(task.message).bind(task.error_json)
      .bind(task.params_json.empty() ? std::string("{}") : task.params_json)
      .bind(int64_t{task.attempts});
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("insert task"));
  return {};
}

Status Store::createTask(const TaskRecord& task) {
  std::lock_guard lock(mutex_);
  return insertTaskLocked(task);
}

Status Store::createTaskIfIdle(const TaskRecord& task) {
  {
    std::lock_guard lock(mutex_);
    Transaction tx(*this);
    if (!tx.status()) return tx.status();
    {
      Statement q(db_, "SELECT id, kind FROM tasks WHERE tenant = ? AND target = ? AND state IN "
                       "('queued', 'running') LIMIT 1");
      q.bind(task.tenant).bind(task.target);
      int rc = q.step();
      if (rc == SQLITE_ROW) {
        return makeError(ErrorCode::kConflict, "store",
                         "vm " + task.tenant + "/" + task.target + " is busy with task " +
                             q.text(0) + " (" + q.text(1) + "); try again when it is done");
      }
      if (rc != SQLITE_DONE) return std::unexpected(sqlError("busy check"));
    }
    if (auto inserted = insertTaskLocked(task); !inserted) return inserted;
    return tx.commit();
  }
}

Status Store::updateTask(const std::string& id, const std::string& state, int progress,
                         const std::string& message, const std::string& error_json) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE tasks SET state = ?, progress = ?, message = ?, "
                               "error_json = ?, updated_at = ") +
                       kNow + " WHERE id = ?");
  q.bind(state).bind(int64_t{progress}).bind(message).bind(error_json).bind(id);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("update task"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no task " + id);
  }
  return {};
}

Status Store::bumpTaskAttempts(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "UPDATE tasks SET attempts = attempts + 1 WHERE id = ?");
  q.bind(id);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("bump attempts"));
  return {};
}

#define QIAO_TASK_FROM(q) \
  taskFrom([&](int c) { return q.text(c); }, [&](int c) { return q.integer(c); })

Result<TaskRecord> Store::getTask(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kTaskColumns + " FROM tasks WHERE id = ?");
  q.bind(id);
  int rc = q.step();
  if (rc == SQLITE_ROW) return QIAO_TASK_FROM(q);
  if (rc == SQLITE_DONE) return makeError(ErrorCode::kNotFound, "store", "no task " + id);
  return std::unexpected(sqlError("get task"));
}

Result<std::vector<TaskRecord>> Store::listTasks(const TaskFilter& filter,
                                                 std::string* next_page_token) {
  std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kTaskColumns + " FROM tasks WHERE 1";
  std::vector<std::string> args;
  appendScope(filter.tenants, filter.state, &sql, &args);
  if (!filter.target.empty()) {
    sql += " AND target = ?";
    args.push_back(filter.target);
  }
  if (!filter.page_token.empty()) {
    if (filter.page_token.find_first_not_of("0123456789") != std::string::npos ||
        filter.page_token.size() > 18) {
      return makeError(ErrorCode::kInvalidArgument, "store", "page_token is not valid");
    }
    sql += " AND seq < " + filter.page_token;
  }
  int limit = std::max(1, filter.limit);
  sql += " ORDER BY seq DESC LIMIT " + std::to_string(limit + 1);
  Statement q(db_, sql);
  q.bindAll(args);
  std::vector<TaskRecord> out;
  std::vector<int64_t> seqs;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back(QIAO_TASK_FROM(q));
    seqs.push_back(q.integer(13));
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list tasks"));
  if (next_page_token) next_page_token->clear();
  if (static_cast<int>(out.size()) > limit) {
    out.pop_back();
    if (next_page_token) *next_page_token = std::to_string(seqs[out.size() - 1]);
  }
  return out;
}

Result<std::vector<TaskRecord>> Store::unfinishedTasks() {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kTaskColumns +
                       " FROM tasks WHERE state IN ('queued', 'running') ORDER BY seq");
  std::vector<TaskRecord> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(QIAO_TASK_FROM(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("unfinished tasks"));
  return out;
}

Status Store::journal(const std::string& task_id, const std::string& step,
                      const std::string& phase, const std::string& detail) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT INTO journal(task_id, step, phase, at, detail) VALUES "
                               "(?,?,?,") + kNow + ",?)");
  q.bind(task_id).bind(step).bind(phase).bind(detail);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("journal"));
  return {};
}

Result<std::vector<JournalEntry>> Store::journalOf(const std::string& task_id) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT seq, task_id, step, phase, at, detail FROM journal WHERE task_id = ? "
                   "ORDER BY seq");
  q.bind(task_id);
  std::vector<JournalEntry> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back({q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("journal of task"));
  return out;
}

Result<Store::JournalReport> Store::verifyJournal() {
  std::lock_guard lock(mutex_);
  JournalReport report;
  std::map<std::string, std::string> task_state;
  {
    Statement q(db_, "SELECT id, state FROM tasks");
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) task_state[q.text(0)] = q.text(1);
    if (rc != SQLITE_DONE) return std::unexpected(sqlError("verify journal"));
  }
  report.tasks_checked = static_cast<int64_t>(task_state.size());
  // Open steps per task: step -> the phase that opened it.
  std::map<std::string, std::map<std::string, std::string>> open;
  auto problem = [&](const std::string& text) {
    if (report.ok) {
      report.ok = false;
      report.first_problem = text;
    }
  };
  Statement q(db_, "SELECT seq, task_id, step, phase FROM journal ORDER BY seq");
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    std::string seq = std::to_string(q.integer(0));
    std::string task = q.text(1), step = q.text(2), phase = q.text(3);
    if (!task_state.contains(task)) {
      problem("entry " + seq + " names task " + task + ", which does not exist");
      continue;
    }
    auto& steps = open[task];
    if (phase == "begin" || phase == "undo-begin") {
      if (steps.contains(step)) {
        problem("entry " + seq + ": task " + task + " began step " + step +
                " again before it ended");
      }
      steps[step] = phase;
    } else if (phase == "done" || phase == "undone" || phase == "failed") {
      auto it = steps.find(step);
      if (it == steps.end()) {
        problem("entry " + seq + ": task " + task + " ended step " + step + " (" + phase +
                ") that it never began");
        continue;
      }
      if ((phase == "done" && it->second != "begin") ||
          (phase == "undone" && it->second != "undo-begin")) {
        problem("entry " + seq + ": task " + task + " step " + step + ": " + phase +
                " does not close " + it->second);
      }
      steps.erase(it);
    } else if (phase != "cancel-requested") {  // a mark, not a step (TaskEngine::cancel)
      problem("entry " + seq + ": unknown phase " + phase);
    }
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("verify journal"));
  for (const auto& [task, steps] : open) {
    const std::string& state = task_state[task];
    bool finished = state != "queued" && state != "running";
    if (steps.empty()) continue;
    if (finished || steps.size() > 1) {
      problem("task " + task + " (" + state + ") left step " + steps.begin()->first + " open");
    }
  }
  return report;
}

Status Store::appendAudit(AuditEntry entry) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  auto head = auditHeadLocked();
  if (!head) return std::unexpected(head.error());
  const int64_t seq = head->seq + 1;
  const std::string prev = head->hash;
  {
    Statement q(db_, std::string("SELECT ") + kNow);
    q.step();
    entry.at = q.text(0);
  }
  entry.seq = seq;
  entry.prev_hash = prev;
  entry.hash = auditHash(entry, prev);
  Statement q(db_, "INSERT INTO audit(seq, at, identity, method, path, tenant, target, status, "
                   "request_digest, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  q.bind(entry.seq).bind(entry.at).bind(entry.identity).bind(entry.method).bind(entry.path)
      .bind(entry.tenant).bind(entry.target).bind(int64_t{entry.status})
      .bind(entry.request_digest).bind(entry.prev_hash).bind(entry.hash);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("append audit"));
  return tx.commit();
}

bool AuditChainWalker::next(const AuditEntry& e) {
  std::string why;
  if (e.seq != expected_seq_) {
    why = "expected entry " + std::to_string(expected_seq_) + " next, found " +
          std::to_string(e.seq) + " (entries missing)";
  } else if (e.prev_hash != prev_) {
    why = "its link to the previous entry does not match (an entry before it was removed or "
          "changed)";
  } else if (auditHash(e, prev_) != e.hash) {
    why = "its content does not match its hash (it was changed)";
  }
  if (!why.empty()) {
    broken_seq_ = e.seq;
    problem_ = "entry " + std::to_string(e.seq) + ": " + why;
    return false;
  }
  prev_ = e.hash;
  expected_seq_ = e.seq + 1;
  ++entries_;
  return true;
}

namespace {
constexpr const char* kAuditColumns =
    "seq, at, identity, method, path, tenant, target, status, request_digest, prev_hash, hash";
}  // namespace

AuditEntry Store::auditFromRow(Statement& q) {
  return {q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6),
          static_cast<int>(q.integer(7)), q.text(8), q.text(9), q.text(10)};
}

Result<Store::AuditReport> Store::verifyAudit() {
  std::lock_guard lock(mutex_);
  auto checkpoint = auditCheckpointLocked();
  if (!checkpoint) return std::unexpected(checkpoint.error());
  AuditReport report;
  report.from_seq = checkpoint->seq;
  AuditChainWalker walker(*checkpoint);
  Statement q(db_, std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY seq");
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    if (!walker.next(auditFromRow(q))) {
      report.ok = false;
      report.entries = walker.entries();
      report.first_broken_seq = walker.brokenSeq();
      report.problem = walker.problem();
      return report;
    }
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("verify audit"));
  report.entries = walker.entries();
  return report;
}

Result<std::vector<AuditEntry>> Store::listAudit(int64_t after_seq, int limit) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kAuditColumns +
                       " FROM audit WHERE seq > ? ORDER BY seq LIMIT ?");
  q.bind(after_seq).bind(int64_t{limit});
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(auditFromRow(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list audit"));
  return out;
}

Result<AuditLink> Store::auditCheckpointLocked() {
  Statement q(db_, "SELECT last_seq, last_hash FROM audit_segments ORDER BY last_seq DESC LIMIT 1");
  int rc = q.step();
  if (rc == SQLITE_ROW) return AuditLink{q.integer(0), q.text(1)};
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("audit checkpoint"));
  return AuditLink{0, kAuditGenesisHash};
}

Result<AuditLink> Store::auditHeadLocked() {
  Statement q(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
  int rc = q.step();
  if (rc == SQLITE_ROW) return AuditLink{q.integer(0), q.text(1)};
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("audit head"));
  return auditCheckpointLocked();
}

Result<AuditLink> Store::auditCheckpoint() {
  std::lock_guard lock(mutex_);
  return auditCheckpointLocked();
}

Result<AuditLink> Store::auditHead() {
  std::lock_guard lock(mutex_);
  return auditHeadLocked();
}

Result<int64_t> Store::countAudit() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT count(*) FROM audit");
  if (q.step() != SQLITE_ROW) return std::unexpected(sqlError("count audit"));
  return q.integer(0);
}

Status Store::closeAuditSegment(const AuditSegment& segment) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  if (!tx.status()) return tx.status();
  auto checkpoint = auditCheckpointLocked();
  if (!checkpoint) return std::unexpected(checkpoint.error());
  if (segment.first_seq != checkpoint->seq + 1 || segment.first_prev_hash != checkpoint->hash ||
      segment.last_seq < segment.first_seq) {
    return makeError(ErrorCode::kConflict, "store",
                     "audit segment " + std::to_string(segment.first_seq) + "-" +
                         std::to_string(segment.last_seq) +
                         " does not follow the last exported entry " +
                         std::to_string(checkpoint->seq));
  }
  {
    Statement q(db_, "SELECT hash FROM audit WHERE seq = ?");
    q.bind(segment.last_seq);
    if (q.step() != SQLITE_ROW || q.text(0) != segment.last_hash) {
      return makeError(ErrorCode::kConflict, "store",
                       "audit entry " + std::to_string(segment.last_seq) +
                           " is not the segment's last entry");
    }
  }
  Statement insert(db_, std::string("INSERT INTO audit_segments(last_seq, first_seq, "
                                    "first_prev_hash, last_hash, file, sha256, exported_at) "
                                    "VALUES (?,?,?,?,?,?,") + kNow + ")");
  insert.bind(segment.last_seq).bind(segment.first_seq).bind(segment.first_prev_hash)
      .bind(segment.last_hash).bind(segment.file).bind(segment.sha256);
  if (insert.step() != SQLITE_DONE) return std::unexpected(sqlError("record audit segment"));
  Statement remove(db_, "DELETE FROM audit WHERE seq <= ?");
  remove.bind(segment.last_seq);
  if (remove.step() != SQLITE_DONE) return std::unexpected(sqlError("remove audit segment"));
  return tx.commit();
}

Result<std::vector<AuditSegment>> Store::listAuditSegments() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT first_seq, last_seq, first_prev_hash, last_hash, file, sha256, "
                   "exported_at FROM audit_segments ORDER BY last_seq");
  std::vector<AuditSegment> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back({q.integer(0), q.integer(1), q.text(2), q.text(3), q.text(4), q.text(5),
                   q.text(6)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list audit segments"));
  return out;
}

Result<int64_t> Store::auditConfirmed(const std::string& destination) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT confirmed_seq FROM audit_shipping WHERE destination = ?");
  q.bind(destination);
  int rc = q.step();
  if (rc == SQLITE_ROW) return q.integer(0);
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("audit shipping"));
  return int64_t{0};
}

Status Store::setAuditConfirmed(const std::string& destination, int64_t seq) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT INTO audit_shipping(destination, confirmed_seq, "
                               "updated_at) VALUES (?,?,") + kNow + ") ON CONFLICT(destination) "
                               "DO UPDATE SET confirmed_seq = excluded.confirmed_seq, "
                               "updated_at = excluded.updated_at");
  q.bind(destination).bind(seq);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("audit shipping"));
  return {};
}

constexpr const char* kBindingColumns = "identity, role, tenants_json, created_at, serial";

Binding Store::bindingFromRow(Statement& q) {
  return Binding{q.text(0), q.text(1), tenantsFromJson(q.text(2)), q.text(3), q.text(4)};
}

Status Store::putBinding(const Binding& binding) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT OR REPLACE INTO bindings(") + kBindingColumns +
                       ") VALUES (?,?,?," + kNow + ",?)");
  q.bind(binding.identity).bind(binding.role).bind(tenantsToJson(binding.tenants))
      .bind(binding.serial);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("put binding"));
  return {};
}

Result<Binding> Store::getBinding(const std::string& identity) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kBindingColumns + " FROM bindings WHERE identity = ?");
  q.bind(identity);
  int rc = q.step();
  if (rc == SQLITE_ROW) return bindingFromRow(q);
  if (rc == SQLITE_DONE) {
    return makeError(ErrorCode::kNotFound, "store", "no binding for " + identity);
  }
  return std::unexpected(sqlError("get binding"));
}

Result<std::vector<Binding>> Store::listBindings() {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kBindingColumns + " FROM bindings ORDER BY identity");
  std::vector<Binding> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(bindingFromRow(q));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list bindings"));
  return out;
}

Status Store::deleteBinding(const std::string& identity) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "DELETE FROM bindings WHERE identity = ?");
  q.bind(identity);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("delete binding"));
  if (sqlite3_changes(db_) == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no binding for " + identity);
  }
  return {};
}

Result<std::string> Store::getQuota(const std::string& tenant) {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT limits_json FROM quotas WHERE tenant = ?");
  q.bind(tenant);
  int rc = q.step();
  if (rc == SQLITE_ROW) return q.text(0);
  if (rc == SQLITE_DONE) return makeError(ErrorCode::kNotFound, "store", "no quota for " + tenant);
  return std::unexpected(sqlError("get quota"));
}

Status Store::putQuota(const std::string& tenant, const std::string& limits_json) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT OR REPLACE INTO quotas(tenant, limits_json, updated_at) "
                               "VALUES (?,?,") + kNow + ")");
  q.bind(tenant).bind(limits_json);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("put quota"));
  return {};
}

Result<std::vector<std::string>> Store::quotaTenants() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT tenant FROM quotas ORDER BY tenant");
  std::vector<std::string> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(q.text(0));
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list quotas"));
  return out;
}

constexpr const char* kCertificateColumns =
    "serial, identity, not_after, issued_at, revoked_at, reason";

Status Store::recordCertificate(const CertificateRecord& cert) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("INSERT INTO certificates(") + kCertificateColumns +
                       ") VALUES (?,?,?," + kNow + ",'','')");
  q.bind(cert.serial).bind(cert.identity).bind(cert.not_after);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("record certificate"));
  return {};
}

Result<std::vector<CertificateRecord>> Store::listCertificates() {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("SELECT ") + kCertificateColumns +
                       " FROM certificates ORDER BY identity, issued_at");
  std::vector<CertificateRecord> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sqlError("list certificates"));
  return out;
}

Result<int> Store::revokeCertificates(const std::string& serial, const std::string& identity,
                                      const std::string& reason) {
  std::lock_guard lock(mutex_);
  Statement q(db_, std::string("UPDATE certificates SET revoked_at = ") + kNow +
                       ", reason = ? WHERE revoked_at = '' AND (serial = ? OR identity = ?)");
  // An empty serial or identity matches nothing: '' is no certificate's.
  q.bind(reason).bind(serial.empty() ? std::string("\x01") : serial)
      .bind(identity.empty() ? std::string("\x01") : identity);
  if (q.step() != SQLITE_DONE) return std::unexpected(sqlError("revoke certificates"));
  return sqlite3_changes(db_);
}

}  // namespace qiao
