#include "network/fabric.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "base/log.h"
#include "network/netdev.h"

namespace qiao {

namespace {

// Ports of Qiao's carry one of these; those on a shared (provider) bridge also name the
// bridge of the daemon that made them (qiao-bridge).
bool isQiaoPort(const SwitchPortState& s) {
  return s.port.external_ids.contains("qiao-tenant") || s.port.external_ids.contains("qiao-role");
}

}  // namespace

TapOps TapOps::host() {
  return {[](const std::string& name) { return linkExists(name); },
          [](const std::string& name, int mtu) { return ensureTap(name, mtu); },
          [](const std::string& name) { return removeTap(name); }};
}

Fabric::Fabric(FabricOptions options, Switch& sw, FlowInstaller& flows, DhcpServers& dhcp)
    : options_(std::move(options)),
      switch_(sw),
      flows_(flows),
      dhcp_(dhcp),
      tunnel_peers_known_(!options_.dynamic_tunnel_peers) {
  // Slots in the configured order (the config was checked: valid, distinct, at most 40).
  for (const auto& peer : options_.tunnel_peers) {
    if (tunnel_peers_.size() >= kMaxTunnelPeers) break;
    tunnel_peers_.emplace(peer, static_cast<int64_t>(tunnel_peers_.size()));
  }
}

Fabric::~Fabric() { stop(); }

void Fabric::load(std::vector<NetworkDef> networks, std::vector<PortDef> ports,
                  std::vector<FlowGroup> groups) {
  std::lock_guard lock(mutex_);
  groups_ = std::move(groups);
  networks_.clear();
  ports_.clear();
  for (auto& n : networks) networks_[n.uuid] = std::move(n);
  for (auto& p : ports) ports_[p.uuid] = std::move(p);
  installed_.clear();
  installed_from_.clear();
}

void Fabric::start() {
  switch_.setChangeHandler([this] {
    std::lock_guard lock(wake_mutex_);
    wake_now_ = true;
    wake_.notify_all();
  });
  thread_ = std::thread(withLogScope([this] { loop(); }));
}

void Fabric::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  switch_.setChangeHandler(nullptr);
}

void Fabric::loop() {
  bool was_failing = false;
  while (true) {
    {
      std::unique_lock lock(wake_mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.check_interval_ms),
                     [this] { return wake_now_ || stopping_; });
      if (stopping_) return;
      wake_now_ = false;
    }
    auto report = check();
    if (!report) {
      // Logged once per outage, not every second.
      if (!was_failing) {
        log_.warn("network check failed; will retry", {{"error", report.error().describe()}});
      }
      was_failing = true;
      continue;
    }
    if (was_failing) log_.info("network check passes again");
    was_failing = false;
  }
}

Fabric::Counters Fabric::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

SwitchPort Fabric::switchPortOf(const PortDef& p) const {
  SwitchPort sp;
  sp.name = p.name;
  sp.ofport_request = p.ofport;
  sp.external_ids = {{"iface-id", p.uuid},
                     {"attached-mac", p.mac},
                     {"vm-id", p.vm_uuid},
                     {"qiao-tenant", p.tenant},
                     {"qiao-network", p.network_uuid}};
  return sp;
}

SwitchPort Fabric::switchPortOf(const NetworkDef& n) const {
  SwitchPort sp;
  sp.name = dhcpOuter(n);
  sp.ofport_request = n.dhcp_ofport;
  sp.external_ids = {{"qiao-role", "dhcp"},
                     {"qiao-tenant", n.tenant},
                     {"qiao-network", n.uuid},
                     {"attached-mac", n.dhcp_mac}};
  return sp;
}

namespace {
std::string patchOnBridge(const FabricOptions& o) { return "qpi-" + o.vlan_bridge.substr(0, 11); }
std::string patchOnProvider(const FabricOptions& o) { return "qpp-" + o.bridge.substr(0, 11); }
}  // namespace

SwitchPort Fabric::uplinkPort() const {
  SwitchPort sp;
  sp.name = patchOnBridge(options_);
  sp.type = "patch";
  sp.ofport_request = options_.uplink_ofport;
  sp.options = {{"peer", patchOnProvider(options_)}};
  sp.external_ids = {{"qiao-role", "uplink"}};
  return sp;
}

