#include "node/state/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>

#include "node/state/database.h"

namespace qiao {
namespace {

constexpr int kSchemaVersion = 13;

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
    // 12: the kinds of record this store has put into the cluster's tables once (the first time
    // it was a member's): a later start never puts a stale local copy back.
    R"sql(
CREATE TABLE published(
  kind TEXT PRIMARY KEY,
  at TEXT NOT NULL
);
)sql",
    // 13: networks and ports are records of the cluster on a member. What means something only
    // on this host moves out of them: the network's tag in this host's flows and its DHCP
    // server's OpenFlow port go to network_here (a row: this host carries the network); a
    // port names the host of its VM ('' = this host), its OpenFlow number unique there.
    R"sql(
CREATE TABLE network_here(
  network TEXT PRIMARY KEY,
  local_id INTEGER NOT NULL UNIQUE,
  dhcp_ofport INTEGER NOT NULL DEFAULT 0
);
INSERT INTO network_here(network, local_id, dhcp_ofport)
  SELECT uuid, local_id, dhcp_ofport FROM networks;
CREATE TABLE ports_13(
  uuid TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  network TEXT NOT NULL,
  vm TEXT NOT NULL,
  vm_name TEXT NOT NULL,
  nic INTEGER NOT NULL,
  name TEXT NOT NULL UNIQUE,
  mac TEXT NOT NULL,
  ip TEXT NOT NULL,
  ofport INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  security_groups TEXT NOT NULL DEFAULT '["default"]',
  host TEXT NOT NULL DEFAULT '',
  UNIQUE (network, ip),
  UNIQUE (network, mac),
  UNIQUE (vm, nic),
  UNIQUE (host, ofport)
);
INSERT INTO ports_13(uuid, tenant, network, vm, vm_name, nic, name, mac, ip, ofport, created_at,
                     security_groups)
  SELECT uuid, tenant, network, vm, vm_name, nic, name, mac, ip, ofport, created_at,
         security_groups FROM ports;
DROP TABLE ports;
ALTER TABLE ports_13 RENAME TO ports;
CREATE TABLE networks_13(
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  uuid TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  segment_id INTEGER NOT NULL,
  subnet TEXT NOT NULL,
  gateway TEXT NOT NULL DEFAULT '',
  dhcp INTEGER NOT NULL,
  dns_json TEXT NOT NULL DEFAULT '[]',
  mtu INTEGER NOT NULL,
  dhcp_ip TEXT NOT NULL DEFAULT '',
  dhcp_mac TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, name),
  UNIQUE (type, segment_id)
);
INSERT INTO networks_13(tenant, name, uuid, type, segment_id, subnet, gateway, dhcp, dns_json,
                        mtu, dhcp_ip, dhcp_mac, state, last_error, created_at, updated_at)
  SELECT tenant, name, uuid, type, segment_id, subnet, gateway, dhcp, dns_json, mtu, dhcp_ip,
         dhcp_mac, state, last_error, created_at, updated_at FROM networks;
DROP TABLE networks;
ALTER TABLE networks_13 RENAME TO networks;
)sql",
};

}  // namespace

Store::Store(std::unique_ptr<Database> db)
    : db_(std::move(db)),
      tasks_(*db_),
      vms_(*db_, tasks_),
      volumes_(*db_, tasks_),
      images_(*db_, tasks_),
      networks_(*db_, tasks_),
      ports_(*db_),
      groups_(*db_),
      audit_(*db_),
      bindings_(*db_),
      certificates_(*db_),
      quotas_(*db_) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  // Created 0600: the store holds identities and the audit log.
  mode_t old_mask = umask(077);
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  umask(old_mask);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return makeError(ErrorCode::kUnavailable, "store", "cannot open " + path + ": " + message);
  }
  std::unique_ptr<Store> store(new Store(std::make_unique<Database>(db)));
  sqlite3_busy_timeout(db, 5000);
  if (auto migrated = store->migrate(path); !migrated) return std::unexpected(migrated.error());
  return store;
}

Status Store::migrate(const std::string& path) {
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (auto s = db_->exec(pragma); !s) return s;
  }
  // Migrate under the write lock, so two processes starting at once do not both migrate.
  Transaction tx(*db_);
  if (!tx.status()) return tx.status();
  if (auto s =
          db_->exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      !s) {
    return s;
  }
  int version = 0;
  {
    Statement q(*db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (q.step() == Statement::Step::kRow) version = std::stoi(q.text(0));
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
    if (auto s = db_->exec(kMigrations[v]); !s) return s;
  }
  {
    Statement up(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)");
    up.bind(std::to_string(kKnown));
    if (up.step() != Statement::Step::kDone) return std::unexpected(db_->error("schema version"));
  }
  return tx.commit();
}

}  // namespace qiao
