#include "node/state/network_repository.h"

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/record_table.h"
#include "node/state/database.h"
#include "node/state/mirror.h"
#include "node/state/queries.h"
#include "node/state/table.h"
#include "node/state/task_repository.h"

namespace qiao {
namespace {

const Logger kLog("store");

// The cluster's columns of a network; this host's numbers for it are network_here's.
const Table<NetworkRecord> kNetworks{"networks",
                                     {
                                         field("tenant", &NetworkRecord::tenant),
                                         field("name", &NetworkRecord::name),
                                         field("uuid", &NetworkRecord::uuid),
                                         field("type", &NetworkRecord::type),
                                         field("segment_id", &NetworkRecord::segment_id),
                                         field("subnet", &NetworkRecord::subnet),
                                         field("gateway", &NetworkRecord::gateway),
                                         field("dhcp", &NetworkRecord::dhcp),
                                         field("dns_json", &NetworkRecord::dns_json),
                                         field("mtu", &NetworkRecord::mtu),
                                         field("dhcp_ip", &NetworkRecord::dhcp_ip),
                                         field("dhcp_mac", &NetworkRecord::dhcp_mac),
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
                                   field("host", &PortRecord::host),
                               }};

// The host's OpenFlow numbers are given out one at a time (ports and DHCP servers alike):
// chosen from what the store holds, then written.
std::mutex& hostNumbersMutex() {
  static std::mutex m;
  return m;
}

// The lowest number from `first` that `used` lacks.
int64_t lowestFree(const std::set<int64_t>& used, int64_t first) {
  while (used.contains(first)) ++first;
  return first;
}

// The lowest OpenFlow number from kFirstOfport that `host` (its name; "" alone: every port is
// this host's) does not use for a VM's port or a DHCP server. db locked.
int64_t freeOfportLocked(Database& db, const std::string& host) {
  Statement q(db,
              "SELECT ofport FROM ports WHERE ?1 = '' OR host IN (?1, '') "
              "UNION SELECT dhcp_ofport FROM network_here");
  q.bind(host);
  std::set<int64_t> used;
  while (q.step() == Statement::Step::kRow) used.insert(q.integer(0));
  return lowestFree(used, kFirstOfport);
}

std::string segmentKey(const NetworkRecord& n) {
  return n.type + "/" + std::to_string(n.segment_id);
}

// A create writes its claim first, then its network: a claim whose network is not there is one
// a create cut short left behind only once it is this old (before, the create may still be
// writing the network, on another member).
constexpr std::chrono::minutes kClaimGrace{5};

int64_t nowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             systemClock().wallNow().time_since_epoch())
      .count();
}

std::string claimOf(const NetworkRecord& n) {
  return nlohmann::json{{"network", n.uuid}, {"key", n.tenant + "/" + n.name}, {"at", nowMillis()}}
      .dump();
}

// Whether a claim (its JSON) may be a create's still in the making. One without a time is from
// before claims had one: old.
bool claimInTheMaking(const nlohmann::json& held) {
  if (!held.is_object() || !held.contains("at") || !held["at"].is_number_integer()) return false;
  const int64_t at = held["at"].get<int64_t>();
  return nowMillis() - at <
         std::chrono::duration_cast<std::chrono::milliseconds>(kClaimGrace).count();
}

Error segmentTaken(const NetworkRecord& n) {
  return Error{ErrorCode::kConflict, "store",
               n.type + " segment " + std::to_string(n.segment_id) + " is taken by another network",
               ""};
}

// A store error of a network's write in the words of the caller.
Error networkError(Error e, const NetworkRecord& n) {
  if (e.code == ErrorCode::kConflict && e.message.find("segment_id") != std::string::npos) {
    return segmentTaken(n);
  }
  return e;
}

}  // namespace

NetworkRepository::NetworkRepository(Database& db, TaskRepository& tasks)
    : db_(db),
      tasks_(tasks),
      mirror_(
          std::make_unique<Mirror<NetworkRecord>>(db, kNetworks, tenantNameKey<NetworkRecord>())) {}

NetworkRepository::~NetworkRepository() = default;

void NetworkRepository::share(std::unique_ptr<RecordTable> networks,
                              std::unique_ptr<RecordTable> segments, const std::string& host) {
  segments_ = std::move(segments);
  host_ = host;
  // A network this host made alone goes in only with its segment.
  mirror_->share(std::move(networks), [this](const NetworkRecord& n) {
    NetworkRecord claimed = n;
    if (auto claim = claimSegment(claimed, {0, -1}); !claim) {
      kLog.warn("a network of this host stays out of the cluster",
                {{"network", n.tenant + "/" + n.name}, {"error", claim.error().describe()}});
      return false;
    }
    return true;
  });
}