std::map<std::string, SwitchPort> Fabric::providerPorts() const {
  // Another daemon's bridge may be patched to the same provider bridge: each one's ports
  // say whose they are.
  SwitchPort patch;
  patch.name = patchOnProvider(options_);
  patch.type = "patch";
  patch.options = {{"peer", patchOnBridge(options_)}};
  patch.external_ids = {{"qiao-role", "uplink"}, {"qiao-bridge", options_.bridge}};
  SwitchPort nic;
  nic.name = options_.vlan_uplink;
  nic.external_ids = {{"qiao-role", "uplink-nic"}, {"qiao-bridge", options_.bridge}};
  return {{patch.name, patch}, {nic.name, nic}};
}

bool Fabric::reachesOtherHosts(const std::string& type) const {
  if (type == "vlan") return !options_.vlan_uplink.empty();
  if (options_.tunnel_ip.empty()) return false;
  if (options_.dynamic_tunnel_peers) return true;
  std::lock_guard lock(mutex_);
  return !tunnel_peers_.empty();
}

SwitchPort Fabric::tunnelPort(const std::string& peer, int64_t slot, bool vxlan) const {
  uint32_t ip = parseIpv4(peer, "tunnel peer").value_or(0);  // checked when it was set
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", ip);
  SwitchPort sp;
  sp.name = std::string(vxlan ? "qvx-" : "qgn-") + hex;
  sp.type = vxlan ? "vxlan" : "geneve";
  sp.ofport_request = options_.first_tunnel_ofport + 2 * slot + (vxlan ? 0 : 1);
  sp.options = {{"remote_ip", peer}, {"local_ip", options_.tunnel_ip}, {"key", "flow"}};
  sp.external_ids = {{"qiao-role", "tunnel"}, {"qiao-peer", peer}};
  return sp;
}

std::vector<SwitchPort> Fabric::tunnelPorts() const {
  std::vector<SwitchPort> out;
  if (options_.tunnel_ip.empty()) return out;
  // In slot order: the flows name the tunnels in the same order whatever the peers' addresses.
  std::map<int64_t, std::string> by_slot;
  for (const auto& [peer, slot] : tunnel_peers_) by_slot[slot] = peer;
  for (const auto& [slot, peer] : by_slot) {
    out.push_back(tunnelPort(peer, slot, true));
    out.push_back(tunnelPort(peer, slot, false));
  }
  return out;
}

std::vector<std::string> Fabric::tunnelPeers() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [peer, _] : tunnel_peers_) out.push_back(peer);
  return out;
}

