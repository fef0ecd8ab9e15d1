// IPAM parsing and allocation, and the OpenFlow pipeline Qiao generates.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>

#include "network/flows.h"
#include "network/ipam.h"

namespace qiao {
namespace {

TEST(Ipam, ParsesAndFormatsAddresses) {
  auto ip = parseIpv4("10.0.0.254", "ip");
  ASSERT_TRUE(ip);
  EXPECT_EQ(formatIpv4(*ip), "10.0.0.254");
  for (const char* bad : {"", "10.0.0", "10.0.0.0.1", "10.0.0.256", "010.0.0.1", "10.0.0.-1",
                          "10.0.0.1 ", "a.b.c.d", "10..0.1", "10.0.0.1/24", "1e1.0.0.1"}) {
    auto r = parseIpv4(bad, "ip");
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(Ipam, SubnetsAreStrict) {
  auto s = parseSubnet("192.168.10.0/24", "subnet");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->str(), "192.168.10.0/24");
  EXPECT_TRUE(s->isHost(*parseIpv4("192.168.10.1", "")));
  EXPECT_FALSE(s->isHost(*parseIpv4("192.168.10.0", "")));
  EXPECT_FALSE(s->isHost(*parseIpv4("192.168.10.255", "")));
  EXPECT_FALSE(s->isHost(*parseIpv4("192.168.11.1", "")));
  auto host_bits = parseSubnet("10.0.0.5/24", "subnet");
  ASSERT_FALSE(host_bits);
  EXPECT_NE(host_bits.error().message.find("10.0.0.0/24"), std::string::npos);
  for (const char* bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/7", "10.0.0.0/30",
                          "127.0.0.0/8", "224.0.0.0/24", "0.0.0.0/8", "10.0.0.0/024",
                          "10.0.0.0/24\n"}) {
    EXPECT_FALSE(parseSubnet(bad, "subnet")) << bad;
  }
}

TEST(Ipam, Overlaps) {
  auto a = *parseSubnet("10.0.0.0/16", "");
  auto b = *parseSubnet("10.0.5.0/24", "");
  auto c = *parseSubnet("10.1.0.0/24", "");
  EXPECT_TRUE(a.overlaps(b));
  EXPECT_TRUE(b.overlaps(a));
  EXPECT_FALSE(a.overlaps(c));
  EXPECT_TRUE(c.overlaps(c));
}

TEST(Ipam, FirstFreeSkipsUsedAndReportsFull) {
  auto s = *parseSubnet("10.0.0.0/29", "");  // hosts .1 - .6
  std::set<uint32_t> used;
  for (int i = 0; i < 6; ++i) {
    auto ip = firstFreeIp(s, used);
    ASSERT_TRUE(ip);
    EXPECT_EQ(*ip, s.network + 1 + static_cast<uint32_t>(i));
    used.insert(*ip);
  }
  auto full = firstFreeIp(s, used);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kConflict);
  used.erase(s.network + 3);
  EXPECT_EQ(*firstFreeIp(s, used), s.network + 3);
}

TEST(Ipam, Macs) {
  EXPECT_EQ(*parseMac("02:AB:cd:00:11:22", "mac"), "02:ab:cd:00:11:22");
  for (const char* bad : {"", "02:ab:cd:00:11", "02-ab-cd-00-11-22", "01:00:5e:00:00:01",
                          "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:ab:cd:00:11:2g",
                          "02:ab:cd:00:11:22,actions=drop"}) {
    EXPECT_FALSE(parseMac(bad, "mac")) << bad;
  }
  std::string m = macFromSeed("port/x");
  EXPECT_TRUE(parseMac(m, "mac"));
  EXPECT_EQ(m.substr(0, 9), "02:51:a0:");
  EXPECT_EQ(m, macFromSeed("port/x"));
  EXPECT_NE(m, macFromSeed("port/y"));
}

std::vector<std::string> flowsWith(const std::vector<std::string>& flows, std::string_view part) {
  std::vector<std::string> out;
  for (const auto& f : flows) {
    if (f.find(part) != std::string::npos) out.push_back(f);
  }
  return out;
}

TEST(Flows, EveryFlowCarriesQiaosCookie) {
  auto flows = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false},
                           {"qd-n", 101, 1, "02:51:a0:00:00:02", {"10.0.0.2"}, true}});
  ASSERT_FALSE(flows.empty());
  for (const auto& f : flows) {
    EXPECT_EQ(f.rfind("cookie=0x51a0000000000001,", 0), 0u) << f;
    EXPECT_NE(f.find(",actions="), std::string::npos) << f;
  }
}

