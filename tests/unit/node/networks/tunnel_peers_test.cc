// A member's tunnel peers follow the hosts table (MemoryCeph, a fabric over the fake switch):
// the other hosts that are not removed, at the address they publish; a bad record is left out;
// a change is heard through the table's watch, not only at the next round.
#include "node/networks/tunnel_peers.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/doubles/fake_flows.h"
#include "tests/doubles/fake_switch.h"
#include "tests/doubles/fake_taps.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

using Peers = std::vector<std::string>;

HostRecord host(const std::string& name, const std::string& tunnel_ip,
                HostState state = HostState::kReady) {
  HostRecord h;
  h.name = name;
  h.state = state;
  h.arch = "x86_64";
  h.tunnel_ip = tunnel_ip;
  return h;
}

TEST(TunnelPeersOf, TheOtherHostsNotRemovedAtTheirPublishedAddress) {
  std::vector<std::string> skipped;
  auto peers = tunnelPeersOf(
      {host("a", "192.0.2.1"), host("b", "192.0.2.2"), host("c", "192.0.2.3", HostState::kJoining),
       host("d", "192.0.2.4", HostState::kRemoved), host("e", "192.0.2.5", HostState::kFenced),
       host("f", "192.0.2.6", HostState::kMaintenance), host("g", ""), host("h", "192.0.2.08"),
       host("i", "192.0.2.9\",x"), host("j", "127.0.0.1"), host("k", "192.0.2.1"),
       host("l", "192.0.2.3")},
      "a", "192.0.2.1", &skipped);
  EXPECT_EQ(peers, (Peers{"192.0.2.2", "192.0.2.3", "192.0.2.5", "192.0.2.6"}));
  ASSERT_EQ(skipped.size(), 4u);
  EXPECT_EQ(skipped[0], "h: tunnel_ip is not a host's IPv4 address");
  EXPECT_EQ(skipped[1], "i: tunnel_ip is not a host's IPv4 address");
  EXPECT_EQ(skipped[2], "j: tunnel_ip is not a host's IPv4 address");
  EXPECT_EQ(skipped[3], "k: tunnel_ip 192.0.2.1 is this host's own");
}

class TunnelPeersTest : public ::testing::Test {
 protected:
  TunnelPeersTest() : dhcp_("/nonexistent") {
    FabricOptions o;
    o.bridge = "br-test";
    o.check_interval_ms = 60000;
    o.taps = taps_.ops();
    o.tunnel_ip = "192.0.2.1";
    o.dynamic_tunnel_peers = true;
    fabric_ = std::make_unique<Fabric>(o, switch_, flows_, dhcp_);
    fabric_->load({}, {});
    EXPECT_TRUE(fabric_->check());
  }
  void join(const std::string& name, const std::string& tunnel_ip) {
    ASSERT_TRUE(membership_.registerSelf(host(name, tunnel_ip, HostState::kJoining)));
  }
  bool eventually(const Peers& want) {
    for (int i = 0; i < 250; ++i) {
      if (fabric_->tunnelPeers() == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> rados_ = ceph_.client("10.0.0.1");
  Membership membership_{*rados_, ClusterPool{}, clock_};
  testing::FakeSwitch switch_;
  testing::FakeFlows flows_;
  DhcpServers dhcp_;
  testing::FakeTaps taps_;
  std::unique_ptr<Fabric> fabric_;
};

TEST_F(TunnelPeersTest, ARefreshGivesTheFabricTheOtherMembers) {
  join("a", "192.0.2.1");
  join("b", "192.0.2.2");
  join("c", "192.0.2.3");
  TunnelPeers peers(*rados_, membership_.table(), *fabric_,
                    {"a", "192.0.2.1", std::chrono::milliseconds(60000)});
  ASSERT_TRUE(peers.refresh());
  EXPECT_EQ(fabric_->tunnelPeers(), (Peers{"192.0.2.2", "192.0.2.3"}));
  EXPECT_EQ(switch_.port("br-test", "qvx-c0000203")->port.options.at("remote_ip"), "192.0.2.3");

  // Removed: its tunnels go. Ceph out of reach: the peers stay as they were.
  ASSERT_TRUE(membership_.setState("b", HostState::kRemoved, std::nullopt));
  ASSERT_TRUE(peers.refresh());
  EXPECT_EQ(fabric_->tunnelPeers(), (Peers{"192.0.2.3"}));
  EXPECT_FALSE(switch_.port("br-test", "qvx-c0000202"));
  ceph_.setReachable(false);
  auto cut = peers.refresh();
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(fabric_->tunnelPeers(), (Peers{"192.0.2.3"}));
}

TEST_F(TunnelPeersTest, AHostThatJoinsIsHeardThroughTheWatch) {
  join("a", "192.0.2.1");
  join("b", "192.0.2.2");
  // Rounds an hour apart: only the table's announcement can bring the new host in time.
  TunnelPeers peers(*rados_, membership_.table(), *fabric_,
                    {"a", "192.0.2.1", std::chrono::milliseconds(3600000)});
  peers.start();
  ASSERT_TRUE(eventually({"192.0.2.2"}));
  auto other = ceph_.client("10.0.0.3");
  Membership theirs(*other, ClusterPool{}, clock_);
  ASSERT_TRUE(theirs.registerSelf(host("c", "192.0.2.3", HostState::kJoining)));
  EXPECT_TRUE(eventually({"192.0.2.2", "192.0.2.3"}));
  ASSERT_TRUE(theirs.setState("b", HostState::kRemoved, std::nullopt));
  EXPECT_TRUE(eventually({"192.0.2.3"}));
  peers.stop();
  EXPECT_TRUE(switch_.port("br-test", "qgn-c0000203"));
}

}  // namespace
}  // namespace qiao
