// The Fabric over a fake switch, fake flows and fake taps: what it applies, and what its check
// repairs (a port gone, a port changed, a stale port of Qiao's, flows wiped or edited, OVS
// down and back) - and that a clean check changes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "network/fabric.h"
#include "tests/doubles/fake_flows.h"
#include "tests/doubles/fake_switch.h"
#include "tests/doubles/fake_taps.h"

namespace qiao {
namespace {

using testing::FakeFlows;
using testing::FakeSwitch;

class FabricTest : public ::testing::Test {
 protected:
  FabricTest() : dhcp_("/nonexistent") {
    options_.bridge = "br-test";
    options_.check_interval_ms = 60000;  // checks only when a test asks
    options_.taps = taps_.ops();
    fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  }

  static NetworkDef network(const std::string& uuid, int64_t id) {
    NetworkDef n;
    n.uuid = uuid;
    n.tenant = "t";
    n.name = "n" + std::to_string(id);
    n.local_id = id;
    n.subnet = *parseSubnet("10.0.0.0/24", "");
    n.dhcp = false;  // no dnsmasq in unit tests
    return n;
  }
  static PortDef port(const std::string& uuid, const std::string& net, int64_t ofport) {
    PortDef p;
    p.uuid = uuid;
    p.tenant = "t";
    p.network_uuid = net;
    p.vm_uuid = "vm-" + uuid;
    p.vm_name = "vm" + uuid;
    p.name = "qt-" + uuid;
    p.mac = macFromSeed(uuid);
    p.ip = "10.0.0." + std::to_string(ofport - 90);
    p.ofport = ofport;
    return p;
  }

  FabricOptions options_;
  FakeSwitch switch_;
  FakeFlows flows_;
  DhcpServers dhcp_;
  testing::FakeTaps taps_;
  std::unique_ptr<Fabric> fabric_;
};

TEST_F(FabricTest, PlugMakesTapPortAndFlowsAndUnplugUndoesThem) {
  ASSERT_TRUE(fabric_->addNetwork(network("n1", 1)));
  ASSERT_TRUE(fabric_->plug(port("a", "n1", 100)));
  EXPECT_TRUE(taps_.contains("qt-a"));
  auto p = switch_.port("br-test", "qt-a");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->port.ofport_request, 100);
  EXPECT_EQ(p->port.external_ids.at("iface-id"), "a");
  EXPECT_EQ(p->port.external_ids.at("vm-id"), "vm-a");
  EXPECT_EQ(p->port.external_ids.at("qiao-tenant"), "t");
  EXPECT_EQ(switch_.bridges().at("br-test").fail_mode, "secure");
  const auto& table = flows_.table["br-test"];
  EXPECT_TRUE(std::any_of(table.begin(), table.end(),
                          [](const std::string& f) { return f.find("in_port=100") != f.npos; }));

  ASSERT_TRUE(fabric_->unplug("a"));
  EXPECT_FALSE(taps_.contains("qt-a"));
  EXPECT_FALSE(switch_.port("br-test", "qt-a"));
  const auto& after = flows_.table["br-test"];
  EXPECT_TRUE(std::none_of(after.begin(), after.end(),
                           [](const std::string& f) { return f.find("in_port=100") != f.npos; }));
}

TEST_F(FabricTest, APlugSendsOnlyTheDifferenceUnlessTheTableDrifted) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100)});
  ASSERT_TRUE(fabric_->check());
  const int installs = flows_.installs;
  ASSERT_TRUE(fabric_->plug(port("b", "n1", 101)));
  EXPECT_EQ(flows_.installs, installs);  // no whole-table replace
  EXPECT_EQ(flows_.updates, 1);
  std::vector<std::string> want = buildFlows(
      {{"qt-a", 100, 1, macFromSeed("a"), {"10.0.0.10"}, false},
       {"qt-b", 101, 1, macFromSeed("b"), {"10.0.0.11"}, false}});
  std::sort(want.begin(), want.end());
  EXPECT_EQ(flows_.table["br-test"], want);
  // A flow lost, edited or added behind Qiao's back: the next plug replaces the whole table,
  // repairing it.
  const std::string drifts[] = {"lost", "edited", "added"};
  int expected_installs = installs;
  int next_ofport = 102;
  for (const auto& drift : drifts) {
    auto& table = flows_.table["br-test"];
    if (drift == "lost") table.pop_back();
    if (drift == "edited") table.back() += ",output:999";
    if (drift == "added") {
      table.push_back("cookie=0x51a0000000000001,table=0,priority=1,actions=output:1");
      std::sort(table.begin(), table.end());
    }
    const std::string uuid = "p" + std::to_string(next_ofport);
    ASSERT_TRUE(fabric_->plug(port(uuid, "n1", next_ofport++)));
    EXPECT_EQ(flows_.installs, ++expected_installs) << drift;
    EXPECT_TRUE(fabric_->check()->clean()) << drift;
  }
  // Without drift, plugs stay incremental.
  ASSERT_TRUE(fabric_->plug(port("q", "n1", next_ofport)));
  EXPECT_EQ(flows_.installs, expected_installs);
}