TEST(Flows, AntiSpoofingAllowsOnlyThePortsAddresses) {
  auto flows = buildFlows({{"qt-a", 100, 7, "02:51:a0:00:00:01", {"10.0.0.3"}, false}});
  auto in = flowsWith(flows, "in_port=100,");
  // Allowed: IP from its address, ARP for its address and MAC, DHCP before it has one.
  EXPECT_EQ(flowsWith(in, "dl_src=02:51:a0:00:00:01,ip,nw_src=10.0.0.3,").size(), 1u);
  EXPECT_EQ(flowsWith(in, "arp,arp_spa=10.0.0.3,arp_sha=02:51:a0:00:00:01").size(), 1u);
  EXPECT_EQ(flowsWith(in, "nw_src=0.0.0.0,tp_src=68,tp_dst=67").size(), 1u);
  // Dropped: DHCP answers and IPv6 (router advertisements) at higher priority, then the rest.
  auto drops = flowsWith(in, "actions=drop");
  EXPECT_EQ(flowsWith(drops, "priority=300,in_port=100,udp,tp_src=67").size(), 1u);
  EXPECT_EQ(flowsWith(drops, "priority=300,in_port=100,ipv6").size(), 1u);
  EXPECT_EQ(flowsWith(drops, "priority=100,in_port=100,actions=drop").size(), 1u);
  // Tagged with its network.
  for (const auto& f : flowsWith(in, "resubmit")) {
    EXPECT_NE(f.find("load:7->NXM_NX_REG6[]"), std::string::npos) << f;
  }
}

TEST(Flows, NetworksAreSwitchedApart) {
  // Two tenants, same subnet, same address: each MAC is reachable only within its network.
  auto flows = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false},
                           {"qt-b", 101, 1, "02:51:a0:00:00:02", {"10.0.0.4"}, false},
                           {"qt-c", 102, 2, "02:51:a0:00:00:03", {"10.0.0.3"}, false}});
  auto l2a = flowsWith(flows, "dl_dst=02:51:a0:00:00:01,");
  ASSERT_EQ(l2a.size(), 1u);
  EXPECT_NE(l2a[0].find("reg6=1,"), std::string::npos);
  auto l2c = flowsWith(flows, "dl_dst=02:51:a0:00:00:03,");
  ASSERT_EQ(l2c.size(), 1u);
  EXPECT_NE(l2c[0].find("reg6=2,"), std::string::npos);
  auto flood1 = flowsWith(flows, "reg6=1,arp,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00");
  ASSERT_EQ(flood1.size(), 1u);
  EXPECT_NE(flood1[0].find("output:100,output:101"), std::string::npos);
  EXPECT_EQ(flood1[0].find("output:102"), std::string::npos);
  auto flood2 = flowsWith(flows, "reg6=2,arp,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00");
  ASSERT_EQ(flood2.size(), 1u);
  EXPECT_EQ(flood2[0].find("output:100"), std::string::npos);
}

TEST(Flows, BroadcastNeverSkipsAnIngressGroup) {
  auto flows = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false},
                           {"qd-n", 101, 1, "02:51:a0:00:00:02", {"10.0.0.2"}, true}});
  const std::string mcast = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00";
  auto flooding = flowsWith(flows, mcast);
  // ARP floods; the DHCP server's broadcasts flood; a guest's DHCP goes to the server only;
  // anything else multicast is dropped.
  EXPECT_EQ(flowsWith(flooding, "priority=50,reg6=1,arp," + mcast + ",actions=output:100,output:101")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flooding, "priority=55,reg6=1,in_port=101").size(), 1u);
  EXPECT_EQ(flowsWith(flooding, "priority=52,reg6=1,udp,tp_src=68,tp_dst=67," + mcast +
                                    ",actions=output:101")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flooding, "priority=40,reg6=1," + mcast + ",actions=drop").size(), 1u);
  EXPECT_EQ(flooding.size(), 4u);
  // Non-IP, non-ARP frames to a guest are dropped at its ingress.
  EXPECT_EQ(flowsWith(flows, "table=30,priority=0,actions=drop").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=30,priority=5,arp,actions=output:NXM_NX_REG7[]").size(), 1u);
}

