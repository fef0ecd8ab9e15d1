#include "network/flows.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "base/process.h"

namespace qiao {

namespace {

constexpr int kTableClassify = 0;
constexpr int kTableEgress = 10;
constexpr int kTableL2 = 20;
constexpr int kTableIngress = 30;

std::string head(int table, int priority) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "cookie=0x%" PRIx64 ",table=%d,priority=%d", kQiaoCookie, table,
                priority);
  return buf;
}

std::string cookieMatch() {
  char buf[64];
  std::snprintf(buf, sizeof buf, "cookie=0x%" PRIx64 "/-1", kQiaoCookie);
  return buf;
}

Error ofctlError(const std::string& what, const ProcessResult& r) {
  const std::string err = r.message();
  // ovs-ofctl cannot reach a bridge that is not there or a vswitchd that is down.
  bool down = err.find("is not a bridge or a socket") != std::string::npos ||
              err.find("Connection refused") != std::string::npos ||
              err.find("No such file") != std::string::npos;
  return Error{down ? ErrorCode::kUnavailable : ErrorCode::kInternal, "ovs", what + ": " + err};
}

class OfctlInstaller : public FlowInstaller {
 public:
  explicit OfctlInstaller(OfctlOptions options) : options_(std::move(options)) {}

  Status replace(const std::string& bridge, const std::vector<std::string>& flows) override {
    std::string text = "delete " + cookieMatch() + "\n";
    for (const auto& f : flows) text += "add " + f + "\n";
    auto r = run({"--bundle", "add-flows", bridge, "-"}, text);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) return std::unexpected(ofctlError("installing flows on " + bridge, *r));
    return {};
  }

  Status update(const std::string& bridge, const std::vector<std::string>& from,
                const std::vector<std::string>& to) override {
    const std::string text = flowDiff(from, to);
    if (text.empty()) return {};
    auto r = run({"--bundle", "add-flows", bridge, "-"}, text);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) return std::unexpected(ofctlError("updating flows on " + bridge, *r));
    return {};
  }

  Status flushZone(int zone, const std::string& address) override {
    const std::string z = "zone=" + std::to_string(zone);
    std::vector<std::vector<std::string>> calls;
    if (address.empty()) {
      calls.push_back({z});
    } else {
      // A partial tuple: the entries whose original direction is from, then to, the address.
      calls.push_back({z, "ct_nw_src=" + address});
      calls.push_back({z, "ct_nw_dst=" + address});
    }
    for (const auto& args : calls) {
      std::vector<std::string> argv = {options_.appctl, "dpctl/flush-conntrack"};
      argv.insert(argv.end(), args.begin(), args.end());
      auto r = runTool(std::move(argv), {});
      if (!r) return std::unexpected(r.error());
      if (r->exit_code != 0) return std::unexpected(ofctlError("flushing conntrack " + z, *r));
    }
    return {};
  }

  Result<std::vector<std::string>> dump(const std::string& bridge) override {
    auto r = run({"--no-stats", "dump-flows", bridge, cookieMatch()}, {});
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) return std::unexpected(ofctlError("reading flows of " + bridge, *r));
    std::vector<std::string> lines;
    std::istringstream in(r->out);
    for (std::string line; std::getline(in, line);) {
      size_t b = line.find_first_not_of(' ');
      if (b == std::string::npos || line.compare(b, 7, "cookie=") != 0) continue;
      lines.push_back(line.substr(b));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

 private:
  // ovs-ofctl speaking OpenFlow 1.4.
  Result<ProcessResult> run(std::vector<std::string> args, std::string stdin_data) {
    std::vector<std::string> argv = {options_.program, "-O", "OpenFlow14"};
    argv.insert(argv.end(), args.begin(), args.end());
    return runTool(std::move(argv), std::move(stdin_data));
  }

  // One of OVS's tools; kUnavailable when it cannot be started.
  Result<ProcessResult> runTool(std::vector<std::string> argv, std::string stdin_data) {
    ProcessOptions p;
    p.argv = std::move(argv);
    p.stdin_data = std::move(stdin_data);
    p.timeout_ms = options_.timeout_ms;
    p.max_output_bytes = 64 << 20;
    auto r = runProcess(p);
    if (!r) {
      return makeError(ErrorCode::kUnavailable, "ovs",
                       "cannot run " + p.argv[0] + ": " + r.error().message);
    }
    return r;
  }

  OfctlOptions options_;
};

}  // namespace

namespace {

// "table=..,priority=..,<match>" of a flow of buildFlows(): between the cookie and actions.
std::string flowKey(const std::string& flow) {
  size_t start = flow.find(",table=");
  size_t end = flow.find(",actions=");
  if (start == std::string::npos || end == std::string::npos || end < start) return flow;
  return flow.substr(start + 1, end - start - 1);
}

}  // namespace

