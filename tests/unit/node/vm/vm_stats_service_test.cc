// VmService's statistics, on the node as qiaod builds it (tests/unit/node/service_fixture.h)
// and libvirt's test driver (which reports a domain's state only): a
// running VM answers its object, a stopped one kConflict naming its state, and /metrics' bulk
// figures name this node's VMs and nothing else.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "node/vm/vm_service.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

class VmStatsServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    startNode();
  }
  void nodeBuilt() override { service_ = &node_->vms(); }

  VmRecord create(const std::string& name, bool start) {
    VmSpec s;
    s.name = name;
    s.tenant = "acme";
    s.arch = "x86_64";
    s.memory_mib = 128;
    auto task = service_->createVm(s, start, "t");
    EXPECT_TRUE(task.has_value()) << task.error().describe();
    service_->waitIdle();
    return *store_->vms().get("acme", name);
  }

  VmService* service_ = nullptr;
};

TEST_F(VmStatsServiceTest, RunningVmAnswersItsObject) {
  VmRecord vm = create("web1", true);
  auto stats = service_->stats(vm);
  ASSERT_TRUE(stats.has_value()) << stats.error().describe();
  EXPECT_EQ((*stats)["vm"], "web1");
  EXPECT_EQ((*stats)["tenant"], "acme");
  EXPECT_EQ((*stats)["uuid"], vm.uuid);
  EXPECT_EQ((*stats)["state"], "running");
  EXPECT_TRUE((*stats)["cpu"].contains("time_seconds"));
  EXPECT_TRUE((*stats)["memory"].contains("maximum_bytes"));
  EXPECT_TRUE((*stats)["disks"].is_array());
  EXPECT_TRUE((*stats)["nics"].is_array());
  EXPECT_TRUE((*stats)["missing"].empty()) << stats->dump();
  EXPECT_TRUE((*stats)["collected_at"].get<std::string>().ends_with("Z"));
}

TEST_F(VmStatsServiceTest, StoppedVmIsAConflictNamingItsState) {
  VmRecord vm = create("off1", false);
  auto stats = service_->stats(vm);
  ASSERT_FALSE(stats.has_value());
  EXPECT_EQ(stats.error().code, ErrorCode::kConflict);
  EXPECT_NE(stats.error().message.find("shutoff"), std::string::npos) << stats.error().message;
  EXPECT_NE(stats.error().message.find("acme/off1"), std::string::npos) << stats.error().message;
}

TEST_F(VmStatsServiceTest, MetricsFiguresNameOnlyThisNodesVms) {
  create("m1", true);
  create("m2", false);
  auto figures = service_->metricsFigures();
  std::map<std::string, DomainState> seen;
  for (const auto& f : figures) seen[f.tenant + "/" + f.name] = f.domain.state;
  EXPECT_EQ(seen.size(), 2u) << "the test driver's own domain 'test' is not a Qiao VM";
  EXPECT_EQ(seen["acme/m1"], DomainState::kRunning);
  EXPECT_EQ(seen["acme/m2"], DomainState::kShutoff);
}

TEST_F(VmStatsServiceTest, HypervisorDomainStatsOfOneDomain) {
  auto s = hypervisor_->domainStats("test");
  ASSERT_TRUE(s.has_value()) << s.error().describe();
  EXPECT_EQ(s->name, "test");
  EXPECT_EQ(s->state, DomainState::kRunning);
  auto missing = hypervisor_->domainStats("no-such-domain");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace qiao
