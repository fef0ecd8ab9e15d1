#include "node/networks/network_service.h"

#include <nlohmann/json.hpp>
#include <set>

#include "base/crypto.h"
#include "base/json_input.h"
#include "base/log.h"
#include "base/names.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

const Logger kLog("network");

std::string networkId(const NetworkRecord& n) { return n.tenant + "/" + n.name; }

std::vector<std::string> dnsOf(const NetworkRecord& n) {
  std::vector<std::string> out;
  auto parsed = nlohmann::json::parse(n.dns_json, nullptr, false);
  if (parsed.is_array()) {
    for (const auto& d : parsed) {
      if (d.is_string()) out.push_back(d.get<std::string>());
    }
  }
  return out;
}

// The addresses of a network no port may take: its gateway and its DHCP server.
std::set<uint32_t> reservedOf(const NetworkRecord& n) {
  std::set<uint32_t> out;
  for (const auto& ip : {n.gateway, n.dhcp_ip}) {
    if (auto v = parseIpv4(ip, "ip"); v) out.insert(*v);
  }
  return out;
}

std::vector<FlowRule> defaultRules() {
  FlowRule egress;
  egress.ingress = false;
  FlowRule ingress;
  ingress.remote_group = kDefaultGroup;
  return {egress, ingress};
}

// A port's groups are a JSON array of DNS labels: "\"name\"" in it is exact.
bool namesGroup(const PortRecord& port, const std::string& name) {
  return port.security_groups.find("\"" + name + "\"") != std::string::npos;
}

std::string groupKey(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

}  // namespace

NetworkService::NetworkService(Store& store, Fabric& fabric, TaskEngine& tasks, EventBus& events,
                               std::string host)
    : store_(store), fabric_(fabric), tasks_(tasks), events_(events), host_(std::move(host)) {
  TaskEngine::Kind kind;
  kind.run = [this](TaskEngine::Run& run) { return runTask(run); };
  kind.give_up = [this](TaskEngine::Run& run) { giveUp(run); };
  tasks_.addFamily(TaskFamily::kNetwork, std::move(kind));
}

NetworkDef NetworkService::defOf(const NetworkRecord& n) {
  NetworkDef d;
  d.uuid = n.uuid;
  d.tenant = n.tenant;
  d.name = n.name;
  d.type = n.type;
  d.segment_id = n.segment_id;
  d.local_id = n.local_id;
  if (auto s = parseSubnet(n.subnet, "subnet"); s) d.subnet = *s;
  d.gateway = n.gateway;
  d.dns = dnsOf(n);
  d.mtu = static_cast<int>(n.mtu);
  d.dhcp = n.dhcp;
  d.dhcp_ip = n.dhcp_ip;
  d.dhcp_mac = n.dhcp_mac;
  d.dhcp_ofport = n.dhcp_ofport;
  return d;
}

namespace {

PortDef portDefOf(const PortRecord& p) {
  PortDef d;
  d.uuid = p.uuid;
  d.tenant = p.tenant;
  d.network_uuid = p.network;
  d.vm_uuid = p.vm;
  d.vm_name = p.vm_name;
  d.name = p.name;
  d.mac = p.mac;
  d.ip = p.ip;
  d.ofport = p.ofport;
  auto groups = nlohmann::json::parse(p.security_groups, nullptr, false);
  if (groups.is_array()) {
    for (const auto& g : groups) {
      if (g.is_string()) d.groups.push_back(groupKey(p.tenant, g.get<std::string>()));
    }
  }
  return d;
}

}  // namespace

Result<std::vector<FlowGroup>> NetworkService::allGroups() {
  auto all = store_.groups().list({});
  if (!all) return std::unexpected(all.error());
  std::vector<FlowGroup> out;
  for (const auto& g : *all) {
    auto rules = parseRules(nlohmann::json::parse(g.rules_json, nullptr, false));
    if (!rules) {
      kLog.error("a stored security group does not parse",
                 {{"group", groupKey(g.tenant, g.name)}, {"error", rules.error().describe()}});
      continue;
    }
    for (auto& r : *rules) {
      if (!r.remote_group.empty()) r.remote_group = groupKey(g.tenant, r.remote_group);
    }
    out.push_back({groupKey(g.tenant, g.name), std::move(*rules)});
  }
  return out;
}

