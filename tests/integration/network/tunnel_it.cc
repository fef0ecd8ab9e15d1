// Tunnels between hosts: two simulated compute hosts (scripts/simhost: each its own network
// namespace, Open vSwitch and libvirtd), the underlay a veth pair between their br-phy
// bridges (192.0.2.0/24, inside the namespaces only), a qiaod on each with the other as its
// tunnel peer. Tenant acme has a vxlan network on both hosts, tenant bolt a geneve network with
// the same segment id and the same subnet; each host runs one guest of each tenant, and the
// two tenants use the same two addresses crosswise:
//
//   host a: acme-a 10.60.0.11   bolt-a 10.60.0.12
//   host b: acme-b 10.60.0.12   bolt-b 10.60.0.11
//
// Every guest serves its name on TCP 7000 and asks the other address of its subnet for its
// banner: each must get its own tenant's guest on the other host, across the tunnel, and
// never the other tenant's guest on its own host that has that address.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using json = nlohmann::json;

class TunnelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  }
};

TEST_F(TunnelTest, VxlanAndGeneveCarryEachTenantToItsOwnAndNoFurther) {
  SimHost a("tna", "192.0.2.1/24"), b("tnb", "192.0.2.2/24");
  std::string up_log;
  ASSERT_TRUE(SimHost::upAll({&a, &b}, &up_log)) << up_log;
  auto linked = SimHost::link(a, b);
  ASSERT_EQ(linked.exit_code, 0) << linked.out << linked.err;
  auto underlay = a.run({"ping", "-c", "1", "-W", "2", "192.0.2.2"});
  ASSERT_EQ(underlay.exit_code, 0) << "the underlay does not pass: " << underlay.out;

  Qiaod qa(a.qiaodConfig({"192.0.2.2"})), qb(b.qiaodConfig({"192.0.2.1"}));
  qa.placeOn(a);
  qb.placeOn(b);
  qa.start();
  qb.start();

  struct Guest {
    Qiaod* qiaod;
    std::string name, tenant, network, ip, peer;
  };
  const std::vector<Guest> guests = {
      {&qa, "acme-a", "acme", "blue", "10.60.0.11", "10.60.0.12"},
      {&qa, "bolt-a", "bolt", "red", "10.60.0.12", "10.60.0.11"},
      {&qb, "acme-b", "acme", "blue", "10.60.0.12", "10.60.0.11"},
      {&qb, "bolt-b", "bolt", "red", "10.60.0.11", "10.60.0.12"},
  };
  // A network that reaches other hosts needs a segment id, chosen by an admin: the hosts do
  // not share an allocator, and the same id on two hosts is one network.
  {
    NetnsScope in_host(qa.netns());
    auto op = qa.client(qa.identity("acme-op", "operator", {"acme"}));
    json spec = {{"name", "mine"},
                 {"tenant", "acme"},
                 {"type", "vxlan"},
                 {"segment_id", 4242},
                 {"subnet", "10.61.0.0/24"}};
    auto refused = call(op, "POST", "/v1/networks", spec.dump());
    EXPECT_EQ(refused.status, 403) << refused.raw;
    EXPECT_NE(refused.raw.find("chosen by an admin"), std::string::npos) << refused.raw;
    auto admin = qa.adminClient();
    spec.erase("segment_id");
    spec["type"] = "geneve";
    auto unnumbered = call(admin, "POST", "/v1/networks", spec.dump());
    EXPECT_EQ(unnumbered.status, 400) << unnumbered.raw;
    EXPECT_NE(unnumbered.raw.find("give segment_id"), std::string::npos) << unnumbered.raw;
    // A vlan network has no uplink here: it stays on the host, any id will do.
    spec["type"] = "vlan";
    auto local = call(admin, "POST", "/v1/networks", spec.dump());
    ASSERT_EQ(local.status, 202) << local.raw;
    ASSERT_EQ(waitTask(admin, local.body["id"])["state"], "succeeded");
    auto gone = call(admin, "DELETE", "/v1/networks/mine?tenant=acme");
    ASSERT_EQ(gone.status, 202) << gone.raw;
    waitTask(admin, gone.body["id"]);
  }

  // The networks: the same on both hosts (type, segment id, subnet); the same segment id for
  // both tenants, told apart by the tunnel type. Ingress from the subnet: security groups'
  // remote_group rules see the ports of this host only.
  for (Qiaod* q : {&qa, &qb}) {
    NetnsScope in_host(q->netns());
    auto c = q->adminClient();
    for (const auto& [tenant, name, type] :
         {std::tuple{"acme", "blue", "vxlan"}, std::tuple{"bolt", "red", "geneve"}}) {
      json spec = {{"name", name},
                   {"tenant", tenant},
                   {"type", type},
                   {"segment_id", 4242},
                   {"subnet", "10.60.0.0/24"}};
      auto r = call(c, "POST", "/v1/networks", spec.dump());
      ASSERT_EQ(r.status, 202) << r.raw;
      ASSERT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
      json group = {{"name", "subnet"},
                    {"tenant", tenant},
                    {"rules",
                     {{{"direction", "ingress"}, {"remote_cidr", "10.60.0.0/24"}},
                      {{"direction", "egress"}}}}};
      auto g = call(c, "POST", "/v1/security-groups", group.dump());
      ASSERT_EQ(g.status, 201) << g.raw;
    }
  }
  for (const auto& g : guests) {
    NetnsScope in_host(g.qiaod->netns());
    auto c = g.qiaod->adminClient();
    json spec =
        guestSpec(g.name, g.tenant, "qiao.dhcp=1 " + guestRun(bannerScript(g.name, g.peer)));
    spec["nics"] =
        json::array({{{"network", g.network}, {"ip", g.ip}, {"security_groups", {"subnet"}}}});
    auto r = call(c, "POST", "/v1/vms", spec.dump());
    ASSERT_EQ(r.status, 202) << r.raw;
    ASSERT_EQ(waitTask(c, r.body["id"], std::chrono::seconds(180))["state"], "succeeded") << g.name;
  }
  const std::map<std::string, std::string> expect = {
      {"acme-a", "acme-b"}, {"bolt-a", "bolt-b"}, {"acme-b", "acme-a"}, {"bolt-b", "bolt-a"}};
  for (const auto& g : guests) {
    NetnsScope in_host(g.qiaod->netns());
    auto c = g.qiaod->adminClient();
    std::string out = waitConsole(c, g.name, g.tenant, "run: DONE", 1, std::chrono::seconds(240));
    EXPECT_NE(out.find("run: GOT BANNER-" + expect.at(g.name)), std::string::npos)
        << g.name << " did not reach " << expect.at(g.name) << ":\n"
        << out;
    EXPECT_NE(out.find("run: PING-ok"), std::string::npos) << g.name << ":\n" << out;
    for (const auto& [other, _] : expect) {
      if (other != expect.at(g.name)) {
        EXPECT_EQ(out.find("BANNER-" + other), std::string::npos) << g.name << ":\n" << out;
      }
    }
  }

  // What carried it: the tunnel ports qiaod made, and MACs learned from them.
  auto ports = a.run({"ovs-vsctl", "--columns=name,type,options", "list", "Interface"});
  EXPECT_NE(ports.out.find("qvx-c0000202"), std::string::npos) << ports.out;
  EXPECT_NE(ports.out.find("qgn-c0000202"), std::string::npos) << ports.out;
  auto learned = b.run(
      {"ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "br-int", "cookie=0x51a0000000000002/-1"});
  EXPECT_GE(countOccurrences(learned.out, "table=21"), 2) << learned.out;
}

}  // namespace
}  // namespace qiao::testing
