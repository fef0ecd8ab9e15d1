// NetworkService on the node as qiaod builds it (tests/unit/node/service_fixture.h), its
// Fabric on in-memory doubles of Open vSwitch (switch, flows, taps): networks created into the
// fabric and refused (bad names, overlapping subnets, a name taken), removed (not while ports are
// on them), a create whose fabric step fails rolled back to nothing, an interrupted create finished
// at the next start; the ports of VM NICs (addresses chosen and fixed, conflicts, unplug) and
// security groups.
#include "node/networks/network_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tests/doubles/fake_flows.h"
#include "tests/doubles/fake_switch.h"
#include "tests/doubles/fake_taps.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

using testing::FakeFlows;
using testing::FakeSwitch;
using testing::FlowOp;

class NetworkServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    config_.network.bridge = "br-unit";
    // No periodic check during a test: the fabric checks when the switch reports a change.
    config_.network.check_interval_ms = 60000;
    config_.network.run_dir = "/nonexistent";  // no DHCP: unit tests run no dnsmasq
    startNode();
  }
  NodeParts parts() override {
    NodeParts parts;
    parts.ovs = NodeParts::Ovs{&switch_, &flows_, taps_.ops()};
    return parts;
  }
  void nodeBuilt() override { service_ = node_->networks(); }

  // No DHCP server: unit tests run no dnsmasq.
  NetworkSpec spec(const std::string& name, const std::string& subnet,
                   const std::string& tenant = "acme") {
    auto parsed = parseNetworkSpec(R"({"name":")" + name + R"(","tenant":")" + tenant +
                                   R"(","subnet":")" + subnet + R"(","dhcp":false})");
    EXPECT_TRUE(parsed.has_value()) << parsed.error().describe();
    return parsed ? *parsed : NetworkSpec{};
  }
  NetworkRecord created(const std::string& name, const std::string& subnet) {
    EXPECT_EQ(toString(finish(service_->create(spec(name, subnet), "t")).state), "succeeded");
    auto n = store_->networks().get("acme", name);
    EXPECT_TRUE(n.has_value());
    return n ? *n : NetworkRecord{};
  }
  // Whether the installed flows carry the network (its local id in reg6): the fabric has
  // flows for a network once a port is on it.
  bool inFlows(const NetworkRecord& n) {
    const std::string tag = "reg6=" + std::to_string(n.local_id);
    for (const auto& f : flows_.table["br-unit"]) {
      if (f.find(tag) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<PortRecord> portsOf(const std::string& vm) {
    auto ports = store_->ports().ofVm(vm);
    EXPECT_TRUE(ports.has_value());
    return ports ? *ports : std::vector<PortRecord>{};
  }

  // Open vSwitch and the host's taps: they outlive each node built over them.
  FakeSwitch switch_;
  FakeFlows flows_;
  testing::FakeTaps taps_;
  NetworkService* service_ = nullptr;
};

TEST_F(NetworkServiceTest, CreateProgramsTheFabricAndRecordsTheNetworkReady) {
  auto task = finish(service_->create(spec("web", "10.1.0.0/24"), "t"));
  EXPECT_EQ(toString(task.state), "succeeded") << task.error_json;
  auto n = store_->networks().get("acme", "web");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(toString(n->state), "ready");
  EXPECT_EQ(n->type, "vxlan");
  EXPECT_EQ(n->gateway, "10.1.0.1");
  EXPECT_EQ(n->mtu, 1450);
  EXPECT_EQ(n->segment_id, 1000) << "the lowest free vxlan segment";
  EXPECT_GT(n->local_id, 0);
  EXPECT_TRUE(switch_.bridges().contains("br-unit"));
  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one", {NicRequest{"web", "", "", {}}}));
  EXPECT_TRUE(inFlows(*n)) << "the fabric does not know the network";
  // The next one takes the next segment.
  EXPECT_EQ(created("db", "10.2.0.0/24").segment_id, 1001);
}

TEST_F(NetworkServiceTest, BadSpecsAreRefused) {
  for (const char* bad :
       {R"({"name":"a\"b","subnet":"10.0.0.0/24"})", R"({"name":"a/b","subnet":"10.0.0.0/24"})",
        R"({"name":"web","tenant":"x'y","subnet":"10.0.0.0/24"})",
        R"({"name":"web","subnet":"10.0.0.0/33"})", R"({"name":"web","subnet":"10.0.0.7/24"})",
        R"({"name":"web","subnet":"10.0.0.0/24","gateway":"10.0.1.1"})",
        R"({"name":"web","subnet":"10.0.0.0/24","type":"flat"})",
        R"({"name":"web","subnet":"10.0.0.0/24","type":"vlan","segment_id":4095})",
        R"({"name":"web","subnet":"10.0.0.0/24","mtu":100})", R"({"name":"web"})",
        R"({"name":"web","subnet":"10.0.0.0/24","dns":["1.1.1.1","a"]})"}) {
    auto parsed = parseNetworkSpec(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

TEST_F(NetworkServiceTest, OverlapsAndTakenNamesConflictWithinATenantOnly) {
  NetworkRecord web = created("web", "10.1.0.0/24");
  auto overlap = service_->create(spec("db", "10.1.0.128/25"), "t");
  ASSERT_FALSE(overlap.has_value());
  EXPECT_EQ(overlap.error().code, ErrorCode::kConflict);
  EXPECT_NE(overlap.error().message.find("acme/web"), std::string::npos) << overlap.error().message;
  auto taken = service_->create(spec("web", "10.9.0.0/24"), "t");
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
  EXPECT_EQ(store_->networks().get("acme", "web")->uuid, web.uuid);
  // Another tenant may use the same name and subnet.
  EXPECT_EQ(toString(finish(service_->create(spec("web", "10.1.0.0/24", "other"), "t")).state),
            "succeeded");
}

TEST_F(NetworkServiceTest, ACreateWhoseFabricStepFailsLeavesNoNetwork) {
  flows_.faults.failEvery(FlowOp::kReplace, Error{ErrorCode::kInternal, "test", "injected", {}});
  flows_.faults.failEvery(FlowOp::kUpdate, Error{ErrorCode::kInternal, "test", "injected", {}});
  auto task = finish(service_->create(spec("web", "10.1.0.0/24"), "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_NE(task.error_json.find("injected"), std::string::npos) << task.error_json;
  auto gone = store_->networks().get("acme", "web");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  // A VM create waiting for it hears why it will never come.
  auto awaited = service_->awaitedNetworks("acme", {NicRequest{"web", "", "", {}}});
  ASSERT_FALSE(awaited.has_value());
  EXPECT_NE(awaited.error().message.find("injected"), std::string::npos) << awaited.error().message;
  EXPECT_FALSE(service_->checkNics("acme", {NicRequest{"web", "", "", {}}}).has_value());

  // Once OVS takes flows again, the name and the subnet are free.
  flows_.faults.clear();
  NetworkRecord again = created("web", "10.1.0.0/24");
  EXPECT_EQ(toString(again.state), "ready");
}

TEST_F(NetworkServiceTest, PortsTakeFreeAddressesAndFixedOnesAreChecked) {
  NetworkRecord web = created("web", "10.1.0.0/29");
  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one", {NicRequest{"web", "", "", {}}}));
  auto one = portsOf("vm-1");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].ip, "10.1.0.2") << "the gateway's address was given out";
  EXPECT_GE(one[0].ofport, kFirstOfport);
  EXPECT_TRUE(taps_.contains(one[0].name));
  EXPECT_TRUE(switch_.port("br-unit", one[0].name).has_value());
  // Plugging again (a step run twice) keeps the port.
  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one", {NicRequest{"web", "", "", {}}}));
  EXPECT_EQ(portsOf("vm-1")[0].uuid, one[0].uuid);

  // A fixed address: refused at submit when it is the gateway or outside the subnet, and at
  // plug when another port has it.
  for (const char* ip : {"10.1.0.1", "10.1.0.9", "10.1.0.7"}) {
    auto checked = service_->checkNics("acme", {NicRequest{"web", ip, "", {}}});
    EXPECT_FALSE(checked.has_value()) << ip;
  }
  EXPECT_FALSE(service_->checkNics("acme", {NicRequest{"nope", "", "", {}}}).has_value());
  EXPECT_FALSE(
      service_->checkNics("acme", {NicRequest{"web", "", "02:51:a0:00:00:01", {}}}).has_value());
  EXPECT_FALSE(service_->checkNics("acme", {NicRequest{"web", "", "", {"nosuch"}}}).has_value());
  EXPECT_TRUE(service_->checkNics("acme", {NicRequest{"web", "10.1.0.5", "", {}}}).has_value());
  auto taken = service_->plugVm("acme", "vm-2", "two", {NicRequest{"web", "10.1.0.2", "", {}}});
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(portsOf("vm-2").empty());

  // The network cannot go while a port is on it; the error names the VM.
  auto busy = service_->remove(*store_->networks().get("acme", "web"), "t");
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, ErrorCode::kConflict);
  EXPECT_NE(busy.error().message.find("one"), std::string::npos) << busy.error().message;

  ASSERT_TRUE(service_->unplugVm("vm-1"));
  EXPECT_TRUE(portsOf("vm-1").empty());
  EXPECT_FALSE(taps_.contains(one[0].name));
  EXPECT_FALSE(switch_.port("br-unit", one[0].name).has_value());
  EXPECT_EQ(toString(finish(service_->remove(web, "t")).state), "succeeded");
  EXPECT_FALSE(store_->networks().get("acme", "web").has_value());
}

TEST_F(NetworkServiceTest, AnUnpluggedNicMovesTheLaterOnesUp) {
  created("web", "10.1.0.0/24");
  created("db", "10.2.0.0/24");
  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one",
                               {NicRequest{"web", "", "", {}}, NicRequest{"db", "", "", {}},
                                NicRequest{"web", "", "", {}}}));
  auto ports = portsOf("vm-1");
  ASSERT_EQ(ports.size(), 3u);
  auto byNic = [](std::vector<PortRecord> p) {
    std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.nic < b.nic; });
    return p;
  };
  ports = byNic(ports);
  ASSERT_TRUE(service_->unplugNic(ports[0]));
  auto left = byNic(portsOf("vm-1"));
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].uuid, ports[1].uuid);
  EXPECT_EQ(left[0].nic, 0);
  EXPECT_EQ(left[1].uuid, ports[2].uuid);
  EXPECT_EQ(left[1].nic, 1);
  auto nics = service_->nicsOf("vm-1");
  ASSERT_TRUE(nics.has_value());
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_EQ((*nics)[0].tap, ports[1].name);
}