Status NetworkService::pushGroups() {
  // Read and handed over under one lock: two changes never leave the older set installed.
  std::lock_guard lock(groups_mutex_);
  auto groups = allGroups();
  if (!groups) return std::unexpected(groups.error());
  return fabric_.setGroups(std::move(*groups));
}

Status NetworkService::storeDefaultGroup(const std::string& tenant) {
  if (store_.groups().get(tenant, kDefaultGroup)) return {};
  SecurityGroupRecord g{tenant, kDefaultGroup, newUuid(), dumpJson(rulesToJson(defaultRules())), "",
                        ""};
  auto created = store_.groups().create(g);
  if (!created && created.error().code != ErrorCode::kConflict) return created;
  return {};
}

Status NetworkService::ensureDefaultGroup(const std::string& tenant) {
  if (store_.groups().get(tenant, kDefaultGroup)) return {};
  if (auto stored = storeDefaultGroup(tenant); !stored) return stored;
  return pushGroups();
}

Status NetworkService::checkRemoteGroups(const std::string& tenant, const std::string& group,
                                         const std::vector<FlowRule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string& remote = rules[i].remote_group;
    if (remote.empty() || remote == group || remote == kDefaultGroup) continue;
    if (!store_.groups().get(tenant, remote)) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       "rules[" + std::to_string(i) + "].remote_group: tenant " + tenant +
                           " has no security group named " + remote);
    }
  }
  return {};
}

Result<SecurityGroupRecord> NetworkService::createGroup(const SecurityGroupSpec& spec) {
  if (auto ok = checkRemoteGroups(spec.tenant, spec.name, spec.rules); !ok) {
    return std::unexpected(ok.error());
  }
  SecurityGroupRecord g{spec.tenant, spec.name, newUuid(), dumpJson(rulesToJson(spec.rules)),
                        "",          ""};
  if (auto created = store_.groups().create(g); !created) {
    return std::unexpected(created.error());
  }
  // Stored: a switch that is down gets it when it is back.
  if (auto pushed = pushGroups(); !pushed) {
    kLog.warn("security group stored; flows follow when OVS answers",
              {{"group", groupKey(g.tenant, g.name)}, {"error", pushed.error().describe()}});
  }
  return store_.groups().get(g.tenant, g.name);
}

Result<SecurityGroupRecord> NetworkService::replaceRules(const SecurityGroupRecord& group,
                                                         const std::vector<FlowRule>& rules) {
  if (auto ok = checkRemoteGroups(group.tenant, group.name, rules); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto set = store_.groups().setRules(group.tenant, group.name, dumpJson(rulesToJson(rules)));
      !set) {
    return std::unexpected(set.error());
  }
  if (auto pushed = pushGroups(); !pushed) {
    kLog.warn(
        "security group stored; flows follow when OVS answers",
        {{"group", groupKey(group.tenant, group.name)}, {"error", pushed.error().describe()}});
  }
  return store_.groups().get(group.tenant, group.name);
}

Status NetworkService::deleteGroup(const SecurityGroupRecord& group) {
  if (auto deleted = store_.groups().remove(group.tenant, group.name); !deleted) {
    auto ports = store_.ports().all();
    std::vector<std::string> vms;
    if (ports) {
      for (const auto& p : *ports) {
        if (p.tenant == group.tenant && namesGroup(p, group.name) &&
            (vms.empty() || vms.back() != p.vm_name)) {
          vms.push_back(p.vm_name);
        }
      }
    }
    if (vms.empty()) return deleted;
    std::string list;
    for (const auto& v : vms) list += (list.empty() ? "" : ", ") + v;
    return makeError(ErrorCode::kConflict, "network",
                     "security group " + groupKey(group.tenant, group.name) +
                         " is used by the NICs of vm " + list,
                     dumpJson({{"vms", vms}}));
  }
  (void)pushGroups();
  return {};
}