bool NetworkRepository::shared() const { return mirror_->shared(); }

Replicated& NetworkRepository::replica() { return *mirror_; }

Status NetworkRepository::claimSegment(NetworkRecord& network, std::pair<int64_t, int64_t> range) {
  if (!segments_) return {};
  std::vector<int64_t> candidates;
  if (network.segment_id != 0) {
    candidates.push_back(network.segment_id);
  } else {
    // A claim the cache does not know yet is skipped for the next.
    auto free = freeSegments(network.type, range, 64);
    if (!free) return std::unexpected(free.error());
    candidates = std::move(*free);
  }
  for (int64_t segment : candidates) {
    NetworkRecord trial = network;
    trial.segment_id = segment;
    auto claimed = segments_->update(
        segmentKey(trial),
        [&](const std::optional<std::string>& text) -> Result<std::optional<std::string>> {
          if (text) {
            auto held = nlohmann::json::parse(*text, nullptr, false);
            const std::string holder = held.is_object() ? held.value("network", "") : "";
            if (holder != trial.uuid) {
              // Held by a network that still is, or may be in the making: taken. A claim its
              // network left behind (a create cut short) is taken over.
              if (claimInTheMaking(held)) return std::unexpected(segmentTaken(trial));
              auto key = held.is_object() ? held.value("key", "") : "";
              auto probe = tenantNameKey<NetworkRecord>().probe(key);
              if (probe) {
                auto live = mirror_->sharedGet(*probe);
                if (!live) return std::unexpected(live.error());
                if (*live && (*live)->uuid == holder) return std::unexpected(segmentTaken(trial));
              }
            }
          }
          return std::optional<std::string>(claimOf(trial));
        });
    if (claimed) {
      network.segment_id = segment;
      return {};
    }
    if (claimed.error().code != ErrorCode::kConflict || network.segment_id != 0) {
      return std::unexpected(claimed.error());
    }
  }
  if (network.segment_id != 0) return std::unexpected(segmentTaken(network));
  return makeError(ErrorCode::kConflict, "network", "no free " + network.type + " segment");
}

void NetworkRepository::releaseSegment(const NetworkRecord& network) {
  if (!segments_) return;
  auto released = segments_->update(
      segmentKey(network),
      [&](const std::optional<std::string>& text) -> Result<std::optional<std::string>> {
        if (!text) return std::optional<std::string>{};
        auto held = nlohmann::json::parse(*text, nullptr, false);
        if (held.is_object() && held.value("network", "") != network.uuid) return text;
        return std::optional<std::string>{};
      });
  if (!released) {
    // Left behind: the next network that wants the segment takes the claim over.
    kLog.warn("a segment claim stays behind",
              {{"segment", segmentKey(network)}, {"error", released.error().describe()}});
  }
}

Status NetworkRepository::create(NetworkRecord& network, const TaskRecord* task,
                                 std::pair<int64_t, int64_t> free_segments) {
  if (segments_) {
    if (auto claimed = claimSegment(network, free_segments); !claimed) return claimed;
  } else if (network.segment_id == 0) {
    // Alone, the store is the allocator: the lowest free one, checked again by the insert.
    auto free = freeSegments(network.type, free_segments, 1);
    if (!free) return std::unexpected(free.error());
    if (free->empty()) {
      return makeError(ErrorCode::kConflict, "network", "no free " + network.type + " segment");
    }
    network.segment_id = free->front();
  }
  std::lock_guard numbers(hostNumbersMutex());
  auto made = mirror_->update(
      network,
      [&](std::optional<NetworkRecord>& current) -> Status {
        if (current) {
          return makeError(ErrorCode::kConflict, "store",
                           "network " + network.tenant + "/" + network.name + " already exists");
        }
        current = network;
        return {};
      },
      [&]() -> Status {
        // Carried here from the start, in the same local transaction.
        if (auto carried = carryLocked(network); !carried) return carried;
        if (task != nullptr) return tasks_.insertLocked(*task);
        return {};
      });
  if (!made) {
    if (segments_) releaseSegment(network);
    return std::unexpected(networkError(made.error(), network));
  }
  return {};
}

Status NetworkRepository::carry(NetworkRecord& network) {
  std::lock_guard numbers(hostNumbersMutex());
  std::lock_guard lock(db_.mutex());
  return carryLocked(network);
}