TEST_F(NetworkServiceTest, SecurityGroupsAreCheckedAndKeptWhileUsed) {
  created("web", "10.1.0.0/24");
  auto bad = parseSecurityGroupSpec(
      R"({"name":"db","rules":[{"direction":"ingress","remote_group":"nosuch"}]})", false);
  ASSERT_TRUE(bad.has_value());
  bad->tenant = "acme";
  auto refused = service_->createGroup(*bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);

  auto spec = parseSecurityGroupSpec(
      R"({"name":"db","rules":[{"direction":"ingress","protocol":"tcp","port_min":5432}]})", false);
  ASSERT_TRUE(spec.has_value()) << spec.error().describe();
  spec->tenant = "acme";
  auto group = service_->createGroup(*spec);
  ASSERT_TRUE(group.has_value()) << group.error().describe();
  auto dup = service_->createGroup(*spec);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);

  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one", {NicRequest{"web", "", "", {"db"}}}));
  auto in_use = service_->deleteGroup(*group);
  ASSERT_FALSE(in_use.has_value());
  EXPECT_EQ(in_use.error().code, ErrorCode::kConflict);
  EXPECT_NE(in_use.error().message.find("one"), std::string::npos) << in_use.error().message;
  ASSERT_TRUE(service_->unplugVm("vm-1"));
  EXPECT_TRUE(service_->deleteGroup(*group));
  EXPECT_FALSE(store_->groups().get("acme", "db").has_value());
}

