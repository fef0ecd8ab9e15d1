// GuestMonitors on libvirt's test driver: one monitor kept per VM, forgotten on delete, none
// without monitor access or once stopped; LiveDisks answers for volumes no running VM has;
// the kept monitors of many VMs share one libvirt connection and a fixed set of threads.
#include "node/vm/guest_monitors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "node/vm/qmp/libvirt_qmp_channel.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

size_t threadsOfThisProcess() {
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/task"),
                                           fs::directory_iterator()));
}

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

TEST_F(GuestMonitorsTest, StoppedMonitorsAreForgottenAndNoneIsOpened) {
  int opened = 0;
  GuestMonitors guests(*store_, *hypervisor_,
                       [&](const std::string&) -> Result<std::shared_ptr<QmpChannel>> {
                         ++opened;
                         return std::shared_ptr<QmpChannel>(std::make_shared<IdleChannel>());
                       });
  auto kept = guests.monitorOf(vm("a", "u-a"));
  ASSERT_TRUE(kept);
  guests.stop();
  auto after = guests.monitorOf(vm("a", "u-a"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(kept->use_count(), 1) << "no longer kept";
}

// The kept monitors of N running VMs as qiaod makes them (one LibvirtQmpConnection): one
// libvirt connection and the same threads whatever N, each monitor used once. The figures
// are printed next to those of channels with their own connection (as every kept monitor had
// before), for the record.
TEST_F(GuestMonitorsTest, KeptMonitorsShareOneConnectionAndAFixedSetOfThreads) {
  constexpr int kVms = 20;
  for (int i = 0; i < kVms; ++i) {
    const std::string name = "t.kept-" + std::to_string(i);
    ASSERT_TRUE(hypervisor_->define("<domain type='test'><name>" + name +
                                    "</name><memory>65536</memory><os><type>hvm</type></os>"
                                    "</domain>"));
    ASSERT_TRUE(hypervisor_->start(name));
  }
  auto useAll = [&](GuestMonitors& guests, int n) {
    for (int i = 0; i < n; ++i) {
      auto qmp = guests.monitorOf(vm("kept-" + std::to_string(i), "u-" + std::to_string(i)));
      ASSERT_TRUE(qmp);
      // The test driver has no passthrough: the call fails after finding the domain.
      auto answer = (*qmp)->execute("query-status", {}, std::chrono::seconds(5));
      ASSERT_FALSE(answer);
      EXPECT_NE(answer.error().code, ErrorCode::kNotFound) << answer.error().describe();
      EXPECT_NE(answer.error().code, ErrorCode::kTimeout) << answer.error().describe();
    }
  };

  const size_t before = threadsOfThisProcess();
  size_t shared_one = 0, shared_all = 0;
  {
    LibvirtQmpConnectionOptions options;
    options.uri = "test:///default";
    LibvirtQmpConnection connection(options);
    GuestMonitors guests(*store_, *hypervisor_,
                         [&](const std::string& domain) -> Result<std::shared_ptr<QmpChannel>> {
                           return std::shared_ptr<QmpChannel>(connection.channel(domain));
                         });
    useAll(guests, 1);
    shared_one = threadsOfThisProcess() - before;
    useAll(guests, kVms);
    shared_all = threadsOfThisProcess() - before;
    EXPECT_EQ(shared_all, shared_one) << "threads grow with the VMs";
    EXPECT_EQ(shared_all, options.call_threads);
    EXPECT_EQ(connection.connectionsOpened(), 1u);
    guests.stop();
    connection.stop();
    EXPECT_EQ(threadsOfThisProcess(), before) << "stop() joins the workers";
  }

  size_t own_all = 0;
  {
    GuestMonitors guests(*store_, *hypervisor_,
                         [](const std::string& domain) -> Result<std::shared_ptr<QmpChannel>> {
                           LibvirtQmpOptions options;
                           options.uri = "test:///default";
                           options.domain = domain;
                           return std::shared_ptr<QmpChannel>(
                               std::make_shared<LibvirtQmpChannel>(options));
                         });
    useAll(guests, kVms);
    own_all = threadsOfThisProcess() - before;
  }
  std::printf("kept monitors of %d VMs: shared connection: %zu threads (%zu with one VM), "
              "1 libvirt connection; a connection per monitor: %zu threads, %d connections\n",
              kVms, shared_all, shared_one, own_all, kVms);
  EXPECT_GT(own_all, shared_all);
}

}  // namespace
}  // namespace qiao