TEST(FlowDiff, DeletesWhatWentAndAddsWhatCame) {
  auto before = buildFlows({{"qt-a", 100, 1, "02:51:a0:00:00:01", {"10.0.0.3"}, false}});
  auto after = buildFlows({{"qt-b", 101, 1, "02:51:a0:00:00:02", {"10.0.0.4"}, false}});
  std::string diff = flowDiff(before, after);
  EXPECT_NE(diff.find("delete_strict cookie=0x51a0000000000001/-1,table=0,priority=100,"
                      "in_port=100\n"),
            std::string::npos)
      << diff;
  EXPECT_NE(diff.find("add cookie=0x51a0000000000001,table=0,priority=100,in_port=101,"
                      "actions=drop\n"),
            std::string::npos)
      << diff;
  // The flood flow changed its actions only: replaced by its add, never deleted.
  EXPECT_EQ(diff.find("delete_strict cookie=0x51a0000000000001/-1,table=20,priority=50"),
            std::string::npos)
      << diff;
  EXPECT_TRUE(flowDiff(after, after).empty());
}

TEST_F(FabricTest, ARemovedNetworksConntrackZonesAreFlushed) {
  ASSERT_TRUE(fabric_->addNetwork(network("n1", 3)));
  ASSERT_TRUE(fabric_->removeNetwork("n1"));
  EXPECT_EQ(flows_.flushed, (std::vector<int>{3, 0x8003}));
}

TEST_F(FabricTest, AnUnpluggedPortsConnectionsAreForgotten) {
  ASSERT_TRUE(fabric_->addNetwork(network("n1", 3)));
  ASSERT_TRUE(fabric_->plug(port("a", "n1", 100)));
  ASSERT_TRUE(fabric_->plug(port("b", "n1", 101)));
  EXPECT_TRUE(flows_.flushed_addresses.empty());
  ASSERT_TRUE(fabric_->unplug("a"));
  using Flush = std::pair<int, std::string>;
  EXPECT_EQ(flows_.flushed_addresses,
            (std::vector<Flush>{{3, "10.0.0.10"}, {0x8003, "10.0.0.10"}}));
  EXPECT_TRUE(flows_.flushed.empty());  // the network's other connections stay
}

TEST_F(FabricTest, ACleanCheckChangesNothing) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100), port("b", "n1", 101)});
  auto first = fabric_->check();
  ASSERT_TRUE(first) << first.error().describe();
  const int writes = switch_.writes();
  const int installs = flows_.installs;
  auto again = fabric_->check();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->clean()) << again->changes.front();
  EXPECT_EQ(switch_.writes(), writes);
  EXPECT_EQ(flows_.installs, installs);
}