TEST_F(NetworkServiceTest, ACreateInterruptedByAStopIsFinishedAtTheNextStart) {
  tasks_->stop();
  auto refused = service_->create(spec("web", "10.1.0.0/24"), "t");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  auto pending = store_->networks().get("acme", "web");
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(toString(pending->state), "creating");
  // A VM create may wait for it meanwhile.
  auto awaited = service_->awaitedNetworks("acme", {NicRequest{"web", "", "", {}}});
  ASSERT_TRUE(awaited.has_value());
  EXPECT_NE(awaited->find("creating"), std::string::npos);
  const std::string id = onlyUnfinishedTask();
  ASSERT_TRUE(store_->tasks().journal(id, "fabric", JournalPhase::kBegin));

  restartAndResume();
  auto task = store_->tasks().get(id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(toString(task->state), "succeeded") << task->error_json;
  auto n = store_->networks().get("acme", "web");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(toString(n->state), "ready");
  ASSERT_TRUE(service_->plugVm("acme", "vm-1", "one", {NicRequest{"web", "", "", {}}}));
  EXPECT_TRUE(inFlows(*n));
  EXPECT_EQ(*service_->awaitedNetworks("acme", {NicRequest{"web", "", "", {}}}), "");
}

TEST_F(NetworkServiceTest, ACreateInterruptedTooOftenIsRolledBack) {
  tasks_->stop();
  ASSERT_FALSE(service_->create(spec("web", "10.1.0.0/24"), "t").has_value());
  const std::string id = onlyUnfinishedTask();
  interruptedTooOften(id);
  restartAndResume();
  EXPECT_EQ(toString(store_->tasks().get(id)->state), "failed");
  EXPECT_FALSE(store_->networks().get("acme", "web").has_value());
}

}  // namespace
}  // namespace qiao
