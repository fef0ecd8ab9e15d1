// QuotaService on a real store: limits from the defaults and what an admin set, usage counted
// from the records, and the check's refusal with the figures.
#include "node/quotas/quota_service.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/crypto.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class QuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qiao-quota-" + newUuid());
    fs::create_directories(dir_);
    auto store = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(store.has_value()) << store.error().describe();
    store_ = std::move(*store);
    quotas_ = std::make_unique<QuotaService>(*store_, QuotaFigures{{"vms", 10}, {"uploads", 2}});
  }
  void TearDown() override {
    quotas_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void addVm(const std::string& name, const json& spec) {
    VmRecord vm;
    vm.tenant = "t";
    vm.name = name;
    vm.uuid = newUuid();
    vm.spec_json = spec.dump();
    vm.state = VmState::kShutoff;
    TaskRecord task;
    task.id = newUuid();
    task.kind = TaskKind::kVmCreate;
    task.tenant = "t";
    task.target = name;
    task.state = TaskState::kSucceeded;
    ASSERT_TRUE(store_->vms().create(vm, task).has_value());
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<QuotaService> quotas_;
};

TEST_F(QuotaTest, LimitsAreTheDefaultsUntilAnAdminSetsThem) {
  auto limits = quotas_->limits("t");
  ASSERT_TRUE(limits.has_value());
  EXPECT_EQ(limits->at("vms"), 10);
  EXPECT_EQ(limits->at("vcpus"), -1);
  EXPECT_EQ(limits->at("uploads"), 2);
  ASSERT_TRUE(quotas_->set("t", {{"vcpus", 8}, {"vms", std::nullopt}}).has_value());
  limits = quotas_->limits("t");
  EXPECT_EQ(limits->at("vcpus"), 8);
  EXPECT_EQ(limits->at("vms"), 10) << "null is the default again";
  // What the body's parser refuses (quota_spec_test), set() refuses too, changing nothing.
  EXPECT_FALSE(quotas_->set("t", {{"cpus", 1}}).has_value());
  EXPECT_FALSE(quotas_->set("t", {{"vcpus", 1}, {"vms", -2}}).has_value());
  EXPECT_FALSE(quotas_->set("t", {}).has_value());
  EXPECT_EQ(quotas_->limits("t")->at("vcpus"), 8);
  EXPECT_EQ(quotas_->tenantsWithQuotas().value(), std::vector<std::string>{"t"});
}

TEST_F(QuotaTest, UsageCountsVmsAtTheirMaximumsAndVolumesInGib) {
  addVm("a", {{"vcpus", 1}, {"max_vcpus", 4}, {"memory_mib", 512}, {"max_memory_mib", 1024}});
  addVm("b", {{"vcpus", 2}, {"max_vcpus", 2}, {"memory_mib", 256}, {"max_memory_mib", 256}});
  VolumeRecord v;
  v.tenant = "t";
  v.name = "data";
  v.uuid = newUuid();
  v.size_bytes = (int64_t{3} << 30) + 1;  // a byte over 3 GiB counts as 4
  v.state = VolumeState::kAvailable;
  v.backend = "local";
  ASSERT_TRUE(store_->volumes().create(v, nullptr).has_value());
  auto usage = quotas_->usage("t");
  ASSERT_TRUE(usage.has_value()) << usage.error().describe();
  EXPECT_EQ(usage->at("vms"), 2);
  EXPECT_EQ(usage->at("vcpus"), 6);
  EXPECT_EQ(usage->at("memory_mib"), 1280);
  EXPECT_EQ(usage->at("volume_gib"), 4);
  EXPECT_EQ(usage->at("networks"), 0);
  EXPECT_EQ(quotas_->usage("other")->at("vms"), 0);
}

TEST_F(QuotaTest, TheCheckRefusesWhatWouldPassALimitAndNamesTheFigures) {
  addVm("a", {{"vcpus", 2}, {"max_vcpus", 2}, {"memory_mib", 256}});
  ASSERT_TRUE(quotas_->set("t", {{"vcpus", 3}}).has_value());
  EXPECT_TRUE(quotas_->check("t", {{"vcpus", 1}}).has_value());
  auto over = quotas_->check("t", {{"vms", 1}, {"vcpus", 2}});
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ErrorCode::kConflict);
  EXPECT_NE(over.error().message.find("quota of vcpus is 3: it has 2 and this asks for 2 more"),
            std::string::npos)
      << over.error().message;
  auto details = json::parse(over.error().details_json);
  EXPECT_EQ(details["quota"], "vcpus");
  EXPECT_EQ(details["usage"], 2);
  // Giving back is never refused; no limit is no limit.
  EXPECT_TRUE(quotas_->check("t", {{"vcpus", -2}}).has_value());
  EXPECT_TRUE(quotas_->check("t", {{"memory_mib", 1 << 30}}).has_value());
}

}  // namespace
}  // namespace qiao