std::string flowDiff(const std::vector<std::string>& from, const std::vector<std::string>& to) {
  std::set<std::string> old_flows(from.begin(), from.end());
  std::set<std::string> new_flows(to.begin(), to.end());
  std::set<std::string> new_keys;
  for (const auto& f : to) new_keys.insert(flowKey(f));
  std::string text;
  for (const auto& f : from) {
    if (new_flows.contains(f) || new_keys.contains(flowKey(f))) continue;
    text += "delete_strict " + cookieMatch() + "," + flowKey(f) + "\n";
  }
  for (const auto& f : to) {
    if (!old_flows.contains(f)) text += "add " + f + "\n";
  }
  return text;
}

std::vector<std::pair<int, int>> portRangeMasks(int min, int max) {
  std::vector<std::pair<int, int>> out;
  if (min < 0 || max > 65535 || min > max) return out;
  // The largest aligned power-of-two block starting at `min` that stays within `max`, again.
  int64_t lo = min;
  while (lo <= max) {
    int64_t size = 1;
    while ((lo & (size * 2 - 1)) == 0 && lo + size * 2 - 1 <= max && size * 2 <= 65536) size *= 2;
    out.emplace_back(static_cast<int>(lo), static_cast<int>(0xffff & ~(size - 1)));
    lo += size;
  }
  return out;
}