Status Fabric::setTunnelPeers(const std::vector<std::string>& peers) {
  auto invalid = [](const std::string& message) {
    return makeError(ErrorCode::kInvalidArgument, "network", message);
  };
  if (options_.tunnel_ip.empty()) {
    return makeError(ErrorCode::kConflict, "network",
                     "tunnel peers need this host's tunnel address (network.tunnel_ip)");
  }
  std::set<std::string> wanted;
  for (const auto& peer : peers) {
    // Only the canonical dotted quad: the text goes into OVSDB as the tunnel's remote_ip.
    auto ip = parseIpv4(peer, "tunnel peer");
    if (!ip || formatIpv4(*ip) != peer) {
      return invalid("tunnel peer \"" + peer + "\" must be an IPv4 address such as 192.0.2.10");
    }
    // As the config's check of network.tunnel_peers: a host's unicast address.
    if (const uint32_t first = *ip >> 24; first == 0 || first == 127 || first >= 224) {
      return invalid("tunnel peer " + peer +
                     " must be a unicast address of a host (not 0.x, 127.x, multicast or "
                     "reserved)");
    }
    if (peer == options_.tunnel_ip) {
      return invalid("tunnel peer " + peer + " is this host's own tunnel address");
    }
    wanted.insert(peer);
  }
  if (wanted.size() > kMaxTunnelPeers) {
    return invalid("at most " + std::to_string(kMaxTunnelPeers) + " tunnel peers, not " +
                   std::to_string(wanted.size()));
  }

  std::lock_guard lock(mutex_);
  tunnel_peers_known_ = true;
  std::vector<std::string> added, removed;
  for (auto it = tunnel_peers_.begin(); it != tunnel_peers_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    removed.push_back(it->first);
    gone_tunnels_[it->first] = it->second;
    it = tunnel_peers_.erase(it);
  }
  for (const auto& peer : wanted) {
    if (!tunnel_peers_.contains(peer)) added.push_back(peer);
  }
  if (added.empty() && removed.empty() && gone_tunnels_.empty()) return {};

  // Slots for the new peers: a peer back before its ports went keeps its slot; else the slot
  // its port has on the switch (left by a previous run) when free; else the lowest free one.
  std::set<int64_t> taken;
  for (const auto& [_, slot] : tunnel_peers_) taken.insert(slot);
  for (const auto& [_, slot] : gone_tunnels_) taken.insert(slot);
  std::map<std::string, int64_t> on_switch;  // vxlan port name -> its slot
  if (auto listed = switch_.listPorts(options_.bridge); listed) {
    for (const auto& s : *listed) {
      const int64_t offset = s.port.ofport_request - options_.first_tunnel_ofport;
      if (s.port.type == "vxlan" && offset >= 0 && offset % 2 == 0 &&
          offset / 2 < static_cast<int64_t>(kMaxTunnelPeers)) {
        on_switch[s.port.name] = offset / 2;
      }
    }
  }
  // Two passes: the slots peers already have first, so that a new peer never takes one of them.
  std::map<std::string, int64_t> slots;
  for (const auto& peer : added) {
    if (auto back = gone_tunnels_.find(peer); back != gone_tunnels_.end()) {
      slots[peer] = back->second;
      gone_tunnels_.erase(back);
    } else if (auto had = on_switch.find(tunnelPort(peer, 0, true).name);
               had != on_switch.end() && !taken.contains(had->second)) {
      slots[peer] = had->second;
      taken.insert(had->second);
    }
  }
  Status result;
  for (const auto& peer : added) {
    if (slots.contains(peer)) continue;
    for (int64_t i = 0; i < static_cast<int64_t>(kMaxTunnelPeers); ++i) {
      if (taken.insert(i).second) {
        slots[peer] = i;
        break;
      }
    }
    if (!slots.contains(peer)) {
      // Only while the ports of peers gone cannot be removed (OVS down): the next call retries.
      result = makeError(ErrorCode::kUnavailable, "network",
                         "no free tunnel slot for peer " + peer +
                             " until the ports of the peers gone are removed");
    }
  }
  std::vector<std::string> placed;
  for (const auto& [peer, slot] : slots) {
    tunnel_peers_[peer] = slot;
    placed.push_back(peer);
  }
  if (!placed.empty() || !removed.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& x : v) out += (out.empty() ? "" : " ") + x;
      return out;
    };
    log_.info("tunnel peers changed", {{"added", list(placed)},
                                       {"removed", list(removed)},
                                       {"peers", std::to_string(tunnel_peers_.size())}});
  }

  // New ports first, then the flows (which then name them and no longer the gone ones), then
  // the gone ports: a tunnel that stays is never touched.
  if (auto s = ensureBridgeLocked(); !s) return s;
  for (const auto& peer : placed) {
    for (bool vxlan : {true, false}) {
      if (auto s =
              switch_.ensurePort(options_.bridge, tunnelPort(peer, tunnel_peers_[peer], vxlan));
          !s) {
        return s;
      }
    }
  }
  if (auto s = applyFlowsLocked(); !s) return s;
  if (auto s = removeGoneTunnelsLocked(); !s) return s;
  return result;
}

Status Fabric::removeGoneTunnelsLocked() {
  Status first;
  for (auto it = gone_tunnels_.begin(); it != gone_tunnels_.end();) {
    Status s;
    for (bool vxlan : {true, false}) {
      if (s) s = switch_.removePort(options_.bridge, tunnelPort(it->first, it->second, vxlan).name);
    }
    if (s) {
      it = gone_tunnels_.erase(it);
    } else {
      if (first) first = s;
      ++it;
    }
  }
  return first;
}

