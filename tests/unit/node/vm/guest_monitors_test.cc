// GuestMonitors on libvirt's test driver: one monitor kept per VM, forgotten on delete, none
// without monitor access; LiveDisks answers for volumes no running VM has.
#include "node/vm/guest_monitors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace qiao {
namespace {

namespace fs = std::filesystem;

// A monitor that is never asked anything here.
class IdleChannel final : public QmpChannel {
 protected:
  Result<nlohmann::json> doExecute(std::string_view, nlohmann::json,
                                   std::chrono::milliseconds) override {
    return makeError(ErrorCode::kUnavailable, "qmp", "idle");
  }
  QmpSubscription doSubscribe(std::string, QmpEventHandler) override { return {}; }
};

class GuestMonitorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qiao-guests-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto store = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(store);
    store_ = std::move(*store);
    LibvirtOptions lv;
    lv.uri = "test:///default";
    hypervisor_ = makeLibvirtHypervisor(lv);
  }
  void TearDown() override {
    hypervisor_->stop();
    store_.reset();
    fs::remove_all(dir_);
  }
  static VmRecord vm(const std::string& name, const std::string& uuid) {
    VmRecord v;
    v.tenant = "t";
    v.name = name;
    v.uuid = uuid;
    return v;
  }
  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Hypervisor> hypervisor_;
};

TEST_F(GuestMonitorsTest, OneMonitorIsKeptPerVmUntilForgotten) {
  std::vector<std::string> opened;
  GuestMonitors guests(*store_, *hypervisor_,
                       [&](const std::string& domain) -> Result<std::shared_ptr<QmpChannel>> {
                         opened.push_back(domain);
                         if (domain.find("broken") != std::string::npos) {
                           return makeError(ErrorCode::kUnavailable, "qmp", "no monitor");
                         }
                         return std::shared_ptr<QmpChannel>(std::make_shared<IdleChannel>());
                       });
  ASSERT_TRUE(guests.monitorOf(vm("a", "u-a")));
  ASSERT_TRUE(guests.monitorOf(vm("a", "u-a")));
  ASSERT_TRUE(guests.monitorOf(vm("b", "u-b")));
  EXPECT_EQ(opened.size(), 2u);
  guests.forget("u-a");
  ASSERT_TRUE(guests.monitorOf(vm("a", "u-a")));
  EXPECT_EQ(opened.size(), 3u);
  // A monitor that cannot be opened is not kept: the next call tries again.
  EXPECT_FALSE(guests.monitorOf(vm("broken", "u-x")));
  EXPECT_FALSE(guests.monitorOf(vm("broken", "u-x")));
  EXPECT_EQ(opened.size(), 5u);
}

TEST_F(GuestMonitorsTest, WithoutMonitorAccessOrARunningVmThereIsNoLiveDisk) {
  GuestMonitors guests(*store_, *hypervisor_, nullptr);
  auto none = guests.monitorOf(vm("a", "u-a"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
  // A VM that has no domain is not live.
  auto live = guests.isLive(vm("nowhere", "u-n"));
  ASSERT_TRUE(live);
  EXPECT_FALSE(*live);

  VolumeRecord free_volume;
  free_volume.tenant = "t";
  free_volume.name = "data";
  free_volume.backend = "rbd";
  auto disk = guests.liveDiskOf(free_volume);
  ASSERT_TRUE(disk);
  EXPECT_EQ(disk->qmp, nullptr);
  EXPECT_TRUE(guests.growLive(free_volume, 1 << 30));
  // Attached to a VM the store does not know (deleted meanwhile): nothing live either.
  free_volume.attached_vm = "gone";
  EXPECT_EQ(guests.liveDiskOf(free_volume)->qmp, nullptr);
  EXPECT_TRUE(guests.growLive(free_volume, 1 << 30));
}

}  // namespace
}  // namespace qiao