void NetworkService::start() {
  std::vector<NetworkDef> networks;
  std::vector<PortDef> ports;
  if (auto all = store_.networks().list({}); all) {
    for (const auto& n : *all) {
      // A network still being created is the business of its task; one this host does not
      // carry (local_id 0) is another host's until a VM here gets a NIC on it.
      if (n.local_id > 0 && (n.state == NetworkState::kReady || n.state == NetworkState::kDeleting))
        networks.push_back(defOf(n));
    }
  } else {
    kLog.error("cannot read the networks", {{"error", all.error().describe()}});
  }
  if (auto all = store_.ports().all(); all) {
    std::set<std::string> need_default;
    for (const auto& p : *all) {
      if (!isMine(p)) continue;
      ports.push_back(portDefOf(p));
      if (namesGroup(p, kDefaultGroup)) need_default.insert(p.tenant);
    }
    // Ports from before security groups (store schema 5 gave them ["default"]) keep talking:
    // their tenant's default group is made now, as a plug would have.
    for (const auto& tenant : need_default) {
      if (auto made = storeDefaultGroup(tenant); !made) {
        kLog.error("cannot make a tenant's default security group",
                   {{"tenant", tenant}, {"error", made.error().describe()}});
      }
    }
  } else {
    kLog.error("cannot read the ports", {{"error", all.error().describe()}});
  }
  auto groups = allGroups();
  if (!groups) {
    kLog.error("cannot read the security groups", {{"error", groups.error().describe()}});
  }
  fabric_.load(std::move(networks), std::move(ports),
               groups ? std::move(*groups) : std::vector<FlowGroup>{});
  started_ = true;
  if (auto synced = syncCluster(); !synced) {
    kLog.warn("the other hosts' ports follow at the next change",
              {{"error", synced.error().describe()}});
  }
  fabric_.start();
}

Status NetworkService::syncCluster() {
  if (!started_) return {};
  auto ports = store_.ports().all();
  if (!ports) return std::unexpected(ports.error());
  auto networks = store_.networks().list({});
  if (!networks) return std::unexpected(networks.error());
  auto carried = store_.networks().carried();
  if (!carried) return std::unexpected(carried.error());
  Status result = pushGroups();
  std::vector<PortDef> remote;
  std::set<std::string> used_here;
  for (const auto& p : *ports) {
    if (isMine(p)) {
      used_here.insert(p.network);
    } else {
      remote.push_back(portDefOf(p));
    }
  }
  if (auto set = fabric_.setRemotePorts(std::move(remote)); !set && result) result = set;
  // The networks the cluster removed (a member made the change): out of this host's fabric.
  std::set<std::string> live;
  for (const auto& n : *networks) live.insert(n.uuid);
  for (const auto& uuid : *carried) {
    if (live.contains(uuid) || used_here.contains(uuid)) continue;
    if (auto removed = fabric_.removeNetwork(uuid); !removed) {
      kLog.warn("a removed network's leftovers go at a later check",
                {{"network", uuid}, {"error", removed.error().describe()}});
    }
    if (auto dropped = store_.networks().drop(uuid); !dropped && result) result = dropped;
    kLog.info("network removed by another host: no longer carried here", {{"network", uuid}});
  }
  return result;
}

Status NetworkService::ensureCarried(NetworkRecord& network) {
  if (network.local_id > 0) return {};
  if (auto carried = store_.networks().carry(network); !carried) return carried;
  kLog.info("network carried here for a VM's NIC",
            {{"network", networkId(network)}, {"local_id", std::to_string(network.local_id)}});
  return fabric_.addNetwork(defOf(network));
}

void NetworkService::stop() { fabric_.stop(); }

