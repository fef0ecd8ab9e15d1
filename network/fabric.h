// Fabric: this host's tenant networks as they should be on the switch - the integration
// bridge, a tap and an OVS port per guest NIC, a DHCP server per network, and Qiao's OpenFlow
// pipeline (flows.h) - and the loop that keeps them so. The node gives it the desired state
// (from its store) and every change to it; the fabric applies each change at once, and its
// check (every check_interval_ms, and at once when OVS reports a change or comes back) finds
// what drifted - a flow wiped or edited by hand, ovs-vswitchd restarted with an empty table, a
// port deleted, a dnsmasq dead - and repairs it, logging what it changed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "network/dhcp.h"
#include "network/flows.h"
#include "network/ipam.h"
#include "network/switch.h"

namespace qiao {

struct NetworkDef {
  std::string uuid, tenant, name;
  std::string type = "vxlan";  // vlan networks reach the uplink, tagged with segment_id
  int64_t segment_id = 0;
  int64_t local_id = 0;  // > 0; the network's tag in the pipeline (reg6)
  Ipv4Subnet subnet;
  std::string gateway;  // "" = none
  std::vector<std::string> dns;
  int mtu = 1500;
  bool dhcp = true;
  std::string dhcp_ip, dhcp_mac;
  int64_t dhcp_ofport = 0;
  bool operator==(const NetworkDef&) const = default;
};

struct PortDef {
  std::string uuid, tenant, network_uuid;
  std::string vm_uuid, vm_name;
  std::string name;  // the tap
  std::string mac, ip;
  int64_t ofport = 0;
  std::vector<std::string> groups;  // keys of its security groups ("<tenant>/<name>")
  bool operator==(const PortDef&) const = default;
};

// The host devices behind the ports (netdev.h by default; unit tests give their own).
struct TapOps {
  std::function<bool(const std::string&)> exists;
  std::function<Status(const std::string&, int)> ensure;
  std::function<Status(const std::string&)> remove;
  static TapOps host();
};

struct FabricOptions {
  std::string bridge = "br-int";
  std::string datapath_type = "netdev";
  int check_interval_ms = 1000;
  TapOps taps = TapOps::host();
  // The host NIC of the vlan networks ("" = none), on the provider bridge vlan_bridge (made
  // standalone, a learning switch, when missing), which a patch port pair joins to the
  // bridge: qpi-<vlan_bridge> there (OpenFlow port uplink_ofport, below the ports Qiao numbers
  // for guests), qpp-<bridge> on the provider bridge.
  std::string vlan_uplink;
  std::string vlan_bridge = "br-vlan";
  int64_t uplink_ofport = 10;
  // This host's underlay address and the other hosts' ("" / none = no tunnels): a vxlan and a
  // geneve port to each peer, named qvx-/qgn-<the peer's address in hex>, on OpenFlow ports
  // first_tunnel_ofport + 2 * slot (vxlan) and + 1 (geneve), slot < kMaxTunnelPeers. The
  // peers given here take slots 0, 1, ... in order; setTunnelPeers() changes the set later.
  std::string tunnel_ip;
  std::vector<std::string> tunnel_peers;
  int64_t first_tunnel_ofport = 20;
  // The peers come and go at runtime (a cluster member: its membership gives them): vxlan and
  // geneve networks reach other hosts whenever tunnel_ip is set, even while no peer is known;
  // the tunnel ports on the switch (a previous run's) are left alone until the first
  // setTunnelPeers().
  bool dynamic_tunnel_peers = false;
};

struct CheckReport {
  std::vector<std::string> changes;  // what was repaired, one line each
  std::vector<std::string> errors;   // what could not be (tried again by the next check)
  bool clean() const { return changes.empty(); }
};

class Fabric {
 public:
  Fabric(FabricOptions options, Switch& sw, FlowInstaller& flows, DhcpServers& dhcp);
  ~Fabric();
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;

  // The whole desired state (at start, from the store). Applied by the first check.
  void load(std::vector<NetworkDef> networks, std::vector<PortDef> ports,
            std::vector<FlowGroup> groups = {});
  // Starts the check loop; stop() ends it.
  void start();
  void stop();

