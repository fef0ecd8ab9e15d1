// VmService's undo paths on the node as qiaod builds it (tests/unit/node/service_fixture.h),
// driven by a Hypervisor that fails chosen calls (FaultyHypervisor over libvirt's test
// driver), with its volumes on the local directory driver and its NICs on
// the Fabric's in-memory doubles: a create whose start fails (or whose define or start fails
// after doing its work) leaves no domain, no claimed volume and no port behind and no VM
// record; a delete that fails half way leaves the VM deletable and is asked again; a failed
// start leaves the VM as it was.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/crypto.h"
#include "node/networks/network_service.h"
#include "node/state/record_json.h"
#include "node/vm/vm_service.h"
#include "tests/doubles/fake_flows.h"
#include "tests/doubles/fake_switch.h"
#include "tests/doubles/fake_taps.h"
#include "tests/doubles/faulty_hypervisor.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

using testing::FaultTiming;
using testing::FaultyHypervisor;
using testing::HypervisorOp;

Error injected() { return Error{ErrorCode::kInternal, "libvirt", "injected failure", {}}; }

class VmServiceUndoTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    // libvirt's test driver keeps its domains for the whole process: each test its own tenant.
    tenant_ = "t" + newUuid().substr(0, 8);
    libvirt_ = makeTestDriverHypervisor();
    config_.network.bridge = "br-unit";
    config_.network.check_interval_ms = 60000;
    config_.network.run_dir = "/nonexistent";
    ASSERT_NO_FATAL_FAILURE(startNode());

    // A volume and a network for the VMs to take.
    VolumeSpec volume;
    volume.name = "data1";
    volume.tenant = tenant_;
    volume.size_gib = 1;
    ASSERT_EQ(toString(finish(node_->volumes().create(volume, "t")).state), "succeeded");
    auto network = parseNetworkSpec(R"({"name":"web","subnet":"10.1.0.0/24","dhcp":false})");
    ASSERT_TRUE(network.has_value());
    network->tenant = tenant_;
    ASSERT_EQ(toString(finish(node_->networks()->create(*network, "t")).state), "succeeded");
  }
  NodeParts parts() override {
    NodeParts parts;
    auto faulty = std::make_unique<FaultyHypervisor>(*libvirt_);
    faulty_ = faulty.get();
    parts.hypervisor = std::move(faulty);
    parts.ovs = NodeParts::Ovs{&switch_, &flows_, taps_.ops()};
    return parts;
  }
  void nodeBuilt() override { vms_ = &node_->vms(); }
  void TearDown() override {
    ServiceFixture::TearDown();
    for (const auto& name : domains_) {
      (void)libvirt_->destroy(name);
      (void)libvirt_->undefine(name);
    }
    libvirt_->stop();
  }

  VmSpec spec(const std::string& name) {
    VmSpec s;
    s.name = name;
    s.tenant = tenant_;
    s.arch = "x86_64";
    s.memory_mib = 128;
    DiskSpec disk;
    disk.volume = "data1";
    s.disks.push_back(disk);
    NicSpec nic;
    nic.network = "web";
    s.nics.push_back(nic);
    domains_.push_back(domainNameOf(tenant_, name));
    return s;
  }
  bool domainExists(const std::string& vm) {
    auto info = libvirt_->lookup(domainNameOf(tenant_, vm));
    if (!info) {
      EXPECT_EQ(info.error().code, ErrorCode::kNotFound) << info.error().describe();
    }
    return info.has_value();
  }
  // The volume is free again: available, attached to no VM.
  void expectVolumeFree() {
    auto volume = store_->volumes().get(tenant_, "data1");
    ASSERT_TRUE(volume.has_value());
    EXPECT_EQ(toString(volume->state), "available");
    EXPECT_EQ(volume->attached_vm, "");
  }
  size_t portCount() {
    auto ports = store_->ports().all();
    EXPECT_TRUE(ports.has_value());
    return ports ? ports->size() : 0;
  }
  // Everything a failed create may have made is gone: domain, claimed volume, ports, record.
  void expectNothingLeftOf(const std::string& vm) {
    EXPECT_FALSE(domainExists(vm)) << "the domain was left behind";
    expectVolumeFree();
    EXPECT_EQ(portCount(), 0u) << "a port was left behind";
    EXPECT_TRUE(taps_.empty());
    auto record = store_->vms().get(tenant_, vm);
    ASSERT_FALSE(record.has_value()) << "the vm record was left, " << toString(record->state);
    EXPECT_EQ(record.error().code, ErrorCode::kNotFound);
    // A reconciliation finds nothing of it to adopt.
    vms_->reconcileNow();
    EXPECT_FALSE(store_->vms().get(tenant_, vm).has_value()) << "reconciliation adopted a leftover";
  }

  std::string tenant_;
  std::vector<std::string> domains_;
  std::unique_ptr<Hypervisor> libvirt_;
  FaultyHypervisor* faulty_ = nullptr;  // the node's hypervisor, over libvirt_
  // Open vSwitch and the host's taps.
  testing::FakeSwitch switch_;
  testing::FakeFlows flows_;
  testing::FakeTaps taps_;
  VmService* vms_ = nullptr;
};