Result<TaskRecord> NetworkService::create(const NetworkSpec& spec, const std::string& identity,
                                          bool by_admin) {
  if (fabric_.reachesOtherHosts(spec.type) && !store_.networks().shared()) {
    const std::string why = "a " + spec.type + " network leaves this host (" +
                            (spec.type == "vlan" ? "network.vlan_uplink" : "tunnel peers") +
                            "), where the same segment id is the same network on every host";
    if (!by_admin) {
      return makeError(ErrorCode::kPermissionDenied, "network",
                       why + ": its segment_id is chosen by an admin");
    }
    if (spec.segment_id == 0) {
      return makeError(ErrorCode::kInvalidArgument, "network",
                       why +
                           ": give segment_id (this host is not a cluster member that shares "
                           "one allocator)");
    }
  }
  std::lock_guard lock(create_mutex_);
  NetworkRecord n;
  n.tenant = spec.tenant;
  n.name = spec.name;
  n.uuid = newUuid();
  n.type = spec.type;
  n.subnet = spec.subnet.str();
  n.dhcp = spec.dhcp;
  n.dns_json = dumpJson(spec.dns);
  n.mtu = spec.mtu != 0 ? spec.mtu : (spec.type == "vlan" ? 1500 : 1450);
  n.state = NetworkState::kCreating;
  // Two tenants may use the same subnet; one tenant's networks never overlap (a guest with a
  // NIC on each could not route).
  auto mine = store_.networks().list({spec.tenant});
  if (!mine) return std::unexpected(mine.error());
  for (const auto& other : *mine) {
    auto s = parseSubnet(other.subnet, "subnet");
    if (s && s->overlaps(spec.subnet) && other.name != spec.name) {
      return makeError(ErrorCode::kConflict, "network",
                       "subnet " + spec.subnet.str() + " overlaps " + other.subnet +
                           " of network " + networkId(other),
                       dumpJson({{"network", other.name}}));
    }
  }
  n.segment_id = spec.segment_id;
  uint32_t first = spec.subnet.network + 1;
  std::set<uint32_t> used;
  if (spec.gateway.empty()) {
    n.gateway = formatIpv4(first);
    used.insert(first);
  } else if (spec.gateway != "none") {
    n.gateway = spec.gateway;
    used.insert(*parseIpv4(spec.gateway, "gateway"));
  }
  if (spec.dhcp) {
    auto ip = firstFreeIp(spec.subnet, used);
    if (!ip) return std::unexpected(ip.error());
    n.dhcp_ip = formatIpv4(*ip);
    n.dhcp_mac = macFromSeed("dhcp/" + n.uuid);
  }
  TaskRecord task =
      TaskEngine::newTask(TaskKind::kNetworkCreate, n.tenant, taskTarget(n.name), identity, "{}");
  const std::pair<int64_t, int64_t> free_segments{spec.type == "vlan" ? 100 : 1000,
                                                  maxSegmentId(spec.type)};
  if (auto created = store_.networks().create(n, &task, free_segments); !created) {
    return std::unexpected(created.error());
  }
  publish(n, "created");
  return tasks_.dispatch(task.id);
}

Status NetworkService::checkNotInUse(const NetworkRecord& network) {
  auto ports = store_.ports().ofNetwork(network.uuid);
  if (!ports) return std::unexpected(ports.error());
  if (ports->empty()) return {};
  std::vector<std::string> vms;
  for (const auto& p : *ports) {
    if (vms.empty() || vms.back() != p.vm_name) vms.push_back(p.vm_name);
  }
  std::string list;
  for (const auto& v : vms) list += (list.empty() ? "" : ", ") + v;
  return makeError(ErrorCode::kConflict, "network",
                   "network " + networkId(network) + " has ports of vm " + list +
                       "; delete those vms (or their NICs) first",
                   dumpJson({{"vms", vms}}));
}

Result<TaskRecord> NetworkService::remove(const NetworkRecord& network,
                                          const std::string& identity) {
  if (network.state == NetworkState::kCreating) {
    return makeError(ErrorCode::kConflict, "network",
                     "network " + networkId(network) + " is being created; try again later");
  }
  if (auto free = checkNotInUse(network); !free) return std::unexpected(free.error());
  return tasks_.submit(TaskEngine::newTask(TaskKind::kNetworkDelete, network.tenant,
                                           taskTarget(network.name), identity, "{}"));
}

Status NetworkService::runTask(TaskEngine::Run& run) {
  const TaskRecord& task = run.task();
  auto name = TaskEngine::objectOf(task, "network/");
  if (!name) return std::unexpected(name.error());
  auto network = store_.networks().get(task.tenant, *name);
  if (!network) return std::unexpected(network.error());
  switch (task.kind) {
    case TaskKind::kNetworkCreate: return runCreate(run, *network);
    case TaskKind::kNetworkDelete: return runRemove(run, *network);
    default: break;  // another family's kind: not ours
  }
  return makeError(ErrorCode::kInternal, "network", "unknown task kind " + toString(task.kind));
}