TEST_F(FabricTest, CheckRepairsWhatDrifted) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100), port("b", "n1", 101)});
  ASSERT_TRUE(fabric_->check());
  const auto good = flows_.table["br-test"];

  // A port deleted behind Qiao's back, another's external_ids edited, a stale port of Qiao's
  // left over, a foreign port (not Qiao's), a tap gone, flows wiped.
  switch_.dropPortBehindTheBack("br-test", "qt-a");
  SwitchPort edited = *switch_.port("br-test", "qt-b").transform([](auto s) { return s.port; });
  edited.external_ids["qiao-tenant"] = "someone-else";
  ASSERT_TRUE(switch_.ensurePort("br-test", edited));
  ASSERT_TRUE(switch_.ensurePort("br-test", {"qt-stale", "", 150, {{"qiao-tenant", "t"}}, {}}));
  ASSERT_TRUE(switch_.ensurePort("br-test", {"eth-foreign", "", 0, {}, {}}));
  taps_.erase("qt-b");
  flows_.table["br-test"].clear();

  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  std::string all;
  for (const auto& c : report->changes) all += c + "\n";
  EXPECT_NE(all.find("port qt-a re-added"), std::string::npos) << all;
  EXPECT_NE(all.find("port qt-b corrected"), std::string::npos) << all;
  EXPECT_NE(all.find("stale port qt-stale removed"), std::string::npos) << all;
  EXPECT_NE(all.find("tap qt-b re-created"), std::string::npos) << all;
  EXPECT_NE(all.find("flows replaced"), std::string::npos) << all;
  EXPECT_EQ(all.find("eth-foreign"), std::string::npos) << all;
  EXPECT_TRUE(switch_.port("br-test", "qt-a"));
  EXPECT_EQ(switch_.port("br-test", "qt-b")->port.external_ids.at("qiao-tenant"), "t");
  EXPECT_FALSE(switch_.port("br-test", "qt-stale"));
  EXPECT_TRUE(switch_.port("br-test", "eth-foreign"));
  EXPECT_EQ(flows_.table["br-test"], good);
  EXPECT_TRUE(fabric_->check()->clean());
}

TEST_F(FabricTest, TunnelPortsToEveryPeerAreKeptAsConfigured) {
  options_.tunnel_ip = "192.0.2.1";
  options_.tunnel_peers = {"192.0.2.2", "192.0.2.3"};
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  NetworkDef n = network("n1", 1);
  n.segment_id = 4242;
  fabric_->load({n}, {port("a", "n1", 100)});
  ASSERT_TRUE(fabric_->check());
  auto vx = switch_.port("br-test", "qvx-c0000202");
  ASSERT_TRUE(vx);
  EXPECT_EQ(vx->port.type, "vxlan");
  EXPECT_EQ(vx->port.ofport_request, 20);
  EXPECT_EQ(vx->port.options.at("remote_ip"), "192.0.2.2");
  EXPECT_EQ(vx->port.options.at("local_ip"), "192.0.2.1");
  EXPECT_EQ(vx->port.options.at("key"), "flow");
  auto gn = switch_.port("br-test", "qgn-c0000203");
  ASSERT_TRUE(gn);
  EXPECT_EQ(gn->port.type, "geneve");
  EXPECT_EQ(gn->port.ofport_request, 23);
  const auto& table = flows_.table["br-test"];
  EXPECT_TRUE(std::any_of(table.begin(), table.end(), [](const std::string& f) {
    return f.find("in_port=20,tun_id=4242,") != f.npos;
  }));
  EXPECT_TRUE(fabric_->check()->clean());

  // A tunnel's options edited by hand are corrected; a peer dropped from the config leaves.
  SwitchPort edited = vx->port;
  edited.options["remote_ip"] = "192.0.2.99";
  ASSERT_TRUE(switch_.ensurePort("br-test", edited));
  auto report = fabric_->check();
  ASSERT_TRUE(report);
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "port qvx-c0000202 corrected");
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000202")->port.options.at("remote_ip"), "192.0.2.2");

  options_.tunnel_peers = {"192.0.2.3"};
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  fabric_->load({n}, {port("a", "n1", 100)});
  report = fabric_->check();
  ASSERT_TRUE(report);
  EXPECT_FALSE(switch_.port("br-test", "qvx-c0000202"));
  EXPECT_FALSE(switch_.port("br-test", "qgn-c0000202"));
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000203")->port.ofport_request, 20);
}