namespace {

constexpr int kTableEgressCt = 11;
constexpr int kTableRemote = 21;
constexpr int kTableIngressCt = 31;
// Conntrack zones: a network's egress pass in zone <id>, its ingress pass in zone <id>|0x8000
// (reg5), so that a connection the sender's groups let out is not thereby let in.
const std::string kZone = "zone=NXM_NX_REG6[0..15]";
const std::string kIngressZone = "zone=NXM_NX_REG5[0..15]";
const std::string kToIngressZone =
    "move:NXM_NX_REG6[0..14]->NXM_NX_REG5[0..14],load:1->NXM_NX_REG5[15]";
// IP leaving the host (uplink, tunnel) is known to the network's ingress zone, so its answers
// pass the receiving guest's ingress tables.
const std::string kCommitIngress = kToIngressZone + ",ct(commit," + kIngressZone + ")";
// reg4 = 1: the frame came from a tunnel.
const std::string kFromTunnel = ",reg4=1";
const std::string kFromHere = ",reg4=0";

std::string hex(int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

// The matches of one rule's protocol and ports ("" for any IP), one per port block.
std::vector<std::string> protocolMatches(const FlowRule& r) {
  if (r.protocol == "icmp") return {",icmp"};
  if (r.protocol != "tcp" && r.protocol != "udp") return {",ip"};
  if (r.port_min == 0 && r.port_max == 0) return {"," + r.protocol};
  std::vector<std::string> out;
  for (const auto& [value, mask] : portRangeMasks(r.port_min, std::max(r.port_min, r.port_max))) {
    out.push_back("," + r.protocol + ",tp_dst=" +
                  (mask == 0xffff ? std::to_string(value) : hex(value) + "/" + hex(mask)));
  }
  return out;
}

}  // namespace

std::vector<std::string> buildFlows(const std::vector<FlowPort>& ports,
                                    const std::vector<FlowGroup>& groups, const FlowUplink& uplink,
                                    const FlowTunnels& tunnels) {
  const std::string l2 = "resubmit(," + std::to_string(kTableL2) + ")";
  std::vector<std::string> flows;
  // Everything not matched below is dropped.
  flows.push_back(head(kTableClassify, 0) + ",actions=drop");
  flows.push_back(head(kTableEgress, 0) + ",actions=" + l2);
  flows.push_back(head(kTableEgress, 10) +
                  ",ip,actions=ct(table=" + std::to_string(kTableEgressCt) + "," + kZone + ")");
  // A guest's DHCP requests reach the server whatever its groups say (broadcast here; to
  // the server's own address with its port below).
  flows.push_back(head(kTableEgress, 100) +
                  ",udp,nw_dst=255.255.255.255,tp_src=68,tp_dst=67,"
                  "actions=" +
                  l2);
  flows.push_back(head(kTableEgressCt, 0) + ",actions=drop");
  flows.push_back(head(kTableEgressCt, 200) + ",ct_state=-new+est-inv+trk,actions=" + l2);
  flows.push_back(head(kTableEgressCt, 200) + ",ct_state=-new+rel-inv+trk,actions=" + l2);
  flows.push_back(head(kTableL2, 0) + ",actions=drop");
  const std::string out = "output:NXM_NX_REG7[]";
  // To a guest: ARP passes, IP goes through its ingress groups, the rest is dropped.
  flows.push_back(head(kTableIngress, 0) + ",actions=drop");
  flows.push_back(head(kTableIngress, 5) + ",arp,actions=" + out);
  flows.push_back(head(kTableIngress, 10) + ",ip,actions=" + kToIngressZone +
                  ",ct(table=" + std::to_string(kTableIngressCt) + "," + kIngressZone + ")");
  flows.push_back(head(kTableIngressCt, 0) + ",actions=drop");
  flows.push_back(head(kTableIngressCt, 200) + ",ct_state=-new+est-inv+trk,actions=" + out);
  flows.push_back(head(kTableIngressCt, 200) + ",ct_state=-new+rel-inv+trk,actions=" + out);

  std::map<std::string, const FlowGroup*> group_by_key;
  for (const auto& g : groups) group_by_key[g.key] = &g;

  std::map<int64_t, std::vector<int64_t>> members;  // network -> ofports, in port order
  std::map<int64_t, std::vector<int64_t>> servers;  // network -> its trusted (DHCP) ports
  std::map<int64_t, std::vector<std::string>> server_macs;
  std::vector<FlowPort> sorted = ports;
  std::sort(sorted.begin(), sorted.end(),
            [](const FlowPort& a, const FlowPort& b) { return a.ofport < b.ofport; });
  // The addresses of a group's ports on one network (remote_group rules).
  auto groupAddresses = [&](const std::string& key, int64_t network) {
    std::vector<std::string> ips;
    for (const auto& q : sorted) {
      if (q.network != network || (q.ofport <= 0 && !q.remote)) continue;
      if (std::find(q.groups.begin(), q.groups.end(), key) == q.groups.end()) continue;
      ips.insert(ips.end(), q.ips.begin(), q.ips.end());
    }
    return ips;
  };
  for (const auto& p : sorted) {
    if (p.remote || p.ofport <= 0 || p.network <= 0) continue;
    const std::string port = std::to_string(p.ofport);
    const std::string in = ",in_port=" + port;
    const std::string tag = "load:" + std::to_string(p.network) + "->NXM_NX_REG6[]";
    const std::string to_l2 = tag + "," + l2;
    const std::string to_egress = tag + ",resubmit(," + std::to_string(kTableEgress) + ")";
    members[p.network].push_back(p.ofport);
    if (p.trusted) {
      servers[p.network].push_back(p.ofport);
      server_macs[p.network].push_back(p.mac);
      flows.push_back(head(kTableClassify, 200) + in + ",actions=" + to_l2);
      for (const auto& ip : p.ips) {
        flows.push_back(head(kTableEgress, 100) + ",udp,reg6=" + std::to_string(p.network) +
                        ",nw_dst=" + ip + ",tp_src=68,tp_dst=67,actions=" + l2);
      }
      // To and from Qiao's own ports, no security group applies.
      flows.push_back(head(kTableIngress, 200) + ",reg7=" + port + ",actions=" + out);
      flows.push_back(head(kTableIngress, 200) + in + ",actions=" + out);
    } else {
      const std::string src = in + ",dl_src=" + p.mac;
      // A guest answering DHCP, or speaking IPv6 (router advertisements), is dropped first.
      flows.push_back(head(kTableClassify, 300) + in + ",udp,tp_src=67,actions=drop");
      flows.push_back(head(kTableClassify, 300) + in + ",ipv6,actions=drop");
      for (const auto& ip : p.ips) {
        flows.push_back(head(kTableClassify, 200) + src + ",arp,arp_spa=" + ip +
                        ",arp_sha=" + p.mac + ",actions=" + to_l2);
        flows.push_back(head(kTableClassify, 200) + src + ",ip,nw_src=" + ip +
                        ",actions=" + to_egress);
      }
      // DHCP discover/request before the guest has its address.
      flows.push_back(head(kTableClassify, 200) + src +
                      ",udp,nw_src=0.0.0.0,tp_src=68,tp_dst=67,actions=" + to_l2);
      flows.push_back(head(kTableClassify, 100) + in + ",actions=drop");

      // Its security groups: new connections it may open (egress) and accept (ingress).
      const std::string commit_out = "ct(commit," + kZone + ")";
      // An accepted new connection is known to both zones: its answers leave through the
      // guest's egress tables (needed when it came from the uplink, where no egress pass
      // committed it).
      const std::string commit_in = "ct(commit," + kIngressZone + "),ct(commit," + kZone + ")";
      std::set<std::string> seen;  // two groups with the same rule give one flow
      for (const auto& key : p.groups) {
        auto g = group_by_key.find(key);
        if (g == group_by_key.end()) continue;
        for (const auto& r : g->second->rules) {
          std::vector<std::string> remotes;
          if (!r.remote_group.empty()) {
            remotes = groupAddresses(r.remote_group, p.network);
            if (remotes.empty()) continue;  // an empty group allows nothing
          } else if (!r.remote_cidr.empty() && r.remote_cidr != "0.0.0.0/0") {
            remotes = {r.remote_cidr};
          } else {
            remotes = {""};
          }
          for (const auto& proto : protocolMatches(r)) {
            for (const auto& remote : remotes) {
              std::string flow;
              if (r.ingress) {
                flow = head(kTableIngressCt, 100) + ",ct_state=+new-est-inv+trk,reg7=" + port +
                       proto + (remote.empty() ? "" : ",nw_src=" + remote) +
                       ",actions=" + commit_in + ",output:" + port;
              } else {
                flow = head(kTableEgressCt, 100) + ",ct_state=+new-est-inv+trk" + in + proto +
                       (remote.empty() ? "" : ",nw_dst=" + remote) + ",actions=" + commit_out +
                       "," + l2;
              }
              if (seen.insert(flow).second) flows.push_back(std::move(flow));
            }
          }
        }
      }
    }
    flows.push_back(head(kTableL2, 100) + ",reg6=" + std::to_string(p.network) +
                    ",dl_dst=" + p.mac + ",actions=load:" + port + "->NXM_NX_REG7[],resubmit(," +
                    std::to_string(kTableIngress) + ")");
  }
  // The uplink: tagged frames in, untagged and given their network; out tagged.
  std::map<int64_t, std::string> to_uplink;  // network -> actions
  if (uplink.ofport > 0) {
    const std::string u = std::to_string(uplink.ofport);
    for (const auto& [network, vlan] : uplink.vlans) {
      const std::string net = std::to_string(network);
      flows.push_back(head(kTableClassify, 200) + ",in_port=" + u +
                      ",dl_vlan=" + std::to_string(vlan) + ",actions=strip_vlan,load:" + net +
                      "->NXM_NX_REG6[]," + l2);
      to_uplink[network] = "mod_vlan_vid:" + std::to_string(vlan) + ",output:" + u;
      // Unicast to a MAC not on this bridge leaves by the uplink. IP that leaves (the guest's
      // egress groups let it) is committed in the network's ingress zone too: the answers come
      // back through the receiving guest's ingress tables, and must be known there.
      flows.push_back(head(kTableL2, 10) + ",reg6=" + net + ",actions=" + to_uplink[network]);
      flows.push_back(head(kTableL2, 11) + ",ip,reg6=" + net + ",actions=" + kCommitIngress + "," +
                      to_uplink[network]);
      members[network];  // its broadcasts reach the uplink even with no local port
    }
    flows.push_back(head(kTableClassify, 100) + ",in_port=" + u + ",actions=drop");
    // What comes from the uplink is filtered by the receiving guest's ingress groups.
  }
  // The tunnels: a frame with a known tunnel id gets its network, is marked as from a tunnel
  // and teaches where its source MAC lives; anything else from a tunnel is dropped. What a
  // flow learned goes with it (delete_learned): a network removed, a peer's port renumbered,
  // and its MACs are forgotten before its id or port can mean something else.
  // "a,b": items of an action list, empty ones left out.
  auto join = [](std::string a, const std::string& b) {
    if (!b.empty()) a += (a.empty() ? "" : ",") + b;
    return a;
  };
  std::map<int64_t, std::string> tunnel_outputs;  // network -> "output:T1,output:T2"
  char learn[200];
  std::snprintf(learn, sizeof learn,
                "learn(table=%d,idle_timeout=%d,priority=100,cookie=0x%" PRIx64
                ",delete_learned,NXM_NX_REG6[],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
                "output:NXM_OF_IN_PORT[])",
                kTableRemote, kLearnedIdleSeconds, kQiaoLearnedCookie);
  for (const auto& t : tunnels.ports) {
    if (t.ofport <= 0) continue;
    const std::string in = ",in_port=" + std::to_string(t.ofport);
    flows.push_back(head(kTableClassify, 100) + in + ",actions=drop");
    flows.push_back(head(kTableClassify, 300) + in + ",udp,tp_src=67,actions=drop");
    for (const auto& [network, type_id] : tunnels.networks) {
      if (type_id.first != t.type || network <= 0) continue;
      flows.push_back(head(kTableClassify, 200) + in + ",tun_id=" + std::to_string(type_id.second) +
                      ",actions=load:" + std::to_string(network) +
                      "->NXM_NX_REG6[],load:1->NXM_NX_REG4[]," + learn + "," + l2);
      tunnel_outputs[network] = join(tunnel_outputs[network], "output:" + std::to_string(t.ofport));
    }
  }
  // Unicast from here to a MAC not on the bridge: tagged with the tunnel id, then table 21.
  std::map<int64_t, std::string> to_tunnels;  // network -> the flood actions into its tunnels
  for (const auto& [network, outputs] : tunnel_outputs) {
    const std::string net = ",reg6=" + std::to_string(network);
    const std::string tag =
        "set_field:" + std::to_string(tunnels.networks.at(network).second) + "->tun_id";
    const std::string remote = "resubmit(," + std::to_string(kTableRemote) + ")";
    to_tunnels[network] = tag + "," + outputs;
    flows.push_back(head(kTableL2, 5) + net + kFromHere + ",actions=" + tag + "," + remote);
    flows.push_back(head(kTableL2, 6) + ",ip" + net + kFromHere + ",actions=" + kCommitIngress +
                    "," + tag + "," + remote);
    flows.push_back(head(kTableRemote, 1) + net + ",actions=" + outputs);
    members[network];  // its broadcasts reach the tunnels even with no local port
  }
  if (!to_tunnels.empty()) flows.push_back(head(kTableRemote, 0) + ",actions=drop");

  // Broadcast and multicast never skip an ingress group: ARP floods the network (and its
  // uplink); a guest's DHCP broadcasts go to the DHCP server only; the DHCP server's own
  // broadcasts flood; any other broadcast or multicast is dropped.
  // A tunnel's ARP floods the network's ports here but not its DHCP servers, and nothing of a
  // DHCP server goes into a tunnel.
  const std::string mcast = ",dl_dst=01:00:00:00:00:00/01:00:00:00:00:00";
  for (const auto& [network, ofports] : members) {
    const std::string net = ",reg6=" + std::to_string(network);
    const std::vector<int64_t>& network_servers = servers[network];
    std::string flood, guests;  // the ports here (and uplink); the same without DHCP servers
    for (int64_t o : ofports) {
      const std::string out_o = "output:" + std::to_string(o);
      flood = join(flood, out_o);
      if (std::find(network_servers.begin(), network_servers.end(), o) == network_servers.end()) {
        guests = join(guests, out_o);
      }
    }
    if (auto u = to_uplink.find(network); u != to_uplink.end()) {
      flood = join(flood, u->second);
      guests = join(guests, u->second);
    }
    auto t = to_tunnels.find(network);
    const std::string everywhere = join(flood, t == to_tunnels.end() ? "" : t->second);
    if (everywhere.empty()) continue;
    flows.push_back(head(kTableL2, 50) + net + ",arp" + mcast + ",actions=" + everywhere);
    if (t != to_tunnels.end()) {
      flows.push_back(head(kTableL2, 51) + net + kFromTunnel + ",arp" + mcast +
                      ",actions=" + (guests.empty() ? "drop" : guests));
    }
    std::string to_servers;
    for (int64_t d : network_servers) {
      const std::string in_d = ",in_port=" + std::to_string(d);
      to_servers = join(to_servers, "output:" + std::to_string(d));
      if (!flood.empty()) {
        flows.push_back(head(kTableL2, 55) + net + in_d + mcast + ",actions=" + flood);
      }
      if (t != to_tunnels.end()) {
        flows.push_back(head(kTableL2, 7) + net + in_d + ",actions=drop");
      }
    }
    if (t != to_tunnels.end()) {
      for (const auto& mac : server_macs[network]) {
        flows.push_back(head(kTableL2, 101) + net + kFromTunnel + ",dl_dst=" + mac +
                        ",actions=drop");
      }
    }
    if (!to_servers.empty()) {
      flows.push_back(head(kTableL2, 52) + net + ",udp,tp_src=68,tp_dst=67" + mcast +
                      ",actions=" + to_servers);
      if (t != to_tunnels.end()) {  // another host's guest asks its own server only
        flows.push_back(head(kTableL2, 53) + net + kFromTunnel + ",udp,tp_src=68,tp_dst=67" +
                        mcast + ",actions=drop");
      }
    }
    flows.push_back(head(kTableL2, 40) + net + mcast + ",actions=drop");
  }
  return flows;
}

std::unique_ptr<FlowInstaller> makeOfctlInstaller(const OfctlOptions& options) {
  return std::make_unique<OfctlInstaller>(options);
}

}  // namespace qiao
