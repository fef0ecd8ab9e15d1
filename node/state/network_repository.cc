#include "node/state/network_repository.h"

#include <set>

#include "node/state/database.h"
#include "node/state/queries.h"
#include "node/state/table.h"
#include "node/state/task_repository.h"

namespace qiao {
namespace {

const Table<NetworkRecord> kNetworks{"networks",
                                     {
                                         field("tenant", &NetworkRecord::tenant),
                                         field("name", &NetworkRecord::name),
                                         field("uuid", &NetworkRecord::uuid),
                                         field("local_id", &NetworkRecord::local_id),
                                         field("type", &NetworkRecord::type),
                                         field("segment_id", &NetworkRecord::segment_id),
                                         field("subnet", &NetworkRecord::subnet),
                                         field("gateway", &NetworkRecord::gateway),
                                         field("dhcp", &NetworkRecord::dhcp),
                                         field("dns_json", &NetworkRecord::dns_json),
                                         field("mtu", &NetworkRecord::mtu),
                                         field("dhcp_ip", &NetworkRecord::dhcp_ip),
                                         field("dhcp_mac", &NetworkRecord::dhcp_mac),
                                         field("dhcp_ofport", &NetworkRecord::dhcp_ofport),
                                         field("state", &NetworkRecord::state),
                                         field("last_error", &NetworkRecord::last_error),
                                         createdAt(&NetworkRecord::created_at),
                                         updatedAt(&NetworkRecord::updated_at),
                                     }};

const Table<PortRecord> kPorts{"ports",
                               {
                                   field("uuid", &PortRecord::uuid),
                                   field("tenant", &PortRecord::tenant),
                                   field("network", &PortRecord::network),
                                   field("vm", &PortRecord::vm),
                                   field("vm_name", &PortRecord::vm_name),
                                   field("nic", &PortRecord::nic),
                                   field("name", &PortRecord::name),
                                   field("mac", &PortRecord::mac),
                                   field("ip", &PortRecord::ip),
                                   field("ofport", &PortRecord::ofport),
                                   createdAt(&PortRecord::created_at),
                                   field("security_groups", &PortRecord::security_groups),
                               }};

// The OpenFlow ports in use on the host: VM ports and DHCP ports alike.
constexpr const char* kOfportsInUse =
    "SELECT ofport FROM ports UNION SELECT dhcp_ofport FROM networks";

// The lowest number from `first` that no row of `sql` (one integer column) has. The caller
// holds the database's mutex.
int64_t lowestFreeLocked(Database& db, const std::string& sql, int64_t first) {
  Statement q(db, sql);
  std::set<int64_t> used;
  while (q.step() == Statement::Step::kRow) used.insert(q.integer(0));
  int64_t n = first;
  while (used.contains(n)) ++n;
  return n;
}

}  // namespace

Status NetworkRepository::create(NetworkRecord& network, const TaskRecord* task) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  network.local_id = lowestFreeLocked(db_, "SELECT local_id FROM networks", 1);
  if (network.dhcp) network.dhcp_ofport = lowestFreeLocked(db_, kOfportsInUse, kFirstOfport);
  {
    Statement q(db_, kNetworks.insert());
    kNetworks.bindInsert(q, network);
    if (q.step() != Statement::Step::kDone) {
      Error e = db_.error("insert network");
      if (e.code == ErrorCode::kConflict) {
        e.message = db_.errorMessage().find("segment_id") != std::string::npos
                        ? network.type + " segment " + std::to_string(network.segment_id) +
                              " is taken by another network"
                        : "network " + network.tenant + "/" + network.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = tasks_.insertLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

Result<std::vector<NetworkRecord>> NetworkRepository::list(const std::vector<std::string>& tenants,
                                                           const std::string& name) {
  return selectByTenant(db_, kNetworks, tenants, name);
}

Result<NetworkRecord> NetworkRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<NetworkRecord>("network", tenant, name, [&] { return list({tenant}, name); });
}

Status NetworkRepository::setState(const std::string& tenant, const std::string& name,
                                   NetworkState state, const std::string& last_error) {
  static const auto kSet = kNetworks.set({"state", "last_error"});
  NetworkRecord values;
  values.state = state;
  values.last_error = last_error;
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE networks SET " + kSet.sql() + " WHERE tenant = ? AND name = ?");
  kSet.bind(q, values);
  q.bind(tenant).bind(name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("update network"));
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no network " + tenant + "/" + name);
  }
  return {};
}

Status NetworkRepository::remove(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_,
              "DELETE FROM networks WHERE tenant = ? AND name = ? AND uuid NOT IN "
              "(SELECT network FROM ports)");
  q.bind(tenant).bind(name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("delete network"));
  return {};
}

Result<std::vector<int64_t>> NetworkRepository::segmentsInUse(const std::string& type) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT segment_id FROM networks WHERE type = ? ORDER BY segment_id");
  q.bind(type);
  return readAll<int64_t>(
      db_, q, [](const Statement& row) { return row.integer(0); }, "list segments");
}

Status PortRepository::create(PortRecord& port) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  {
    // Checked here rather than left to the foreign key, whose failure SQLite does not name.
    Statement q(db_, "SELECT 1 FROM networks WHERE uuid = ?");
    q.bind(port.network);
    auto step = q.step();
    if (step == Statement::Step::kDone) {
      return makeError(ErrorCode::kNotFound, "store", "no network " + port.network);
    }
    if (step != Statement::Step::kRow) return std::unexpected(db_.error("find the network"));
  }
  port.ofport = lowestFreeLocked(db_, kOfportsInUse, kFirstOfport);
  Statement q(db_, kPorts.insert());
  kPorts.bindInsert(q, port);
  if (q.step() != Statement::Step::kDone) {
    Error e = db_.error("insert port");
    if (e.code == ErrorCode::kConflict) {
      std::string what = db_.errorMessage();
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

Result<std::vector<PortRecord>> PortRepository::select(const char* column,
                                                       const std::string& value) {
  std::lock_guard lock(db_.mutex());
  std::string sql = kPorts.select();
  if (column != nullptr) sql += std::string(" WHERE ") + column + " = ?";
  sql += " ORDER BY vm, nic";
  Statement q(db_, sql);
  if (column != nullptr) q.bind(value);
  return readAll<PortRecord>(
      db_, q, [](const Statement& row) { return kPorts.read(row); }, "list ports");
}

Result<std::vector<PortRecord>> PortRepository::all() { return select(nullptr, {}); }

Result<std::vector<PortRecord>> PortRepository::ofNetwork(const std::string& network_uuid) {
  return select("network", network_uuid);
}

Result<std::vector<PortRecord>> PortRepository::ofVm(const std::string& vm_uuid) {
  return select("vm", vm_uuid);
}

Status PortRepository::remove(const std::string& uuid) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "DELETE FROM ports WHERE uuid = ?");
  q.bind(uuid);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("delete port"));
  return {};
}

Status PortRepository::removeOfNic(const std::string& port_uuid) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  std::string vm;
  int64_t nic = 0;
  {
    Statement q(db_, "SELECT vm, nic FROM ports WHERE uuid = ?");
    q.bind(port_uuid);
    auto step = q.step();
    if (step == Statement::Step::kDone) return tx.commit();  // gone already
    if (step != Statement::Step::kRow) return std::unexpected(db_.error("find a port"));
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
    if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("delete a vm's port"));
  }
  return tx.commit();
}

}  // namespace qiao