TEST(Flows, TrustedPortsAreNotFiltered) {
  auto flows = buildFlows({{"qd-n", 101, 3, "02:51:a0:00:00:02", {"10.0.0.2"}, true}});
  auto in = flowsWith(flows, "table=0,priority=200,in_port=101");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_NE(in[0].find("load:3->NXM_NX_REG6[]"), std::string::npos);
  EXPECT_TRUE(flowsWith(flows, "in_port=101,udp,tp_src=67").empty());
  // Its traffic, both ways, passes the ingress table without conntrack.
  EXPECT_EQ(flowsWith(flows, "table=30,priority=200,reg7=101,actions=output").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=30,priority=200,in_port=101,actions=output").size(), 1u);
}

// A port of another host (a cluster's, ofport 0): its address is a member of its groups for the
// remote_group rules of this host's ports on its network, and nothing else: no flows of its own.
TEST(Flows, ARemotePortIsAGroupMemberAndNothingMore) {
  FlowRule peers;  // ingress anything from the members of "t/db"
  peers.remote_group = "t/db";
  FlowRule db;  // t/db's own rule: a local member would get an ingress flow from it
  db.protocol = "tcp";
  db.port_min = 5432;
  db.port_max = 5432;
  const std::vector<FlowGroup> groups = {{"t/web", {peers}}, {"t/db", {db}}};
  const FlowPort web{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false, {"t/web"}};
  const FlowPort remote{"qt-r", 0, 1, "02:51:a0:00:00:07", {"10.0.0.7"}, false, {"t/db"}, true};
  // A member on another network of this host: not a peer of web's.
  const FlowPort other{"qt-s", 0, 2, "02:51:a0:00:00:08", {"10.0.0.8"}, false, {"t/db"}, true};
  // Not remote and not attached: no member at all.
  const FlowPort unplugged{"qt-u", 0, 1, "02:51:a0:00:00:09", {"10.0.0.9"}, false, {"t/db"}};

  auto alone = buildFlows({web}, groups);
  EXPECT_TRUE(flowsWith(alone, "table=31,priority=100,ct_state=+new-est-inv+trk,reg7=100").empty());
  EXPECT_EQ(buildFlows({web, unplugged}, groups), alone);

  auto flows = buildFlows({web, remote, other, unplugged}, groups);
  auto ingress = flowsWith(flows, "table=31,priority=100,ct_state=+new-est-inv+trk,reg7=100,");
  ASSERT_EQ(ingress.size(), 1u);
  EXPECT_NE(ingress[0].find(",ip,nw_src=10.0.0.7,"), std::string::npos) << ingress[0];
  EXPECT_NE(ingress[0].find(",output:100"), std::string::npos) << ingress[0];
  // That one flow is all the remote ports add: nothing in from or out to them, no L2 entry for
  // their MACs, no place in a flood, no rule of t/db applied to them.
  std::vector<std::string> added;
  std::vector<std::string> sorted_alone = alone, sorted_flows = flows;
  std::sort(sorted_alone.begin(), sorted_alone.end());
  std::sort(sorted_flows.begin(), sorted_flows.end());
  std::set_difference(sorted_flows.begin(), sorted_flows.end(), sorted_alone.begin(),
                      sorted_alone.end(), std::back_inserter(added));
  EXPECT_EQ(added, ingress);
  EXPECT_EQ(flows.size(), alone.size() + 1);
  for (const char* none : {"in_port=0,", "output:0", "reg7=0,", "02:51:a0:00:00:07",
                           "02:51:a0:00:00:08", "10.0.0.8", "tp_dst=5432"}) {
    EXPECT_TRUE(flowsWith(flows, none).empty()) << none;
  }
}

TEST(Flows, TunnelsCarryTheirNetworksOnlyAndNeverLoop) {
  // Network 1 (vxlan 100) and 2 (geneve 100: the same id in another type) and 3 (vxlan 300,
  // no local port); two peers, a vxlan and a geneve port each.
  FlowTunnels tunnels;
  tunnels.ports = {{20, "vxlan"}, {21, "geneve"}, {22, "vxlan"}, {23, "geneve"}};
  tunnels.networks = {{1, {"vxlan", 100}}, {2, {"geneve", 100}}, {3, {"vxlan", 300}}};
  auto flows = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false},
                           {"qd-n", 101, 1, "02:51:a0:00:00:02", {"10.0.0.2"}, true},
                           {"qt-c", 102, 2, "02:51:a0:00:00:03", {"10.0.0.3"}, false}},
                          {}, {}, tunnels);
  // In: a tunnel id of the port's type gives the network, marks reg4 and learns the source.
  auto in20 = flowsWith(flows, "table=0,priority=200,in_port=20,");
  ASSERT_EQ(in20.size(), 2u);  // networks 1 and 3, not the geneve one
  EXPECT_NE(in20[0].find("tun_id=100,actions=load:1->NXM_NX_REG6[],load:1->NXM_NX_REG4[],learn("),
            std::string::npos)
      << in20[0];
  EXPECT_NE(in20[0].find("cookie=0x51a0000000000002"), std::string::npos);
  EXPECT_NE(in20[1].find("tun_id=300,actions=load:3->NXM_NX_REG6[]"), std::string::npos);
  auto in21 = flowsWith(flows, "table=0,priority=200,in_port=21,");
  ASSERT_EQ(in21.size(), 1u);
  EXPECT_NE(in21[0].find("tun_id=100,actions=load:2->NXM_NX_REG6[]"), std::string::npos);
  // Unknown tunnel ids and DHCP answers from a tunnel are dropped.
  EXPECT_EQ(flowsWith(flows, "table=0,priority=100,in_port=22,actions=drop").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=0,priority=300,in_port=23,udp,tp_src=67,actions=drop").size(),
            1u);

  const std::string mcast = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00";
  // ARP from here floods the ports here and the network's tunnels, tagged; from a tunnel, only
  // the guests here (not the DHCP server, never another tunnel).
  EXPECT_EQ(flowsWith(flows, "priority=50,reg6=1,arp," + mcast +
                                 ",actions=output:100,output:101,set_field:100->tun_id,"
                                 "output:20,output:22")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flows, "priority=51,reg6=1,reg4=1,arp," + mcast + ",actions=output:100")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flows, "priority=50,reg6=2,arp," + mcast +
                                 ",actions=output:102,set_field:100->tun_id,output:21,output:23")
                .size(),
            1u);
  // A network with no port here still reaches its tunnels; nothing of it floods locally.
  EXPECT_EQ(flowsWith(flows, "priority=50,reg6=3,arp," + mcast +
                                 ",actions=set_field:300->tun_id,output:20,output:22")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flows, "priority=51,reg6=3,reg4=1,arp," + mcast + ",actions=drop").size(),
            1u);
  // Unicast from here to an unknown MAC: IP committed in the ingress zone, tagged, table 21;
  // from a tunnel it is dropped (table 20's default). The DHCP server's stays here.
  EXPECT_EQ(flowsWith(flows, "table=20,priority=5,reg6=1,reg4=0,actions=set_field:100->tun_id,"
                             "resubmit(,21)")
                .size(),
            1u);
  auto ip_out = flowsWith(flows, "table=20,priority=6,ip,reg6=1,reg4=0,");
  ASSERT_EQ(ip_out.size(), 1u);
  EXPECT_NE(ip_out[0].find("ct(commit,zone=NXM_NX_REG5[0..15]),set_field:100->tun_id"),
            std::string::npos)
      << ip_out[0];
  EXPECT_EQ(flowsWith(flows, "table=20,priority=7,reg6=1,in_port=101,actions=drop").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=20,priority=101,reg6=1,reg4=1,dl_dst=02:51:a0:00:00:02,"
                             "actions=drop")
                .size(),
            1u);
  EXPECT_EQ(flowsWith(flows, "priority=53,reg6=1,reg4=1,udp,tp_src=68,tp_dst=67").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "priority=55,reg6=1,in_port=101," + mcast + ",actions=output:100,"
                             "output:101")
                .size(),
            1u);
  // Table 21: learned flows come first; unknown MACs go to every tunnel of the type.
  EXPECT_EQ(flowsWith(flows, "table=21,priority=1,reg6=1,actions=output:20,output:22").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=21,priority=1,reg6=2,actions=output:21,output:23").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=21,priority=0,actions=drop").size(), 1u);
  // Without tunnels none of this exists.
  auto plain = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false}});
  EXPECT_TRUE(flowsWith(plain, "table=21").empty());
  EXPECT_TRUE(flowsWith(plain, "reg4").empty());
}