void NetworkService::giveUp(TaskEngine::Run& run) {
  auto name = TaskEngine::objectOf(run.task(), "network/");
  if (!name) return;
  auto network = store_.networks().get(run.task().tenant, *name);
  if (!network) return;
  if (run.task().kind == TaskKind::kNetworkCreate) {
    (void)run.step("rollback", run.task().progress, "rolling back", [&]() -> Status {
      if (auto removed = fabric_.removeNetwork(network->uuid); !removed) return removed;
      return store_.networks().remove(network->tenant, network->name);
    });
    return;
  }
  (void)store_.networks().setState(network->tenant, network->name, NetworkState::kError,
                                   "gave up after restarts of qiaod");
}

Status NetworkService::runCreate(TaskEngine::Run& run, NetworkRecord network) {
  Status result = run.step(
      "fabric", 80, "starting DHCP and installing flows",
      [&]() { return fabric_.addNetwork(defOf(network)); },
      [&]() { return fabric_.removeNetwork(network.uuid); });
  if (result) {
    result = run.step("record", 100, "recording the network", [&]() -> Status {
      if (auto s = store_.networks().setState(network.tenant, network.name, NetworkState::kReady);
          !s)
        return s;
      network.state = NetworkState::kReady;
      publish(network, toString(network.state));
      return {};
    });
  }
  if (!result) {
    run.rollback();
    // The failed step left it in the fabric (a DHCP server that did not start, OVS down):
    // out of the model now, its leftovers cleaned by the fabric's checks.
    (void)fabric_.removeNetwork(network.uuid);
    if (store_.networks().remove(network.tenant, network.name)) publish(network, "create failed");
  }
  return result;
}

Status NetworkService::runRemove(TaskEngine::Run& run, NetworkRecord network) {
  Status result = run.step("fabric", 80, "stopping DHCP and removing flows", [&]() -> Status {
    // Marked first: a NIC plug that starts now sees it is not ready; one that took a port
    // before is seen below.
    if (network.state != NetworkState::kDeleting) {
      if (auto s =
              store_.networks().setState(network.tenant, network.name, NetworkState::kDeleting);
          !s)
        return s;
      network.state = NetworkState::kDeleting;
      publish(network, toString(network.state));
    }
    if (auto free = checkNotInUse(network); !free) {
      (void)store_.networks().setState(network.tenant, network.name, NetworkState::kReady);
      network.state = NetworkState::kReady;
      return free;
    }
    return fabric_.removeNetwork(network.uuid);
  });
  if (result) {
    result = run.step("forget", 100, "forgetting the network", [&]() -> Status {
      if (auto s = store_.networks().remove(network.tenant, network.name); !s) {
        // A NIC plugged meanwhile: name its VM.
        if (s.error().code == ErrorCode::kConflict) {
          if (auto busy = checkNotInUse(network); !busy) return busy;
        }
        return s;
      }
      publish(network, "deleted");
      return {};
    });
  }
  if (!result && network.state == NetworkState::kDeleting) {
    (void)store_.networks().setState(network.tenant, network.name, NetworkState::kError,
                                     result.error().describe());
  }
  return result;
}

Result<std::string> NetworkService::awaitedNetworks(const std::string& tenant,
                                                    const std::vector<NicRequest>& nics) {
  for (const auto& nic : nics) {
    auto network = store_.networks().get(tenant, nic.network);
    if (!network) {
      if (network.error().code != ErrorCode::kNotFound) return std::unexpected(network.error());
      // Its create failed (a failed create leaves no network): say why.
      const std::string why =
          TaskEngine::lastFailure(store_.tasks(), tenant, taskTarget(nic.network));
      return makeError(ErrorCode::kConflict, "network",
                       "network " + tenant + "/" + nic.network + " was not made" +
                           (why.empty() ? "" : ": its create failed: " + why));
    }
    if (network->state == NetworkState::kReady) continue;
    if (network->state == NetworkState::kCreating) {
      return "network " + networkId(*network) + " (" + toString(network->state) + ")";
    }
    return makeError(ErrorCode::kConflict, "network",
                     "network " + networkId(*network) + " is " + toString(network->state));
  }
  return std::string();
}

