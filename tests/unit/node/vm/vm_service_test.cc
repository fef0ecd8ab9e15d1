// VmService on the node as qiaod builds it (tests/unit/node/service_fixture.h), on libvirt's
// own test driver (test:///default): tasks and their steps, the
// conflicts the API relies on, and reconciliation (adopt, leave foreign, redefine).
#include "node/vm/vm_service.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "node/vm/domain.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

class VmServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    startNode();
  }
  void nodeBuilt() override {
    service_ = &node_->vms();
    events_->subscribe([this](const Event& e) {
      std::lock_guard lock(mutex_);
      published_.push_back(e);
    });
  }

  VmSpec spec(const std::string& name, const std::string& tenant = "acme") {
    VmSpec s;
    s.name = name;
    s.tenant = tenant;
    s.arch = "x86_64";
    s.memory_mib = 128;
    return s;
  }

  VmService* service_ = nullptr;
  std::mutex mutex_;
  std::vector<Event> published_;
};

TEST_F(VmServiceTest, CreateDefinesAndStartsWithMetadata) {
  auto task = finish(service_->createVm(spec("web1"), true, "qiao://unit/user/t"));
  EXPECT_EQ(task.state, TaskState::kSucceeded) << task.error_json;
  EXPECT_EQ(task.progress, 100);
  auto vm = store_->vms().get("acme", "web1");
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ(toString(vm->state), "running");
  auto info = hypervisor_->lookup("acme.web1");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->uuid, vm->uuid);
  ASSERT_TRUE(info->metadata.has_value());
  EXPECT_EQ(info->metadata->cluster, "unit");
  EXPECT_EQ(info->metadata->tenant, "acme");
  // Every step is journaled, begun and done.
  auto journal = store_->tasks().journalOf(task.id);
  ASSERT_TRUE(journal.has_value());
  std::vector<std::string> steps;
  for (const auto& e : *journal) steps.push_back(e.step + ":" + toString(e.phase));
  EXPECT_EQ(steps, (std::vector<std::string>{"define:begin", "define:done", "start:begin",
                                             "start:done", "record:begin", "record:done"}));
  std::lock_guard lock(mutex_);
  bool saw_task = false;
  for (const auto& e : published_) saw_task = saw_task || e.type == "task";
  EXPECT_TRUE(saw_task);
}

TEST_F(VmServiceTest, DuplicateNameInTenantConflictsButOtherTenantMayReuseIt) {
  finish(service_->createVm(spec("dup"), false, "t"));
  auto again = service_->createVm(spec("dup"), false, "t");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  auto other = finish(service_->createVm(spec("dup", "other"), false, "t"));
  EXPECT_EQ(other.state, TaskState::kSucceeded);
}

// A node whose networks are off (NoNetworks) runs VMs without NICs and refuses a NIC, at the
// create and at a hot-plug, with the reason; nothing is recorded for the refused create.
TEST_F(VmServiceTest, NodeWithoutNetworksRefusesNics) {
  VmSpec with_nic = spec("nic");
  with_nic.nics.push_back({.network = "web"});
  auto refused = service_->createVm(with_nic, false, "t");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("no networks"), std::string::npos);
  EXPECT_FALSE(store_->vms().get("acme", "nic").has_value());

  finish(service_->createVm(spec("plain"), false, "t"));
  auto vm = store_->vms().get("acme", "plain");
  ASSERT_TRUE(vm.has_value());
  auto plugged = service_->addNic(*vm, {.network = "web"}, "t");
  ASSERT_FALSE(plugged.has_value());
  EXPECT_EQ(plugged.error().code, ErrorCode::kInvalidArgument);
  auto deleted = finish(service_->deleteVm(*vm, false, "t"));
  EXPECT_EQ(deleted.state, TaskState::kSucceeded);
}