Status NetworkRepository::carryLocked(NetworkRecord& network) {
  {
    Statement q(db_, "SELECT local_id, dhcp_ofport FROM network_here WHERE network = ?");
    q.bind(network.uuid);
    auto step = q.step();
    if (step == Statement::Step::kRow) {
      network.local_id = q.integer(0);
      network.dhcp_ofport = q.integer(1);
      return {};
    }
    if (step != Statement::Step::kDone) return std::unexpected(db_.error("find a carried network"));
  }
  {
    Statement q(db_, "SELECT local_id FROM network_here");
    std::set<int64_t> used;
    while (q.step() == Statement::Step::kRow) used.insert(q.integer(0));
    network.local_id = lowestFree(used, 1);
  }
  network.dhcp_ofport = network.dhcp ? freeOfportLocked(db_, host_) : 0;
  Statement q(db_, "INSERT INTO network_here(network, local_id, dhcp_ofport) VALUES (?, ?, ?)");
  q.bind(network.uuid).bind(network.local_id).bind(network.dhcp_ofport);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("carry network"));
  return {};
}

Status NetworkRepository::drop(const std::string& network_uuid) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "DELETE FROM network_here WHERE network = ?");
  q.bind(network_uuid);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("drop network"));
  return {};
}

Result<std::vector<std::string>> NetworkRepository::carried() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT network FROM network_here ORDER BY network");
  return readAll<std::string>(
      db_, q, [](const Statement& row) { return row.text(0); }, "list carried networks");
}

Result<std::vector<NetworkRecord>> NetworkRepository::select(const std::string& where,
                                                             const std::vector<std::string>& args) {
  // The cluster's columns, then this host's numbers (0 when it does not carry the network).
  static const std::string kSelect = [] {
    std::string sql = kNetworks.select();
    sql.insert(sql.rfind(" FROM "),
               ", coalesce(network_here.local_id, 0), coalesce(network_here.dhcp_ofport, 0)");
    return sql + " LEFT JOIN network_here ON network_here.network = networks.uuid";
  }();
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kSelect + where + " ORDER BY tenant, name");
  q.bindAll(args);
  const int n = static_cast<int>(kNetworks.size());
  return readAll<NetworkRecord>(
      db_, q,
      [n](const Statement& row) {
        NetworkRecord r = kNetworks.read(row);
        r.local_id = row.integer(n);
        r.dhcp_ofport = row.integer(n + 1);
        return r;
      },
      "list networks");
}

Result<std::vector<NetworkRecord>> NetworkRepository::list(const std::vector<std::string>& tenants,
                                                           const std::string& name) {
  std::string where = " WHERE 1";
  std::vector<std::string> args;
  appendScope(tenants, "", &where, &args);
  if (!name.empty()) {
    where += " AND name = ?";
    args.push_back(name);
  }
  return select(where, args);
}

Result<NetworkRecord> NetworkRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<NetworkRecord>("network", tenant, name, [&] { return list({tenant}, name); });
}

Status NetworkRepository::setState(const std::string& tenant, const std::string& name,
                                   NetworkState state, const std::string& last_error) {
  NetworkRecord probe;
  probe.tenant = tenant;
  probe.name = name;
  auto set = mirror_->update(probe, [&](std::optional<NetworkRecord>& n) -> Status {
    if (!n) return makeError(ErrorCode::kNotFound, "store", "no network " + tenant + "/" + name);
    n->state = state;
    n->last_error = last_error;
    return {};
  });
  if (!set) return std::unexpected(set.error());
  return {};
}

Status NetworkRepository::remove(const std::string& tenant, const std::string& name) {
  NetworkRecord probe;
  probe.tenant = tenant;
  probe.name = name;
  std::optional<NetworkRecord> removed;
  auto gone = mirror_->update(
      probe,
      [&](std::optional<NetworkRecord>& n) -> Status {
        removed = n;
        n.reset();
        return {};
      },
      [&]() -> Status {
        if (!removed) return {};
        // Ports are checked where they are all known at once: this store (one transaction
        // alone; the cluster's as this member last heard of them).
        {
          Statement q(db_, "SELECT 1 FROM ports WHERE network = ? LIMIT 1");
          q.bind(removed->uuid);
          auto step = q.step();
          if (step == Statement::Step::kRow) {
            return makeError(ErrorCode::kConflict, "store",
                             "network " + tenant + "/" + name + " has ports");
          }
          if (step != Statement::Step::kDone) return std::unexpected(db_.error("find ports"));
        }
        Statement q(db_, "DELETE FROM network_here WHERE network = ?");
        q.bind(removed->uuid);
        if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("drop network"));
        return {};
      });
  if (!gone) return std::unexpected(gone.error());
  if (removed) releaseSegment(*removed);
  return {};
}