  // Each applies the change now (kUnavailable when OVS is down: the change is kept and the
  // check applies it once OVS is back). A removed network or port leaves the model at once;
  // what of it cannot be removed from the host now is removed by a later check.
  Status addNetwork(const NetworkDef& network);
  Status removeNetwork(const std::string& uuid);
  Status plug(const PortDef& port);
  Status unplug(const std::string& port_uuid);
  // Every security group, after one changed: the flows of all their ports are replaced in one
  // bundle.
  Status setGroups(std::vector<FlowGroup> groups);
  // The ports of the VMs on other hosts (a cluster's), as a whole set: never plugged here, their
  // addresses are members of their groups for this host's remote_group rules (on the networks
  // this host carries).
  Status setRemotePorts(std::vector<PortDef> ports);
  // The other hosts to tunnel to, as a whole set (order and repeats do not matter): the ports
  // of new peers are added (on the slot their port already had on the switch when free, as
  // after a restart, else the lowest free one), the ports of peers gone removed, and the ports
  // of peers that stay are not touched. Idempotent. kInvalidArgument, changing nothing, when
  // an address is not a host's unicast IPv4 address in dotted-quad form (as the config checks
  // network.tunnel_peers), is this host's tunnel_ip, or there are more than kMaxTunnelPeers;
  // kConflict without a tunnel_ip. Like the others, kUnavailable when OVS is down: the new set is
  // kept and applied by the check.
  Status setTunnelPeers(const std::vector<std::string>& peers);
  std::vector<std::string> tunnelPeers() const;  // sorted
  static constexpr size_t kMaxTunnelPeers = 40;

  // One full check and repair, now.
  Result<CheckReport> check();
  // Whether networks of `type` reach other hosts from here (vxlan and geneve: tunnel peers
  // configured; vlan: an uplink): then a segment id means the same network on every host.
  bool reachesOtherHosts(const std::string& type) const;
  // Names of the DHCP veth pair of a network ("qd-<8 hex>", "qd-<8 hex>-n").
  static std::string dhcpOuter(const NetworkDef& n) { return "qd-" + n.uuid.substr(0, 8); }
  static std::string dhcpInner(const NetworkDef& n) { return dhcpOuter(n) + "-n"; }
  // Flows, checks and repairs done since start (for metrics and tests).
  struct Counters {
    int64_t checks = 0, repairs = 0, flow_installs = 0;
  };
  Counters counters() const;

 private:
  // mutex_ held by all of these.
  // The bridge in the database and made by ovs-vswitchd (answering OpenFlow).
  Status ensureBridgeLocked();
  std::vector<std::string> wantedFlowsLocked() const;
  // Installs the wanted flows: only the difference from the last install when `incremental`
  // (and that install is known), else the whole table in one bundle.
  Status applyFlowsLocked(bool incremental = true);
  // Removes from the host what removed ports and networks left; the first error.
  Status cleanupLocked();
  // Forgets a network's connections, in both its zones: all of them, or those of `address`.
  Status flushZonesLocked(int64_t network, const std::string& address);
  Status ensureNetworkLocked(const NetworkDef& n);
  Status ensurePortLocked(const PortDef& p);
  DhcpConfig dhcpConfigLocked(const NetworkDef& n) const;
  SwitchPort switchPortOf(const PortDef& p) const;
  SwitchPort switchPortOf(const NetworkDef& n) const;
  SwitchPort uplinkPort() const;                            // the patch on the bridge
  std::map<std::string, SwitchPort> providerPorts() const;  // the NIC and patch on vlan_bridge
  // Makes the ports of Qiao's on `bridge` exactly `wanted` (missing or changed ones written,
  // unwanted ones of this daemon removed; others' ports untouched), noting what it did in
  // `report`. A name in `present_enough` is only added when missing: its owner's otherwise.
  void reconcilePortsLocked(const std::string& bridge, const std::vector<SwitchPortState>& listed,
                            const std::map<std::string, SwitchPort>& wanted, CheckReport& report,
                            const std::set<std::string>& present_enough = {});
  std::vector<SwitchPort> tunnelPorts() const;
  SwitchPort tunnelPort(const std::string& peer, int64_t slot, bool vxlan) const;
  // Removes the ports of peers gone (gone_tunnels_); the first error.
  Status removeGoneTunnelsLocked();
  Result<CheckReport> checkLocked();
  void loop();

  FabricOptions options_;
  Switch& switch_;
  FlowInstaller& flows_;
  DhcpServers& dhcp_;
  Logger log_{"network"};

  mutable std::mutex mutex_;
  std::map<std::string, NetworkDef> networks_;  // by uuid
  std::map<std::string, PortDef> ports_;        // by uuid
  std::vector<FlowGroup> groups_;
  std::vector<PortDef> remote_ports_;
  std::map<std::string, NetworkDef> gone_networks_;  // removed, not yet cleaned up
  std::map<std::string, PortDef> gone_ports_;
  // Tunnel peer -> its slot; a gone peer's slot stays taken until its ports are removed (a new
  // peer's port never asks for an OpenFlow port that the old one may still hold).
  std::map<std::string, int64_t> tunnel_peers_;
  std::map<std::string, int64_t> gone_tunnels_;
  bool tunnel_peers_known_;  // false until the first setTunnelPeers() with dynamic peers
  std::vector<std::string> last_errors_;
  std::vector<std::string> installed_;       // Qiao's flows as dumped after the last install
  std::vector<std::string> installed_from_;  // what that install was given
  bool bridge_ready_ = false;
  Counters counters_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool wake_now_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qiao