DhcpConfig Fabric::dhcpConfigLocked(const NetworkDef& n) const {
  DhcpConfig c;
  c.key = n.uuid;
  c.outer = dhcpOuter(n);
  c.inner = dhcpInner(n);
  c.mac = n.dhcp_mac;
  c.ip = n.dhcp_ip;
  c.subnet = n.subnet;
  c.gateway = n.gateway;
  c.dns = n.dns;
  c.mtu = n.mtu;
  c.domain = n.name + "." + n.tenant + ".qiao";
  for (const auto& [_, p] : ports_) {
    if (p.network_uuid == n.uuid) c.hosts.push_back({p.mac, p.ip, p.vm_name});
  }
  std::sort(c.hosts.begin(), c.hosts.end(),
            [](const DhcpHost& a, const DhcpHost& b) { return a.mac < b.mac; });
  return c;
}

std::vector<std::string> Fabric::wantedFlowsLocked() const {
  std::vector<FlowPort> fp;
  for (const auto& [_, n] : networks_) {
    if (n.dhcp && n.dhcp_ofport > 0) {
      fp.push_back({dhcpOuter(n), n.dhcp_ofport, n.local_id, n.dhcp_mac, {n.dhcp_ip}, true});
    }
  }
  for (const auto& [_, p] : ports_) {
    auto n = networks_.find(p.network_uuid);
    if (n == networks_.end()) continue;
    fp.push_back({p.name, p.ofport, n->second.local_id, p.mac, {p.ip}, false, p.groups});
  }
  for (const auto& p : remote_ports_) {
    auto n = networks_.find(p.network_uuid);
    if (n == networks_.end()) continue;
    fp.push_back({p.name, 0, n->second.local_id, p.mac, {p.ip}, false, p.groups, true});
  }
  FlowUplink uplink;
  if (!options_.vlan_uplink.empty()) {
    uplink.ofport = options_.uplink_ofport;
    for (const auto& [_, n] : networks_) {
      if (n.type == "vlan") uplink.vlans[n.local_id] = n.segment_id;
    }
  }
  FlowTunnels tunnels;
  for (const auto& t : tunnelPorts()) tunnels.ports.push_back({t.ofport_request, t.type});
  if (!tunnels.ports.empty()) {
    for (const auto& [_, n] : networks_) {
      if (n.type == "vxlan" || n.type == "geneve") {
        tunnels.networks[n.local_id] = {n.type, n.segment_id};
      }
    }
  }
  return buildFlows(fp, groups_, uplink, tunnels);
}

Status Fabric::applyFlowsLocked(bool incremental) {
  std::vector<std::string> wanted = wantedFlowsLocked();
  // What a sent change left on the switch; after a failure what is installed is unknown, and
  // the next install replaces the whole table.
  auto readBack = [&](const Status& sent) -> Result<std::vector<std::string>> {
    Result<std::vector<std::string>> dumped =
        sent ? flows_.dump(options_.bridge) : std::unexpected(sent.error());
    if (sent) ++counters_.flow_installs;
    if (!dumped) installed_from_.clear();
    return dumped;
  };
  if (incremental && !installed_from_.empty()) {
    // Only the difference; then one dump, which must differ from the last one by exactly what
    // was sent: a flow lost, edited or added behind Qiao's back shows as one more difference
    // and the whole table is replaced at once (a drift is never built upon: taking that dump
    // as the new reference would hide it from the check).
    auto dumped = readBack(flows_.update(options_.bridge, installed_from_, wanted));
    if (!dumped) return std::unexpected(dumped.error());
    auto count_missing = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
      const std::set<std::string> in_b(b.begin(), b.end());
      size_t n = 0;
      for (const auto& f : a) n += in_b.contains(f) ? 0 : 1;
      return n;
    };
    if (count_missing(*dumped, installed_) == count_missing(wanted, installed_from_) &&
        count_missing(installed_, *dumped) == count_missing(installed_from_, wanted)) {
      installed_ = std::move(*dumped);
      installed_from_ = std::move(wanted);
      return {};
    }
    log_.warn("flows drifted behind qiaod's back; replacing them all",
              {{"bridge", options_.bridge}});
  }
  auto dumped = readBack(flows_.replace(options_.bridge, wanted));
  if (!dumped) return std::unexpected(dumped.error());
  installed_ = std::move(*dumped);
  installed_from_ = std::move(wanted);
  return {};
}