Result<std::vector<int64_t>> NetworkRepository::freeSegments(const std::string& type,
                                                             std::pair<int64_t, int64_t> range,
                                                             size_t most) {
  auto used = segmentsInUse(type);
  if (!used) return std::unexpected(used.error());
  const std::set<int64_t> taken(used->begin(), used->end());
  std::vector<int64_t> out;
  for (int64_t s = range.first; s <= range.second && out.size() < most; ++s) {
    if (!taken.contains(s)) out.push_back(s);
  }
  return out;
}

Result<std::vector<int64_t>> NetworkRepository::segmentsInUse(const std::string& type) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT segment_id FROM networks WHERE type = ? ORDER BY segment_id");
  q.bind(type);
  return readAll<int64_t>(
      db_, q, [](const Statement& row) { return row.integer(0); }, "list segments");
}

// ---- Ports ----------------------------------------------------------------------------------

PortRepository::PortRepository(Database& db)
    : db_(db),
      mirror_(std::make_unique<Mirror<PortRecord>>(
          db, kPorts,
          pairKey<PortRecord>({"network", "ip"}, &PortRecord::network, &PortRecord::ip))) {}

PortRepository::~PortRepository() = default;

void PortRepository::share(std::unique_ptr<RecordTable> table, const std::string& host) {
  host_ = host;
  {
    // Ports from before hosts were recorded are this host's: they go in under its name.
    std::lock_guard lock(db_.mutex());
    Statement q(db_, "UPDATE ports SET host = ? WHERE host = ''");
    q.bind(host);
    if (q.step() != Statement::Step::kDone) {
      kLog.warn("cannot name this host on its ports", {{"error", db_.errorMessage()}});
    }
  }
  mirror_->share(std::move(table), [host](const PortRecord& p) { return p.host == host; });
}

Replicated& PortRepository::replica() { return *mirror_; }

Status PortRepository::create(PortRecord& port) {
  std::lock_guard numbers(hostNumbersMutex());
  {
    // Checked here: the network and its ports are two records (two tables in the cluster).
    std::lock_guard lock(db_.mutex());
    Statement q(db_, "SELECT 1 FROM networks WHERE uuid = ?");
    q.bind(port.network);
    auto step = q.step();
    if (step == Statement::Step::kDone) {
      return makeError(ErrorCode::kNotFound, "store", "no network " + port.network);
    }
    if (step != Statement::Step::kRow) return std::unexpected(db_.error("find the network"));
    port.ofport = freeOfportLocked(db_, host_);
  }
  auto made = mirror_->update(port, [&](std::optional<PortRecord>& current) -> Status {
    if (current) {
      return makeError(ErrorCode::kConflict, "store",
                       "address " + port.ip + " is taken on this network");
    }
    current = port;
    return {};
  });
  if (made) return {};
  Error e = made.error();
  if (e.code == ErrorCode::kConflict && e.message.find("ports.mac") != std::string::npos) {
    e.message = "MAC " + port.mac + " is taken on this network";
  } else if (e.code == ErrorCode::kConflict && e.message.find("ports.") != std::string::npos) {
    e.message = "port conflict: " + e.message;
  }
  return std::unexpected(e);
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
  auto found = select("uuid", uuid);
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return {};
  auto gone = mirror_->update(found->front(), [&](std::optional<PortRecord>& p) -> Status {
    // The address may have gone to another port since this member last heard: that one stays.
    if (p && p->uuid == uuid) p.reset();
    return {};
  });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

Status PortRepository::removeOfNic(const PortRecord& port) {
  if (auto gone = remove(port.uuid); !gone) return gone;
  auto found = ofVm(port.vm);
  if (!found) return std::unexpected(found.error());
  // The VM's NICs numbered 0, 1, ... in their order, lowest first (a number is never taken
  // twice on the way, since each moves down into a gap).
  for (size_t i = 0; i < found->size(); ++i) {
    const PortRecord& p = (*found)[i];
    if (p.nic == static_cast<int64_t>(i)) continue;
    auto moved = mirror_->update(p, [&](std::optional<PortRecord>& current) -> Status {
      if (current && current->uuid == p.uuid) current->nic = static_cast<int64_t>(i);
      return {};
    });
    if (!moved) return std::unexpected(moved.error());
  }
  return {};
}

}  // namespace qiao
