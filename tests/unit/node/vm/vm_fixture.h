// VmFixture: a VmService as NodeServices builds it, on libvirt's own test driver
// (test:///default): a store in a temporary directory, the task engine, the guests' monitors
// (none: the test driver has no QMP), volumes on the local driver and no networks.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "base/event_bus.h"
#include "node/networks/vm_ports.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "node/vm/guest_monitors.h"
#include "node/vm/hypervisor.h"
#include "node/vm/vm_service.h"
#include "node/volumes/volume_service.h"
#include "storage/volume_driver.h"

namespace qiao::testing {

class VmFixture : public ::testing::Test {
 protected:
  // Each test its own folder; `workers` task workers.
  void startVmService(int workers) {
    dir_ = std::filesystem::temp_directory_path() /
           ("qiao-vm-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(store.has_value()) << store.error().describe();
    store_ = std::move(*store);
    LibvirtOptions lv;
    lv.uri = "test:///default";
    hypervisor_ = makeLibvirtHypervisor(lv);
    VmServiceOptions options;
    options.cluster = "unit";
    options.console_dir = (dir_ / "console").string();
    options.host_accelerator = "tcg";
    options.shutdown_timeout_s = 5;
    tasks_ = std::make_unique<TaskEngine>(store_->tasks(), events_, workers, 3);
    guests_ = std::make_unique<GuestMonitors>(*store_, *hypervisor_, nullptr);
    auto driver = makeLocalDriver((dir_ / "volumes").string());
    ASSERT_TRUE(driver.has_value()) << driver.error().describe();
    driver_ = std::move(*driver);
    volumes_ = std::make_unique<VolumeService>(*store_, *driver_, *tasks_, events_, *guests_);
    service_ = std::make_unique<VmService>(options, *store_, *hypervisor_, events_, *tasks_,
                                           *guests_, *volumes_, no_networks_);
  }
  // As NodeServices starts: the VMs reconciled, then the unfinished tasks resumed.
  void startAndSettle() {
    service_->start([this] { tasks_->resumeUnfinished(); });
    service_->waitIdle();
  }
  void TearDown() override {
    if (service_) service_->stop();
    if (tasks_) tasks_->stop();
    if (hypervisor_) hypervisor_->stop();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Hypervisor> hypervisor_;
  EventBus events_;
  std::unique_ptr<TaskEngine> tasks_;
  std::unique_ptr<GuestMonitors> guests_;
  std::unique_ptr<VolumeDriver> driver_;
  std::unique_ptr<VolumeService> volumes_;
  NoNetworks no_networks_;
  std::unique_ptr<VmService> service_;
};

}  // namespace qiao::testing