TEST_F(FabricTest, TunnelPeersChangeAtRuntimeWithoutTouchingTheTunnelsThatStay) {
  options_.tunnel_ip = "192.0.2.1";
  options_.dynamic_tunnel_peers = true;
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  NetworkDef n = network("n1", 1);
  n.segment_id = 4242;
  fabric_->load({n}, {port("a", "n1", 100)});
  ASSERT_TRUE(fabric_->check());
  // A member alone in its cluster (so far): its vxlan networks still span hosts.
  EXPECT_TRUE(fabric_->reachesOtherHosts("vxlan"));
  auto has_flow = [&](const std::string& text) {
    const auto& table = flows_.table["br-test"];
    return std::any_of(table.begin(), table.end(),
                       [&](const std::string& f) { return f.find(text) != f.npos; });
  };
  EXPECT_FALSE(has_flow("tun_id=4242"));

  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.3", "192.0.2.2"}));
  EXPECT_EQ(fabric_->tunnelPeers(), (std::vector<std::string>{"192.0.2.2", "192.0.2.3"}));
  // Slots in the order the peers came in (here sorted): .2 on 20/21, .3 on 22/23.
  ASSERT_TRUE(switch_.port("br-test", "qvx-c0000202"));
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000202")->port.ofport_request, 20);
  EXPECT_EQ(switch_.port("br-test", "qgn-c0000202")->port.ofport_request, 21);
  auto three = switch_.port("br-test", "qvx-c0000203");
  ASSERT_TRUE(three);
  EXPECT_EQ(three->port.ofport_request, 22);
  EXPECT_EQ(three->port.options.at("remote_ip"), "192.0.2.3");
  EXPECT_EQ(three->port.options.at("local_ip"), "192.0.2.1");
  EXPECT_TRUE(has_flow("in_port=20,tun_id=4242,"));
  EXPECT_TRUE(has_flow("in_port=22,tun_id=4242,"));
  EXPECT_TRUE(fabric_->check()->clean());

  // The same set again, in another order and with a repeat: nothing written at all.
  int writes = switch_.writes();
  auto installs = fabric_->counters().flow_installs;
  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.2", "192.0.2.3", "192.0.2.2"}));
  EXPECT_EQ(switch_.writes(), writes);
  EXPECT_EQ(fabric_->counters().flow_installs, installs);

  // .2 leaves and .4 comes: exactly .4's two ports added and .2's two removed; .3's ports are
  // the same ports on the same OpenFlow ports. .4 does not take .2's slot while .2's ports may
  // still hold its OpenFlow ports.
  const auto three_vx = *switch_.port("br-test", "qvx-c0000203");
  const auto three_gn = *switch_.port("br-test", "qgn-c0000203");
  writes = switch_.writes();
  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.3", "192.0.2.4"}));
  EXPECT_EQ(switch_.writes(), writes + 4);
  EXPECT_FALSE(switch_.port("br-test", "qvx-c0000202"));
  EXPECT_FALSE(switch_.port("br-test", "qgn-c0000202"));
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000203")->port, three_vx.port);
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000203")->ofport, three_vx.ofport);
  EXPECT_EQ(switch_.port("br-test", "qgn-c0000203")->port, three_gn.port);
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000204")->port.ofport_request, 24);
  EXPECT_FALSE(has_flow("in_port=20,"));
  EXPECT_TRUE(has_flow("in_port=22,tun_id=4242,"));
  EXPECT_TRUE(has_flow("in_port=24,tun_id=4242,"));
  EXPECT_TRUE(fabric_->check()->clean());

  // Nothing user-supplied reaches OVSDB unchecked; a refused set changes nothing.
  writes = switch_.writes();
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{"192.0.2.1"},
                                             {"192.0.2.010"},
                                             {"192.0.2.5\",\"x"},
                                             {"192.0.2.5 "},
                                             {"127.0.0.1"},
                                             {"239.1.1.1"},
                                             {""}}) {
    auto refused = fabric_->setTunnelPeers(bad);
    ASSERT_FALSE(refused) << bad[0];
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument) << bad[0];
  }
  std::vector<std::string> too_many;
  for (int i = 10; i < 51; ++i) too_many.push_back("192.0.2." + std::to_string(i));
  EXPECT_FALSE(fabric_->setTunnelPeers(too_many));
  EXPECT_EQ(switch_.writes(), writes);
  EXPECT_EQ(fabric_->tunnelPeers(), (std::vector<std::string>{"192.0.2.3", "192.0.2.4"}));

  // A change while OVS is down is kept and finished by the check once it is back.
  switch_.setUnavailable(true);
  flows_.down = true;
  auto down = fabric_->setTunnelPeers({"192.0.2.4"});
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ErrorCode::kUnavailable);
  switch_.setUnavailable(false);
  flows_.down = false;
  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  EXPECT_TRUE(report->errors.empty());
  EXPECT_FALSE(switch_.port("br-test", "qvx-c0000203"));
  EXPECT_FALSE(switch_.port("br-test", "qgn-c0000203"));
  EXPECT_FALSE(has_flow("in_port=22,"));
  EXPECT_TRUE(has_flow("in_port=24,tun_id=4242,"));

  // A restarted daemon learns its peers again: a peer whose ports are on the switch keeps them.
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  fabric_->load({n}, {port("a", "n1", 100)});
  ASSERT_TRUE(fabric_->check());
  EXPECT_TRUE(switch_.port("br-test", "qvx-c0000204"));  // not removed before the peers are known
  writes = switch_.writes();
  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.4"}));
  EXPECT_EQ(switch_.writes(), writes);
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000204")->port.ofport_request, 24);
  EXPECT_TRUE(has_flow("in_port=24,tun_id=4242,"));
}