Status Fabric::ensureNetworkLocked(const NetworkDef& n) {
  if (!n.dhcp) return {};
  if (auto s = dhcp_.ensure(dhcpConfigLocked(n)); !s) return s;
  return switch_.ensurePort(options_.bridge, switchPortOf(n));
}

Status Fabric::ensurePortLocked(const PortDef& p) {
  auto n = networks_.find(p.network_uuid);
  int mtu = n == networks_.end() ? 1500 : n->second.mtu;
  if (auto s = options_.taps.ensure(p.name, mtu); !s) return s;
  return switch_.ensurePort(options_.bridge, switchPortOf(p));
}

Status Fabric::ensureBridgeLocked() {
  if (bridge_ready_) return {};
  if (auto s = switch_.ensureBridge(options_.bridge, options_.datapath_type); !s) return s;
  // The database has the bridge; ovs-vswitchd makes it a moment later. Flows can go in once
  // it answers OpenFlow.
  Status answered;
  for (int i = 0; i < 100; ++i) {
    auto dumped = flows_.dump(options_.bridge);
    if (dumped || dumped.error().code != ErrorCode::kUnavailable) {
      bridge_ready_ = true;
      return {};
    }
    answered = std::unexpected(dumped.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return answered;
}

Status Fabric::addNetwork(const NetworkDef& network) {
  std::lock_guard lock(mutex_);
  networks_[network.uuid] = network;
  if (auto s = ensureBridgeLocked(); !s) return s;
  if (auto s = ensureNetworkLocked(network); !s) return s;
  return applyFlowsLocked();
}

Status Fabric::removeNetwork(const std::string& uuid) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(uuid);
  if (it == networks_.end() && !gone_networks_.contains(uuid)) return {};
  // Out of the model at once, whatever fails below: what is left on the host is a tombstone
  // that every check tries to clean up again.
  if (it != networks_.end()) {
    gone_networks_[uuid] = it->second;
    networks_.erase(it);
  }
  if (auto s = applyFlowsLocked(); !s) return s;
  Status cleaned = cleanupLocked();
  if (!gone_networks_.contains(uuid)) return {};  // another leftover's error is not ours
  return cleaned;
}

Status Fabric::plug(const PortDef& port) {
  std::lock_guard lock(mutex_);
  ports_[port.uuid] = port;
  if (auto s = ensureBridgeLocked(); !s) return s;
  if (auto s = ensurePortLocked(port); !s) return s;
  if (auto s = applyFlowsLocked(); !s) return s;
  auto n = networks_.find(port.network_uuid);
  if (n != networks_.end()) return ensureNetworkLocked(n->second);  // its DHCP host entry
  return {};
}

Status Fabric::unplug(const std::string& port_uuid) {
  std::lock_guard lock(mutex_);
  auto it = ports_.find(port_uuid);
  if (it == ports_.end()) return {};
  PortDef p = it->second;
  gone_ports_[port_uuid] = p;
  ports_.erase(it);
  if (auto s = applyFlowsLocked(); !s) return s;
  Status cleaned = cleanupLocked();
  if (gone_ports_.contains(port_uuid)) return cleaned;
  auto n = networks_.find(p.network_uuid);
  if (n != networks_.end()) return ensureNetworkLocked(n->second);  // its DHCP host entry goes
  return {};
}

Status Fabric::cleanupLocked() {
  Status first;
  for (auto it = gone_ports_.begin(); it != gone_ports_.end();) {
    const PortDef& p = it->second;
    Status s = switch_.removePort(options_.bridge, p.name);
    if (s) s = options_.taps.remove(p.name);
    // Its address goes to the next port: no connection of this one may pass as established.
    const NetworkDef* n = nullptr;
    if (auto live = networks_.find(p.network_uuid); live != networks_.end()) n = &live->second;
    if (s && n != nullptr && !p.ip.empty()) s = flushZonesLocked(n->local_id, p.ip);
    if (s) {
      it = gone_ports_.erase(it);
    } else {
      if (first) first = s;
      ++it;
    }
  }
  for (auto it = gone_networks_.begin(); it != gone_networks_.end();) {
    const NetworkDef& n = it->second;
    Status s = switch_.removePort(options_.bridge, dhcpOuter(n));
    if (s && n.dhcp) s = dhcp_.remove(dhcpConfigLocked(n));
    // Its id goes to the next network: no connection of this one may pass as established.
    if (s) s = flushZonesLocked(n.local_id, "");
    if (s) {
      it = gone_networks_.erase(it);
    } else {
      if (first) first = s;
      ++it;
    }
  }
  return first;
}

Status Fabric::flushZonesLocked(int64_t network, const std::string& address) {
  for (int zone : {egressZone(network), ingressZone(network)}) {
    if (auto s = flows_.flushZone(zone, address); !s) return s;
  }
  return {};
}

Status Fabric::setGroups(std::vector<FlowGroup> groups) {
  std::lock_guard lock(mutex_);
  if (groups == groups_) return {};  // a cluster member is told of every change, its own too
  groups_ = std::move(groups);
  return applyFlowsLocked();
}

Status Fabric::setRemotePorts(std::vector<PortDef> ports) {
  std::lock_guard lock(mutex_);
  std::sort(ports.begin(), ports.end(),
            [](const PortDef& a, const PortDef& b) { return a.uuid < b.uuid; });
  if (ports == remote_ports_) return {};
  remote_ports_ = std::move(ports);
  return applyFlowsLocked();
}

void Fabric::reconcilePortsLocked(const std::string& bridge,
                                  const std::vector<SwitchPortState>& listed,
                                  const std::map<std::string, SwitchPort>& wanted,
                                  CheckReport& report,
                                  const std::set<std::string>& present_enough) {
  std::map<std::string, const SwitchPortState*> actual;
  for (const auto& s : listed) actual[s.port.name] = &s;
  for (const auto& [name, want] : wanted) {
    auto a = actual.find(name);
    if (a != actual.end() && (present_enough.contains(name) || a->second->port == want)) {
      continue;
    }
    if (auto s = switch_.ensurePort(bridge, want); !s) {
      report.errors.push_back("port " + name + ": " + s.error().describe());
      continue;
    }
    report.changes.push_back("port " + name + (a == actual.end() ? " re-added" : " corrected"));
  }
  for (const auto& [name, a] : actual) {
    const auto& ids = a->port.external_ids;
    auto owner = ids.find("qiao-bridge");
    const bool ours = isQiaoPort(*a) && (owner == ids.end() || owner->second == options_.bridge);
    if (ours && !wanted.contains(name)) {
      if (auto s = switch_.removePort(bridge, name); !s) {
        report.errors.push_back("stale port " + name + ": " + s.error().describe());
        continue;
      }
      report.changes.push_back("stale port " + name + " removed");
    }
  }
}

Result<CheckReport> Fabric::check() {
  std::lock_guard lock(mutex_);
  ++counters_.checks;
  auto report = checkLocked();
  if (report && !report->clean()) {
    ++counters_.repairs;
    for (const auto& c : report->changes) log_.warn("network drift repaired", {{"change", c}});
  }
  if (report && report->errors != last_errors_) {
    // Each distinct failure once, not every second.
    for (const auto& e : report->errors) {
      log_.error("network repair failed; will retry", {{"error", e}});
    }
    last_errors_ = report->errors;
  }
  return report;
}

Result<CheckReport> Fabric::checkLocked() {
  CheckReport report;
  auto listed = switch_.listPorts(options_.bridge);
  if (!listed && listed.error().code == ErrorCode::kNotFound) {
    bridge_ready_ = false;
    if (auto s = ensureBridgeLocked(); !s) return std::unexpected(s.error());
    report.changes.push_back("bridge " + options_.bridge + " created");
    installed_.clear();
    listed = switch_.listPorts(options_.bridge);
  }
  if (!listed) return std::unexpected(listed.error());
  bridge_ready_ = true;

  std::map<std::string, SwitchPort> wanted;
  for (const auto& [_, n] : networks_) {
    if (n.dhcp) wanted[dhcpOuter(n)] = switchPortOf(n);
  }
  for (const auto& [_, p] : ports_) wanted[p.name] = switchPortOf(p);
  if (!options_.vlan_uplink.empty()) wanted[uplinkPort().name] = uplinkPort();
  for (auto& t : tunnelPorts()) wanted[t.name] = std::move(t);

  // One item that cannot be repaired never keeps the others (and the flows) from being.
  auto failed = [&](const std::string& what, const Status& s) {
    report.errors.push_back(what + ": " + s.error().describe());
  };
  // Devices first: a tap gone with a host reboot, a DHCP server that died, what removed
  // networks and ports left behind.
  for (const auto& [_, p] : ports_) {
    if (!options_.taps.exists(p.name)) {
      if (auto s = ensurePortLocked(p); !s) {
        failed("tap " + p.name, s);
        continue;
      }
      report.changes.push_back("tap " + p.name + " re-created");
    }
  }
  for (const auto& [_, n] : networks_) {
    if (n.dhcp && (!dhcp_.running(n.uuid) || !linkExists(dhcpOuter(n)))) {
      if (auto s = ensureNetworkLocked(n); !s) {
        failed("DHCP server of network " + n.tenant + "/" + n.name, s);
        continue;
      }
      report.changes.push_back("DHCP server of network " + n.tenant + "/" + n.name + " restarted");
    }
  }
  if (!gone_ports_.empty() || !gone_networks_.empty()) {
    if (auto s = cleanupLocked(); !s) failed("cleaning up removed ports and networks", s);
  }
  if (!gone_tunnels_.empty()) {
    if (auto s = removeGoneTunnelsLocked(); !s) failed("removing the tunnels of peers gone", s);
  }
  if (!tunnel_peers_known_) {
    // Peers not known yet (a restart, before membership answered): the tunnels there stay as
    // they are until setTunnelPeers() says which to keep.
    std::erase_if(*listed, [](const SwitchPortState& s) {
      auto role = s.port.external_ids.find("qiao-role");
      return role != s.port.external_ids.end() && role->second == "tunnel";
    });
  }
  reconcilePortsLocked(options_.bridge, *listed, wanted, report);
  // The provider bridge of the vlan networks: the NIC and the patch to this bridge.
  if (!options_.vlan_uplink.empty()) {
    auto provider = switch_.listPorts(options_.vlan_bridge);
    if (!provider && provider.error().code == ErrorCode::kNotFound) {
      if (auto s = switch_.ensureBridge(options_.vlan_bridge, options_.datapath_type, "standalone");
          !s) {
        failed("provider bridge " + options_.vlan_bridge, s);
      } else {
        report.changes.push_back("provider bridge " + options_.vlan_bridge + " created");
        provider = switch_.listPorts(options_.vlan_bridge);
      }
    }
    if (provider) {
      // The NIC may be the operator's (its type, options, their tools' external_ids): it is
      // added when missing, never rewritten.
      reconcilePortsLocked(options_.vlan_bridge, *provider, providerPorts(), report,
                           {options_.vlan_uplink});
    } else if (provider.error().code != ErrorCode::kNotFound) {
      report.errors.push_back("provider bridge " + options_.vlan_bridge + ": " +
                              provider.error().describe());
    }
  }

  auto dumped = flows_.dump(options_.bridge);
  if (!dumped) return std::unexpected(dumped.error());
  // Replaced when the switch lost or changed some (a wipe, a vswitchd restart, a hand edit), and
  // when the model changed since the last install (a change made while OVS was down).
  if (installed_.empty() || *dumped != installed_ || wantedFlowsLocked() != installed_from_) {
    size_t missing = 0, extra = 0;
    for (const auto& f : installed_) {
      if (!std::binary_search(dumped->begin(), dumped->end(), f)) ++missing;
    }
    for (const auto& f : *dumped) {
      if (!std::binary_search(installed_.begin(), installed_.end(), f)) ++extra;
    }
    const bool first = installed_.empty();
    if (auto s = applyFlowsLocked(/*incremental=*/false); !s) return std::unexpected(s.error());
    if (!first) {
      report.changes.push_back("flows replaced (" + std::to_string(missing) + " missing, " +
                               std::to_string(extra) + " changed or foreign)");
    }
  }
  return report;
}

}  // namespace qiao
