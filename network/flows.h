// Qiao's OpenFlow pipeline on the integration bridge, and how it is installed.
//
// Every flow carries Qiao's cookie, so Qiao's flows are listed, compared and replaced without
// touching anyone else's. The pipeline switches by what Qiao knows (every port's MAC), not by
// learning:
//   table 0  in_port: anti-spoofing (only the port's MAC and IPs leave it, ARP included; DHCP
//            server replies and everything IPv6 from guests are dropped), tags the packet with
//            its network (reg6)
//   table 10 egress of IP from a guest: DHCP to the server passes; the rest through conntrack
//            (zone = the network) to table 11
//   table 11 established and related pass; a new connection passes (and is committed) when a
//            rule of the sending port's security groups allows it; the rest is dropped
//   table 20 L2 by (network, destination MAC) -> reg7 = output port; ARP broadcasts and the
//            DHCP server's flood the network's ports, a guest's DHCP broadcasts go to the
//            server only, other broadcast and multicast is dropped
//   table 30 ingress: to and from Qiao's own (DHCP) ports and ARP pass; IP to a guest
//            through conntrack (a zone of its own: reg5 = network | 0x8000) to table 31;
//            anything else is dropped
//   table 31 established and related pass; new connections need an ingress rule of the
//            receiving port's groups; the rest is dropped
//   table 21 (tunnel networks) unicast to a MAC not on this bridge: the tunnel that taught
//            it (learned flows), else every tunnel of the network's type
// Unknown ports, networks and destinations are dropped (the bridge is fail_mode=secure).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace qiao {

inline constexpr uint64_t kQiaoCookie = 0x51a0000000000001ULL;
// Flows the bridge learns from tunnels (where a remote MAC lives); never dumped or replaced as
// Qiao's: they age out (kLearnedIdleSeconds) or go with the flow that learned them.
inline constexpr uint64_t kQiaoLearnedCookie = 0x51a0000000000002ULL;
inline constexpr int kLearnedIdleSeconds = 300;

// A port as the pipeline needs it. MACs and IPs are Qiao's own canonical text (ipam.h).
struct FlowPort {
  std::string name;
  int64_t ofport = 0;
  int64_t network = 0;  // the network's local id (reg6), > 0
  std::string mac;
  std::vector<std::string> ips;
  bool trusted = false;             // Qiao's own (DHCP): no anti-spoofing, no security groups
  std::vector<std::string> groups;  // keys of its security groups
  // A port on another host (ofport 0): only its addresses count, as a member of its groups
  // (the remote_group rules of this host's ports).
  bool remote = false;
  bool operator==(const FlowPort&) const = default;
};

// One rule of a security group, as validated by the node (canonical CIDRs, ports in range).
struct FlowRule {
  bool ingress = true;
  std::string protocol = "any";    // any | tcp | udp | icmp
  int port_min = 0, port_max = 0;  // tcp/udp destination ports; 0 = all
  std::string remote_cidr;         // "" = anywhere (unless remote_group)
  std::string remote_group;        // key of a group: the addresses of its ports on the same network
  bool operator==(const FlowRule&) const = default;
};

struct FlowGroup {
  std::string key;  // "<tenant>/<name>"
  std::vector<FlowRule> rules;
  bool operator==(const FlowGroup&) const = default;
};

// The host NIC that carries the vlan networks to the physical network: frames tagged with a
// network's segment id come in as that network's, and the network's broadcasts and frames to
// MACs that are not on the bridge go out tagged.
struct FlowUplink {
  int64_t ofport = 0;                // 0 = none
  std::map<int64_t, int64_t> vlans;  // network local id -> VLAN id
  bool operator==(const FlowUplink&) const = default;
};

// The tunnels to the other hosts that carry the vxlan and geneve networks: one port per peer
// and type, with key=flow, so a port carries every network of its type, told apart by the
// tunnel id (the network's segment id). A frame from a tunnel teaches the bridge where its
// source MAC lives (a learned flow); unicast to a MAC not on the bridge goes to the tunnel that
// taught it, or to every tunnel of the type while unknown, and ARP broadcasts flood to every
// tunnel. IP that leaves by a tunnel is committed in the network's ingress zone, as on the
// uplink, so that the answers pass. What comes from a tunnel never goes into another tunnel
// (the peers form a full mesh) and never reaches a DHCP server (each host serves its guests).
struct FlowTunnel {
  int64_t ofport = 0;
  std::string type;  // vxlan | geneve
  bool operator==(const FlowTunnel&) const = default;
};

struct FlowTunnels {
  std::vector<FlowTunnel> ports;
  std::map<int64_t, std::pair<std::string, int64_t>> networks;  // local id -> (type, tunnel id)
  bool operator==(const FlowTunnels&) const = default;
};

// The flows of the whole bridge, in ovs-ofctl's syntax, each with Qiao's cookie. Deterministic
// (the same ports and groups give the same lines).
std::vector<std::string> buildFlows(const std::vector<FlowPort>& ports,
                                    const std::vector<FlowGroup>& groups = {},
                                    const FlowUplink& uplink = {}, const FlowTunnels& tunnels = {});

// The conntrack zones of a network: its egress pass and its ingress pass.
inline int egressZone(int64_t network) { return static_cast<int>(network & 0x7fff); }
inline int ingressZone(int64_t network) { return static_cast<int>((network & 0x7fff) | 0x8000); }

// The lines of an ovs-ofctl flow file that turn `from` into `to`: "delete_strict" for the
// flows whose table, priority and match are gone, "add" (which replaces a flow of the same
// match) for the new and changed ones. Empty when nothing changes.
std::string flowDiff(const std::vector<std::string>& from, const std::vector<std::string>& to);

// The (value, mask) pairs that together match exactly the ports [min, max].
std::vector<std::pair<int, int>> portRangeMasks(int min, int max);

// Installs and reads flows with ovs-ofctl, flushes conntrack zones with ovs-appctl (argv and
// stdin, never a shell).
class FlowInstaller {
 public:
  virtual ~FlowInstaller() = default;
  // Replaces all of Qiao's flows on the bridge by `flows` in one OpenFlow bundle: other
  // cookies' flows are untouched, and no packet ever sees a half-replaced table.
  virtual Status replace(const std::string& bridge, const std::vector<std::string>& flows) = 0;
  // Changes Qiao's flows from `from` (what is installed) to `to` in one bundle that carries
  // only the difference: a plug touches its port's flows and its network's, not the table.
  virtual Status update(const std::string& bridge, const std::vector<std::string>& from,
                        const std::vector<std::string>& to) = 0;
  // Forgets every conntrack entry of a zone (a network's, before its id is given to another),
  // or only those from or to `address` (an unplugged port's, before the address is given to
  // another port: no connection of the old one may pass as established to the new one).
  virtual Status flushZone(int zone, const std::string& address = {}) = 0;
  // Qiao's flows as the switch has them now, without statistics, sorted.
  virtual Result<std::vector<std::string>> dump(const std::string& bridge) = 0;
};

struct OfctlOptions {
  std::string program = "ovs-ofctl";
  std::string appctl = "ovs-appctl";
  int timeout_ms = 10000;
};

std::unique_ptr<FlowInstaller> makeOfctlInstaller(const OfctlOptions& options);

}  // namespace qiao