TEST_F(FabricTest, ARestartKeepsEveryTunnelOnItsOpenFlowPorts) {
  options_.tunnel_ip = "192.0.2.1";
  options_.dynamic_tunnel_peers = true;
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.9"}));
  ASSERT_EQ(switch_.port("br-test", "qvx-c0000209")->port.ofport_request, 20);
  // Restarted, it learns a new peer too, whose address sorts first: it does not take .9's slot.
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  ASSERT_TRUE(fabric_->check());
  const int writes = switch_.writes();
  ASSERT_TRUE(fabric_->setTunnelPeers({"192.0.2.2", "192.0.2.9"}));
  EXPECT_EQ(switch_.writes(), writes + 2);  // .2's two ports only
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000209")->port.ofport_request, 20);
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000202")->port.ofport_request, 22);
  EXPECT_EQ(switch_.port("br-test", "qgn-c0000202")->port.ofport_request, 23);
  EXPECT_TRUE(fabric_->check()->clean());
}

TEST_F(FabricTest, TunnelPeersNeedATunnelAddress) {
  auto refused = fabric_->setTunnelPeers({"192.0.2.2"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_FALSE(fabric_->reachesOtherHosts("vxlan"));
}

TEST_F(FabricTest, TheVlanUplinkIsOnAProviderBridgePatchedToTheBridge) {
  options_.vlan_uplink = "eth9";
  options_.vlan_bridge = "br-vlan";
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  NetworkDef n = network("n1", 1);
  n.type = "vlan";
  n.segment_id = 300;
  fabric_->load({n}, {port("a", "n1", 100)});
  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  EXPECT_EQ(switch_.bridges().at("br-vlan").fail_mode, "standalone");
  auto nic = switch_.port("br-vlan", "eth9");
  ASSERT_TRUE(nic);
  EXPECT_EQ(nic->port.type, "");
  auto outer = switch_.port("br-vlan", "qpp-br-test");
  ASSERT_TRUE(outer);
  EXPECT_EQ(outer->port.type, "patch");
  EXPECT_EQ(outer->port.options.at("peer"), "qpi-br-vlan");
  auto inner = switch_.port("br-test", "qpi-br-vlan");
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->port.options.at("peer"), "qpp-br-test");
  EXPECT_EQ(inner->port.ofport_request, 10);
  EXPECT_FALSE(switch_.port("br-test", "eth9"));
  const auto& table = flows_.table["br-test"];
  EXPECT_TRUE(std::any_of(table.begin(), table.end(), [](const std::string& f) {
    return f.find("in_port=10,dl_vlan=300,") != f.npos;
  }));
  EXPECT_TRUE(fabric_->check()->clean());

  // The patch deleted by hand comes back; an operator's fail_mode and ports on the provider
  // bridge are theirs, and so are the NIC's columns once it is there (their tools may add
  // external_ids); another daemon's patch on the same provider bridge stays.
  switch_.dropPortBehindTheBack("br-vlan", "qpp-br-test");
  ASSERT_TRUE(switch_.ensurePort("br-vlan", {"eth-mgmt", "", 0, {}, {}}));
  ASSERT_TRUE(switch_.ensurePort(
      "br-vlan", {"qpp-br-other", "patch", 0, {{"qiao-role", "uplink"}, {"qiao-bridge", "br-other"}},
                  {{"peer", "qpi-br-vlan"}}}));
  SwitchPort nic_now = switch_.port("br-vlan", "eth9")->port;
  nic_now.external_ids["NM.connection"] = "uuid";
  ASSERT_TRUE(switch_.ensurePort("br-vlan", nic_now));
  ASSERT_TRUE(switch_.ensureBridge("br-vlan", "netdev", "standalone"));
  report = fabric_->check();
  ASSERT_TRUE(report);
  ASSERT_EQ(report->changes.size(), 1u);
  EXPECT_EQ(report->changes[0], "port qpp-br-test re-added");
  EXPECT_TRUE(switch_.port("br-vlan", "eth-mgmt"));
  EXPECT_TRUE(switch_.port("br-vlan", "qpp-br-other"));
  EXPECT_EQ(switch_.port("br-vlan", "eth9")->port.external_ids.at("NM.connection"), "uuid");
  EXPECT_TRUE(fabric_->check()->clean());
}

TEST_F(FabricTest, ChangesWhileOvsIsDownAreAppliedWhenItComesBack) {
  fabric_->load({network("n1", 1)}, {});
  ASSERT_TRUE(fabric_->check());
  switch_.setUnavailable(true);
  flows_.down = true;
  auto plugged = fabric_->plug(port("a", "n1", 100));
  ASSERT_FALSE(plugged);
  EXPECT_EQ(plugged.error().code, ErrorCode::kUnavailable);
  auto during = fabric_->check();
  ASSERT_FALSE(during);
  EXPECT_EQ(during.error().code, ErrorCode::kUnavailable);

  switch_.setUnavailable(false);
  flows_.down = false;
  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  EXPECT_TRUE(switch_.port("br-test", "qt-a"));
  const auto& table = flows_.table["br-test"];
  EXPECT_TRUE(std::any_of(table.begin(), table.end(),
                          [](const std::string& f) { return f.find("in_port=100") != f.npos; }));
}

TEST_F(FabricTest, AnUnplugWhileOvsIsDownIsFinishedByALaterCheck) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100), port("b", "n1", 101)});
  ASSERT_TRUE(fabric_->check());
  switch_.setUnavailable(true);
  flows_.down = true;
  EXPECT_FALSE(fabric_->unplug("a"));  // reported, but out of the model
  switch_.setUnavailable(false);
  flows_.down = false;
  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
  EXPECT_FALSE(switch_.port("br-test", "qt-a"));
  EXPECT_FALSE(taps_.contains("qt-a"));
  EXPECT_TRUE(switch_.port("br-test", "qt-b"));
  for (const auto& f : flows_.table["br-test"]) EXPECT_EQ(f.find("in_port=100"), f.npos) << f;
}