Status NetworkService::checkNics(const std::string& tenant, const std::vector<NicRequest>& nics,
                                 bool creating_ok) {
  for (size_t i = 0; i < nics.size(); ++i) {
    const std::string where = "nics[" + std::to_string(i) + "]";
    auto network = store_.networks().get(tenant, nics[i].network);
    if (!network) {
      if (network.error().code == ErrorCode::kNotFound) {
        return makeError(ErrorCode::kInvalidArgument, "spec",
                         where + ": tenant " + tenant + " has no network named " + nics[i].network);
      }
      return std::unexpected(network.error());
    }
    if (network->state != NetworkState::kReady &&
        !(creating_ok && network->state == NetworkState::kCreating)) {
      return makeError(
          ErrorCode::kConflict, "network",
          where + ": network " + networkId(*network) + " is " + toString(network->state));
    }
    if (nics[i].mac.starts_with("02:51:a0:")) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       where + ".mac " + nics[i].mac +
                           ": MACs 02:51:a0:xx:xx:xx are Qiao's own (its ports and DHCP servers)");
    }
    for (const auto& g : nics[i].security_groups) {
      if (g == kDefaultGroup) continue;  // made when first used
      if (!store_.groups().get(tenant, g)) {
        return makeError(ErrorCode::kInvalidArgument, "spec",
                         where + ": tenant " + tenant + " has no security group named " + g);
      }
    }
    if (!nics[i].ip.empty()) {
      auto ip = parseIpv4(nics[i].ip, where + ".ip");
      if (!ip) return std::unexpected(ip.error());
      auto subnet = parseSubnet(network->subnet, "subnet");
      if (!subnet || !subnet->isHost(*ip)) {
        return makeError(
            ErrorCode::kInvalidArgument, "spec",
            where + ".ip " + nics[i].ip + " is not a host address of " + network->subnet);
      }
      if (reservedOf(*network).contains(*ip)) {
        return makeError(ErrorCode::kConflict, "network",
                         where + ".ip " + nics[i].ip + " is the gateway or DHCP address of " +
                             networkId(*network));
      }
    }
  }
  return {};
}

Result<PortRecord> NetworkService::makePort(const NetworkRecord& network,
                                            const std::string& vm_uuid, const std::string& vm_name,
                                            int64_t nic, const NicRequest& request) {
  auto subnet = parseSubnet(network.subnet, "subnet");
  if (!subnet) return std::unexpected(subnet.error());
  PortRecord port;
  port.uuid = newUuid();
  port.tenant = network.tenant;
  port.network = network.uuid;
  port.vm = vm_uuid;
  port.vm_name = vm_name;
  port.nic = nic;
  port.host = host_;
  port.name = "qt-" + port.uuid.substr(0, 8);
  port.mac = request.mac.empty() ? macFromSeed("port/" + port.uuid) : request.mac;
  port.security_groups =
      dumpJson(request.security_groups.empty() ? std::vector<std::string>{kDefaultGroup}
                                               : request.security_groups);
  // A fixed address is taken or refused; a chosen one is retried if another port took it
  // between the choice and the insert (on a member: another host's port this one has not heard
  // of yet), without that address.
  std::set<uint32_t> reserved = reservedOf(network);
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (!request.ip.empty()) {
      auto ip = parseIpv4(request.ip, "ip");
      if (!ip) return std::unexpected(ip.error());
      if (!subnet->isHost(*ip) || reserved.contains(*ip)) {
        return makeError(ErrorCode::kConflict, "network",
                         "address " + request.ip + " cannot be taken on " + networkId(network));
      }
      port.ip = formatIpv4(*ip);
    } else {
      auto ports = store_.ports().ofNetwork(network.uuid);
      if (!ports) return std::unexpected(ports.error());
      std::set<uint32_t> used = reserved;
      for (const auto& p : *ports) {
        if (auto v = parseIpv4(p.ip, "ip"); v) used.insert(*v);
      }
      auto ip = firstFreeIp(*subnet, used);
      if (!ip) return std::unexpected(ip.error());
      port.ip = formatIpv4(*ip);
    }
    auto created = store_.ports().create(port);
    if (created) {
      // A delete of the network that began meanwhile wins: the port goes again.
      auto now = store_.networks().get(network.tenant, network.name);
      if (!now || now->state != NetworkState::kReady || now->uuid != network.uuid) {
        (void)store_.ports().remove(port.uuid);
        return makeError(ErrorCode::kConflict, "network",
                         "network " + networkId(network) + " is being deleted");
      }
      return port;
    }
    if (created.error().code != ErrorCode::kConflict || !request.ip.empty() ||
        created.error().message.find("address") == std::string::npos) {
      return std::unexpected(created.error());
    }
    if (auto taken = parseIpv4(port.ip, "ip"); taken) reserved.insert(*taken);
  }
  return makeError(ErrorCode::kConflict, "network",
                   "could not find a free address on " + networkId(network));
}