TEST_F(VmServiceUndoTest, ACreateThatWorksTakesTheVolumeAndAPort) {
  // The baseline the failures below are measured against.
  auto task = finish(vms_->createVm(spec("ok"), true, "t"));
  EXPECT_EQ(toString(task.state), "succeeded") << task.error_json;
  EXPECT_TRUE(domainExists("ok"));
  EXPECT_EQ(store_->volumes().get(tenant_, "data1")->attached_vm, "ok");
  EXPECT_EQ(portCount(), 1u);
  EXPECT_EQ(toString(store_->vms().get(tenant_, "ok")->state), "running");
}

TEST_F(VmServiceUndoTest, ACreateWhoseStartFailsLeavesNothingBehind) {
  faulty_->faults().failNth(HypervisorOp::kStart, 1, injected());
  auto task = finish(vms_->createVm(spec("web1"), true, "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_NE(task.error_json.find("injected failure"), std::string::npos) << task.error_json;
  EXPECT_EQ(faulty_->faults().injected(HypervisorOp::kStart), 1);
  // Undone newest first: the domain, then the NICs, then the disks.
  auto journal = steps(task.id);
  std::vector<std::string> undos;
  for (const auto& s : journal) {
    if (s.ends_with(":undone")) undos.push_back(s);
  }
  EXPECT_EQ(undos, (std::vector<std::string>{"define:undone", "nics:undone", "disks:undone"}));
  expectNothingLeftOf("web1");
}

TEST_F(VmServiceUndoTest, ACreateWhoseDefineFailsLeavesNothingBehind) {
  faulty_->faults().failNth(HypervisorOp::kDefine, 1, injected());
  auto task = finish(vms_->createVm(spec("web1"), true, "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_EQ(faulty_->faults().calls(HypervisorOp::kStart), 0);
  expectNothingLeftOf("web1");
}

TEST_F(VmServiceUndoTest, ACreateWhoseDefineIsReportedFailedAfterItHappenedLeavesNoDomain) {
  // libvirt defined the domain, but the answer was lost (a timeout): the step failed, and
  // has no undo of its own; the domain must go all the same.
  faulty_->faults().failNth(HypervisorOp::kDefine, 1, injected(), FaultTiming::kAfter);
  auto task = finish(vms_->createVm(spec("web1"), true, "t"));
  EXPECT_EQ(toString(task.state), "failed");
  expectNothingLeftOf("web1");
}

TEST_F(VmServiceUndoTest, ACreateWhoseStartIsReportedFailedAfterItHappenedLeavesNoGuest) {
  faulty_->faults().failNth(HypervisorOp::kStart, 1, injected(), FaultTiming::kAfter);
  auto task = finish(vms_->createVm(spec("web1"), true, "t"));
  EXPECT_EQ(toString(task.state), "failed");
  expectNothingLeftOf("web1");
}

TEST_F(VmServiceUndoTest, ACreateWhoseUndoFailsToo) {
  // The start fails and so does the first undefine of the undo: the rollback goes on with
  // the NICs and disks, and the failure path removes the domain after all.
  faulty_->faults().failNth(HypervisorOp::kStart, 1, injected());
  faulty_->faults().failNth(HypervisorOp::kUndefine, 1, injected());
  auto task = finish(vms_->createVm(spec("web1"), true, "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_EQ(faulty_->faults().injected(HypervisorOp::kUndefine), 1);
  expectNothingLeftOf("web1");
}

TEST_F(VmServiceUndoTest, ADeleteThatFailsHalfWayCanBeAskedAgain) {
  ASSERT_EQ(toString(finish(vms_->createVm(spec("web1"), false, "t")).state), "succeeded");
  auto vm = store_->vms().get(tenant_, "web1");
  ASSERT_TRUE(vm.has_value());
  ASSERT_EQ(toString(vm->state), "shutoff");

  // The domain is undefined, but libvirt's answer is an error: the delete stops there.
  faulty_->faults().failNth(HypervisorOp::kUndefine, 1, injected(), FaultTiming::kAfter);
  auto failed = finish(vms_->deleteVm(*vm, false, "t"));
  EXPECT_EQ(toString(failed.state), "failed");
  EXPECT_NE(failed.error_json.find("injected failure"), std::string::npos) << failed.error_json;
  auto after = store_->vms().get(tenant_, "web1");
  ASSERT_TRUE(after.has_value()) << "the record went with the delete unfinished";
  // Deletable again: in error (no domain to read a state from), or shut off once libvirt's
  // undefine event has made the reconciliation redefine the missing domain; never left
  // "deleting".
  EXPECT_TRUE(after->state == VmState::kError || after->state == VmState::kShutoff)
      << toString(after->state);
  // Its volume and port are still its own: nothing else may take them yet.
  EXPECT_EQ(store_->volumes().get(tenant_, "data1")->attached_vm, "web1");
  EXPECT_EQ(portCount(), 1u);

  auto retried = finish(vms_->deleteVm(*after, false, "t"));
  EXPECT_EQ(toString(retried.state), "succeeded") << retried.error_json;
  EXPECT_FALSE(store_->vms().get(tenant_, "web1").has_value());
  EXPECT_FALSE(domainExists("web1"));
  expectVolumeFree();
  EXPECT_EQ(portCount(), 0u);
}

TEST_F(VmServiceUndoTest, ADeleteWhosePowerOffFailsLeavesTheVmRunningAndDeletable) {
  ASSERT_EQ(toString(finish(vms_->createVm(spec("web1"), true, "t")).state), "succeeded");
  auto vm = store_->vms().get(tenant_, "web1");
  ASSERT_TRUE(vm.has_value());
  faulty_->faults().failNth(HypervisorOp::kDestroy, 1, injected());
  EXPECT_EQ(toString(finish(vms_->deleteVm(*vm, true, "t")).state), "failed");
  auto after = store_->vms().get(tenant_, "web1");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(toString(after->state), "running");
  EXPECT_TRUE(domainExists("web1"));
  EXPECT_EQ(store_->volumes().get(tenant_, "data1")->attached_vm, "web1");

  EXPECT_EQ(toString(finish(vms_->deleteVm(*after, true, "t")).state), "succeeded");
  EXPECT_FALSE(domainExists("web1"));
  expectVolumeFree();
  EXPECT_EQ(portCount(), 0u);
}

TEST_F(VmServiceUndoTest, AFailedStartLeavesTheVmStoppedAndStartable) {
  ASSERT_EQ(toString(finish(vms_->createVm(spec("web1"), false, "t")).state), "succeeded");
  faulty_->faults().failNth(HypervisorOp::kStart, 1, injected());
  auto failed = finish(vms_->action(*store_->vms().get(tenant_, "web1"), "start", "t"));
  EXPECT_EQ(toString(failed.state), "failed");
  EXPECT_EQ(toString(store_->vms().get(tenant_, "web1")->state), "shutoff");
  auto started = finish(vms_->action(*store_->vms().get(tenant_, "web1"), "start", "t"));
  EXPECT_EQ(toString(started.state), "succeeded") << started.error_json;
  EXPECT_EQ(toString(store_->vms().get(tenant_, "web1")->state), "running");
}

}  // namespace
}  // namespace qiao