TEST(Flows, DeterministicAndIgnoresUnattachedPorts) {
  std::vector<FlowPort> ports = {{"qt-b", 101, 1, "02:51:a0:00:00:02", {"10.0.0.4"}, false},
                                 {"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false}};
  auto one = buildFlows(ports);
  std::reverse(ports.begin(), ports.end());
  EXPECT_EQ(one, buildFlows(ports));
  ports.push_back({"qt-z", 0, 1, "02:51:a0:00:00:09", {"10.0.0.9"}, false});
  EXPECT_EQ(one, buildFlows(ports));
  // No ports: only the tables' own flows, none naming a port.
  auto base = buildFlows({});
  EXPECT_EQ(flowsWith(base, "in_port").size(), 0u);
  EXPECT_EQ(flowsWith(base, "reg7=").size(), 0u);
}

TEST(Flows, PortRangesBecomeExactMaskedMatches) {
  auto covers = [](const std::vector<std::pair<int, int>>& masks, int port) {
    int n = 0;
    for (auto [v, m] : masks) n += (port & m) == v;
    return n;
  };
  for (auto [lo, hi] : std::vector<std::pair<int, int>>{
           {80, 80}, {1, 65535}, {1000, 1999}, {8080, 8090}, {0, 0}, {65535, 65535}, {3, 4}}) {
    auto masks = portRangeMasks(lo, hi);
    ASSERT_FALSE(masks.empty()) << lo << "-" << hi;
    for (int p = 0; p <= 65535; ++p) {
      ASSERT_EQ(covers(masks, p), (p >= lo && p <= hi) ? 1 : 0) << lo << "-" << hi << " " << p;
    }
  }
  EXPECT_EQ(portRangeMasks(80, 80), (std::vector<std::pair<int, int>>{{80, 0xffff}}));
  EXPECT_TRUE(portRangeMasks(10, 9).empty());
}

TEST(Flows, SecurityGroupsAllowOnlyTheirRulesStatefully) {
  FlowRule web;  // ingress tcp 8080-8081 from 10.9.0.0/16
  web.protocol = "tcp";
  web.port_min = 8080;
  web.port_max = 8081;
  web.remote_cidr = "10.9.0.0/16";
  FlowRule peers;  // ingress anything from the members of "t/db"
  peers.remote_group = "t/db";
  FlowRule out;
  out.ingress = false;
  out.protocol = "udp";
  out.port_min = 53;
  std::vector<FlowGroup> groups = {{"t/web", {web, peers, out}}, {"t/db", {}}};
  auto flows = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false, {"t/web"}},
                           {"qt-b", 101, 1, "02:51:a0:00:00:02", {"10.0.0.4"}, false, {"t/db"}},
                           {"qt-c", 102, 2, "02:51:a0:00:00:03", {"10.0.0.5"}, false, {"t/db"}}},
                          groups);
  auto ingress = flowsWith(flows, "table=31,priority=100,ct_state=+new-est-inv+trk,reg7=100,");
  // 8080-8081 is one masked match; the group's member on the same network only (not qt-c).
  EXPECT_EQ(flowsWith(ingress, "tcp,tp_dst=0x1f90/0xfffe,nw_src=10.9.0.0/16").size(), 1u);
  EXPECT_EQ(flowsWith(ingress, "ip,nw_src=10.0.0.4,").size(), 1u);
  EXPECT_EQ(flowsWith(ingress, "10.0.0.5").size(), 0u);
  EXPECT_EQ(ingress.size(), 2u);
  for (const auto& f : ingress) {
    EXPECT_NE(f.find("actions=ct(commit,zone=NXM_NX_REG5[0..15]),ct(commit,zone=NXM_NX_REG6[0..15]),"
                     "output:100"),
              std::string::npos)
        << f;
  }
  auto egress = flowsWith(flows, "table=11,priority=100,ct_state=+new-est-inv+trk,in_port=100,");
  ASSERT_EQ(egress.size(), 1u);
  EXPECT_NE(egress[0].find("udp,tp_dst=53"), std::string::npos);
  // qt-b's group has no rules: nothing new in or out; established traffic passes for all.
  EXPECT_TRUE(flowsWith(flows, "reg7=101,").empty() ||
              flowsWith(flows, "table=31,priority=100,ct_state=+new-est-inv+trk,reg7=101").empty());
  EXPECT_TRUE(flowsWith(flows, "table=11,priority=100,ct_state=+new-est-inv+trk,in_port=101")
                  .empty());
  EXPECT_EQ(flowsWith(flows, "table=31,priority=200,ct_state=-new+est-inv+trk").size(), 1u);
  EXPECT_EQ(flowsWith(flows, "table=11,priority=200,ct_state=-new+est-inv+trk").size(), 1u);
  // A guest's DHCP broadcasts bypass its groups; nothing else does.
  EXPECT_EQ(
      flowsWith(flows, "table=10,priority=100,udp,nw_dst=255.255.255.255,tp_src=68,tp_dst=67")
          .size(),
      1u);
  // Ingress passes and commits in a zone of its own, not the sender's egress zone.
  for (const auto& f : flowsWith(flows, "table=31,priority=100")) {
    EXPECT_NE(f.find("ct(commit,zone=NXM_NX_REG5[0..15])"), std::string::npos) << f;
  }
  for (const auto& f : flowsWith(flows, "table=11,priority=100")) {
    EXPECT_NE(f.find("ct(commit,zone=NXM_NX_REG6[0..15])"), std::string::npos) << f;
  }
}

}  // namespace
}  // namespace qiao