Status NetworkService::plugVm(const std::string& tenant, const std::string& vm_uuid,
                              const std::string& vm_name, const std::vector<NicRequest>& nics) {
  auto existing = store_.ports().ofVm(vm_uuid);
  if (!existing) return std::unexpected(existing.error());
  bool uses_default = false;
  for (const auto& n : nics) {
    uses_default = uses_default || n.security_groups.empty() ||
                   std::find(n.security_groups.begin(), n.security_groups.end(),
                             std::string(kDefaultGroup)) != n.security_groups.end();
  }
  if (uses_default) {
    if (auto made = ensureDefaultGroup(tenant); !made) return made;
  }
  for (size_t i = 0; i < nics.size(); ++i) {
    PortRecord port;
    auto have = std::find_if(existing->begin(), existing->end(),
                             [&](const PortRecord& p) { return p.nic == int64_t(i); });
    if (have != existing->end()) {
      port = *have;
    } else {
      auto network = store_.networks().get(tenant, nics[i].network);
      if (!network) return std::unexpected(network.error());
      if (network->state != NetworkState::kReady) {
        return makeError(ErrorCode::kConflict, "network",
                         "network " + networkId(*network) + " is " + toString(network->state));
      }
      if (auto carried = ensureCarried(*network); !carried) return carried;
      auto made = makePort(*network, vm_uuid, vm_name, static_cast<int64_t>(i), nics[i]);
      if (!made) return std::unexpected(made.error());
      port = *made;
    }
    if (auto plugged = fabric_.plug(portDefOf(port)); !plugged) return plugged;
  }
  return {};
}

Status NetworkService::unplugVm(const std::string& vm_uuid) {
  auto ports = store_.ports().ofVm(vm_uuid);
  if (!ports) return std::unexpected(ports.error());
  for (const auto& p : *ports) {
    // Out of the fabric's model whatever happens; what OVS or the host keep of it (OVS down)
    // the fabric's checks remove later. The record goes, so the address is free again.
    if (auto unplugged = fabric_.unplug(p.uuid); !unplugged) {
      kLog.warn("port unplugged; its leftovers go at a later check",
                {{"port", p.name}, {"error", unplugged.error().describe()}});
    }
    if (auto deleted = store_.ports().remove(p.uuid); !deleted) return deleted;
  }
  return {};
}

Status NetworkService::unplugNic(const PortRecord& port) {
  if (auto unplugged = fabric_.unplug(port.uuid); !unplugged) {
    kLog.warn("port unplugged; its leftovers go at a later check",
              {{"port", port.name}, {"error", unplugged.error().describe()}});
  }
  return store_.ports().removeOfNic(port);
}

Result<std::vector<NicDef>> NetworkService::nicsOf(const std::string& vm_uuid) {
  auto ports = store_.ports().ofVm(vm_uuid);
  if (!ports) return std::unexpected(ports.error());
  auto networks = store_.networks().list({});
  if (!networks) return std::unexpected(networks.error());
  std::vector<NicDef> out;
  for (const auto& p : *ports) {
    NicDef nic{p.name, p.mac, 1500};
    for (const auto& n : *networks) {
      if (n.uuid == p.network) nic.mtu = static_cast<int>(n.mtu);
    }
    out.push_back(nic);
  }
  return out;
}

void NetworkService::publish(const NetworkRecord& network, std::string_view reason) {
  nlohmann::json event = networkToJson(network);
  event["type"] = "network";
  event["reason"] = std::string(reason);
  events_.publish({"network", network.tenant, dumpJson(event)});
}

}  // namespace qiao