TEST_F(VmServiceTest, ActionsAndDeleteRules) {
  finish(service_->createVm(spec("a1"), true, "t"));
  auto vm = *store_->vms().get("acme", "a1");
  EXPECT_EQ(finish(service_->action(vm, "pause", "t")).state, TaskState::kSucceeded);
  EXPECT_EQ(toString(store_->vms().get("acme", "a1")->state), "paused");
  vm = *store_->vms().get("acme", "a1");
  auto reboot = service_->action(vm, "reboot", "t");
  ASSERT_FALSE(reboot.has_value());
  EXPECT_EQ(reboot.error().code, ErrorCode::kConflict);
  EXPECT_EQ(finish(service_->action(vm, "resume", "t")).state, TaskState::kSucceeded);
  vm = *store_->vms().get("acme", "a1");
  EXPECT_EQ(toString(vm.state), "running");

  auto refused = service_->deleteVm(vm, false, "t");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(finish(service_->deleteVm(vm, true, "t")).state, TaskState::kSucceeded);
  EXPECT_FALSE(store_->vms().get("acme", "a1").has_value());
  EXPECT_FALSE(hypervisor_->lookup("acme.a1").has_value());
}

TEST_F(VmServiceTest, FailedCreateLeavesNothingBehind) {
  // A domain of the same name that is not ours: the create must not overwrite it.
  DomainContext ctx;
  ctx.cluster = "someone-else";
  ctx.accelerator = "tcg";
  ctx.uuid = "5b9f0d1e-0000-4000-8000-000000000001";
  ctx.machine = "q35";
  ctx.console_log_path = (dir_ / "x.log").string();
  ASSERT_TRUE(hypervisor_->define(renderDomainXml(buildDomainDef(spec("taken"), ctx))));
  auto task = finish(service_->createVm(spec("taken"), true, "t"));
  EXPECT_EQ(task.state, TaskState::kFailed);
  EXPECT_NE(task.error_json.find("conflict"), std::string::npos) << task.error_json;
  EXPECT_FALSE(store_->vms().get("acme", "taken").has_value());
  auto info = hypervisor_->lookup("acme.taken");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->uuid, ctx.uuid) << "the foreign domain was overwritten";
}

TEST_F(VmServiceTest, ReconcileAdoptsOursLeavesForeignAndRedefinesMissing) {
  DomainContext ours;
  ours.cluster = "unit";
  ours.accelerator = "tcg";
  ours.uuid = "5b9f0d1e-0000-4000-8000-000000000002";
  ours.machine = "q35";
  ours.console_log_path = (dir_ / "o.log").string();
  ASSERT_TRUE(hypervisor_->define(renderDomainXml(buildDomainDef(spec("orphan"), ours))));
  DomainContext foreign = ours;
  foreign.cluster = "elsewhere";
  foreign.uuid = "5b9f0d1e-0000-4000-8000-000000000003";
  ASSERT_TRUE(hypervisor_->define(renderDomainXml(buildDomainDef(spec("theirs"), foreign))));
  finish(service_->createVm(spec("lost"), false, "t"));
  ASSERT_TRUE(hypervisor_->undefine("acme.lost"));

  // libvirt's define/undefine events may already have reconciled; either way, after this
  // pass the outcome is the same.
  auto report = service_->reconcileNow();
  service_->waitIdle();
  EXPECT_GE(report.foreign, 1);
  auto adopted = store_->vms().get("acme", "orphan");
  ASSERT_TRUE(adopted.has_value());
  EXPECT_EQ(adopted->uuid, ours.uuid);
  EXPECT_FALSE(store_->vms().get("acme", "theirs").has_value());
  EXPECT_TRUE(hypervisor_->lookup("acme.lost").has_value());
  // libvirt's own sample domain has no Qiao metadata and is left alone.
  EXPECT_TRUE(hypervisor_->lookup("test").has_value());
  // A second pass finds nothing to do.
  auto again = service_->reconcileNow();
  EXPECT_EQ(again.adopted + again.redefined + again.updated, 0);
}

}  // namespace
}  // namespace qiao