TEST_F(FabricTest, OneItemThatCannotBeRepairedDoesNotStopTheOthers) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100), port("b", "n1", 101)});
  ASSERT_TRUE(fabric_->check());
  // qt-a's tap cannot be made any more; qt-b's port and all flows are lost.
  options_.taps.ensure = [](const std::string& n, int) -> Status {
    return makeError(ErrorCode::kInternal, "netdev", "no tap " + n);
  };
  fabric_ = std::make_unique<Fabric>(options_, switch_, flows_, dhcp_);
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100), port("b", "n1", 101)});
  taps_.erase("qt-a");
  switch_.dropPortBehindTheBack("br-test", "qt-b");
  flows_.table["br-test"].clear();
  auto report = fabric_->check();
  ASSERT_TRUE(report) << report.error().describe();
  ASSERT_EQ(report->errors.size(), 1u);
  EXPECT_NE(report->errors[0].find("no tap qt-a"), std::string::npos);
  EXPECT_TRUE(switch_.port("br-test", "qt-b"));
  EXPECT_FALSE(flows_.table["br-test"].empty());
}

TEST_F(FabricTest, TheCheckLoopRunsWhenTheSwitchReportsAChange) {
  fabric_->load({network("n1", 1)}, {port("a", "n1", 100)});
  fabric_->start();
  // The first check (on the change the load causes, or the first tick) would take a minute
  // with this interval: a change reported by the switch wakes it at once.
  switch_.fireChange();
  for (int i = 0; i < 100 && !switch_.port("br-test", "qt-a"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(switch_.port("br-test", "qt-a"));
  switch_.dropPortBehindTheBack("br-test", "qt-a");
  for (int i = 0; i < 100 && !switch_.port("br-test", "qt-a"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(switch_.port("br-test", "qt-a"));
  fabric_->stop();
  EXPECT_GE(fabric_->counters().repairs, 1);
}

}  // namespace
}  // namespace qiao
