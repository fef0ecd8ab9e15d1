// Crash safety of storage work on the real Ceph: qiaod killed by SIGKILL during an image
// import and during a VM's clone of a golden image, ten times each (at a named step, or at a
// random moment). After each restart: no image is `ready` without its data and golden
// snapshot, no RBD image or work file is orphaned, every volume record has its RBD image and
// every VM its disk, and the task finished or failed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;


const std::vector<std::string> kImportFailpoints = {
    "image.import/probe:after",  "image.import/write:before", "image.import/create:after",
    "image.import/write:before", "image.import/write:after",   "image.import/golden:after",
    "image.import/ready:before", "image.import/create:before",
};
const std::vector<std::string> kCloneFailpoints = {
    "vm.create/disks:before", "vm.create/disks:after", "vm.create/define:after",
    "vm.create/record:after", "vm.delete/disks:before", "vm.delete/disks:after",
};

// What qiaod knows and what Ceph and the disk hold agree, for tenant `tenant`.
void expectStorageConsistent(Qiaod& q, ApiClient& c, VolumeDriver& rbd, const std::string& tenant,
                             const std::string& context) {
  std::set<std::string> images, volumes;
  auto listed = call(c, "GET", "/v1/images?tenant=" + tenant);
  ASSERT_EQ(listed.status, 200) << context << ": " << listed.raw;
  for (const auto& i : listed.body["items"]) {
    const std::string name = i["name"];
    EXPECT_NE(i["state"], "importing") << context << ": " << i.dump();
    if (i["state"] == "ready") {
      images.insert("img-" + name);
      auto stat = rbd.stat({tenant, "img-" + name});
      EXPECT_TRUE(stat.has_value()) << context << ": ready image " << name << " has no data";
      // Its golden snapshot exists: a clone of it can be made.
      VolumeId probe{tenant, "vol-probe-" + name};
      auto cloned = rbd.clone({tenant, "img-" + name}, "golden", probe);
      EXPECT_TRUE(cloned.has_value())
          << context << ": ready image " << name << " cannot be cloned from its golden snapshot: "
          << (cloned ? std::string() : cloned.error().describe());
      (void)rbd.remove(probe);
    }
  }
  auto volume_list = call(c, "GET", "/v1/volumes?tenant=" + tenant);
  ASSERT_EQ(volume_list.status, 200) << context << ": " << volume_list.raw;
  for (const auto& v : volume_list.body["items"]) {
    EXPECT_NE(v["state"], "creating") << context << ": " << v.dump();
    volumes.insert("vol-" + v["name"].get<std::string>());
    EXPECT_TRUE(rbd.stat({tenant, "vol-" + v["name"].get<std::string>()}).has_value())
        << context << ": volume " << v["name"] << " has no RBD image";
    if (!v["attached_vm"].get<std::string>().empty()) {
      EXPECT_EQ(call(c, "GET", "/v1/vms/" + v["attached_vm"].get<std::string>() +
                                   "?tenant=" + tenant).status, 200)
          << context << ": volume " << v["name"] << " is held by a vm that does not exist";
    }
  }
  auto vm_list = call(c, "GET", "/v1/vms?tenant=" + tenant);
  ASSERT_EQ(vm_list.status, 200) << context << ": " << vm_list.raw;
  for (const auto& vm : vm_list.body["items"]) {
    EXPECT_TRUE(volumes.contains("vol-" + vm["name"].get<std::string>() + "-disk0"))
        << context << ": vm " << vm["name"] << " lost its disk";
  }
  auto in_ceph = rbd.list(tenant);
  ASSERT_TRUE(in_ceph.has_value());
  for (const auto& name : *in_ceph) {
    if (name.starts_with("img-")) {
      EXPECT_TRUE(images.contains(name)) << context << ": orphaned RBD image " << name;
    } else if (name.starts_with("vol-")) {
      EXPECT_TRUE(volumes.contains(name)) << context << ": orphaned RBD image " << name;
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(q.dir() + "/state/images", ec)) {
    ADD_FAILURE() << context << ": orphaned work file " << entry.path();
  }
}

class StorageCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    rbd_ = stackCeph();
    ASSERT_NE(rbd_, nullptr);
    tenant_ = "sc" + randomSuffix(5);
  }
  std::unique_ptr<VolumeDriver> rbd_;
  std::string tenant_;
  std::mt19937 rng_{std::random_device{}()};
};

TEST_F(StorageCrash, AnImportKilledTenTimesLeavesAReadyImageOrNothing) {
  Qiaod q(stackCephConfig());
  // A qcow2, so that the conversion step is in the path too.
  const std::string work = q.dir() + "/src";
  fs::create_directories(work);
  std::string raw(12 << 20, '\0');
  raw.replace(0, 9, "QIAO-CRSH");
  { std::ofstream(work + "/src.raw", std::ios::binary) << raw; }
  auto made = runCommand({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", work + "/src.raw",
                          work + "/src.qcow2"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  int deaths = 0;
  for (int round = 0; round < 10; ++round) {
    const std::string name = "i" + std::to_string(round);
    const bool use_failpoint = round % 2 == 0;
    const std::string fp = kImportFailpoints[rng_() % kImportFailpoints.size()];
    const std::string context = "import round " + std::to_string(round) +
                                (use_failpoint ? " failpoint " + fp : " random kill");
    SCOPED_TRACE(context);
    q.start(use_failpoint ? std::vector<std::string>{"QIAO_FAILPOINT=" + fp}
                          : std::vector<std::string>{});
    auto c = q.adminClient();
    std::thread killer;
    if (!use_failpoint) {
      const int delay_ms = static_cast<int>(rng_() % 1200);
      killer = std::thread([&q, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        q.kill9();
      });
    }
    bool died = runUntilDeath(q, c, "POST", "/v1/images",
                              json({{"name", name}, {"tenant", tenant_},
                                    {"source_path", work + "/src.qcow2"}})
                                  .dump());
    if (killer.joinable()) killer.join();
    if (died) ++deaths;
    if (q.running()) q.kill9();

    q.start();
    auto c2 = q.adminClient();
    ASSERT_TRUE(waitAllTasksDone(c2, 90s)) << context;
    auto tasks = call(c2, "GET", "/v1/tasks?tenant=" + tenant_ + "&target=image/" + name);
    for (const auto& t : tasks.body["items"]) {
      EXPECT_TRUE(t["state"] == "succeeded" || t["state"] == "failed") << t.dump();
    }
    expectStorageConsistent(q, c2, *rbd_, tenant_,
                            context + " after restart (tasks: " + tasks.raw + ")");
    auto image = call(c2, "GET", "/v1/images/" + name + "?tenant=" + tenant_);
    if (image.status == 200) {
      EXPECT_EQ(image.body["state"], "ready");
      EXPECT_EQ(*rbd_->read({tenant_, "img-" + name}, 0, 9), "QIAO-CRSH");
      auto del = call(c2, "DELETE", "/v1/images/" + name + "?tenant=" + tenant_);
      ASSERT_EQ(del.status, 202) << del.raw;
      EXPECT_EQ(waitTask(c2, del.body["id"])["state"], "succeeded");
    }
    q.kill9();
  }
  EXPECT_GE(deaths, 3) << "too few rounds actually killed qiaod mid-import";
}

TEST_F(StorageCrash, AVmCloneKilledTenTimesLeavesAVmWithItsDiskOrNeither) {
  Qiaod q(stackCephConfig());
  q.start();
  {
    auto c = q.adminClient();
    std::string data(4 << 20, '\0');
    data.replace(0, 9, "QIAO-BASE");
    auto made = call(c, "POST", "/v1/images", json({{"name", "base"}, {"tenant", tenant_}}).dump());
    ASSERT_EQ(made.status, 201) << made.raw;
    auto put = c.request("PUT", "/v1/images/base/data?tenant=" + tenant_, data,
                         "application/octet-stream");
    ASSERT_TRUE(put && put->status == 202);
    ASSERT_EQ(waitTask(c, json::parse(put->body)["id"])["state"], "succeeded");
  }
  q.kill9();
  int deaths = 0;
  for (int round = 0; round < 10; ++round) {
    const std::string name = "v" + std::to_string(round);
    const bool use_failpoint = round % 2 == 0;
    const std::string fp = kCloneFailpoints[rng_() % kCloneFailpoints.size()];
    const std::string context = "clone round " + std::to_string(round) +
                                (use_failpoint ? " failpoint " + fp : " random kill");
    SCOPED_TRACE(context);
    q.start(use_failpoint ? std::vector<std::string>{"QIAO_FAILPOINT=" + fp}
                          : std::vector<std::string>{});
    auto c = q.adminClient();
    std::thread killer;
    if (!use_failpoint) {
      const int delay_ms = static_cast<int>(rng_() % 800);
      killer = std::thread([&q, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        q.kill9();
      });
    }
    json spec = {{"name", name}, {"tenant", tenant_}, {"vcpus", 1}, {"memory_mib", 128},
                 {"disks", json::array({{{"image", "base"}, {"size_gib", 1}}})}};
    bool died = runUntilDeath(q, c, "POST", "/v1/vms?start=false", spec.dump());
    if (!died) {
      died = runUntilDeath(q, c, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant_ + "&force=true",
                           "");
    }
    if (killer.joinable()) killer.join();
    if (died) ++deaths;
    if (q.running()) q.kill9();

    q.start();
    auto c2 = q.adminClient();
    ASSERT_TRUE(waitAllTasksDone(c2, 90s)) << context;
    expectStorageConsistent(q, c2, *rbd_, tenant_, context + " after restart");
    if (call(c2, "GET", "/v1/vms/" + name + "?tenant=" + tenant_).status == 200) {
      auto del = call(c2, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant_ + "&force=true");
      ASSERT_EQ(del.status, 202) << del.raw;
      auto done = waitTask(c2, del.body["id"]);
      EXPECT_EQ(done["state"], "succeeded") << done.dump();
    }
    EXPECT_EQ(call(c2, "GET", "/v1/volumes/" + name + "-disk0?tenant=" + tenant_).status, 404)
        << context << ": the disk outlived its vm";
    expectStorageConsistent(q, c2, *rbd_, tenant_, context + " after cleanup");
    q.kill9();
  }
  EXPECT_GE(deaths, 3) << "too few rounds actually killed qiaod mid-clone";
  q.start();
  auto c = q.adminClient();
  auto del = call(c, "DELETE", "/v1/images/base?tenant=" + tenant_);
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
  auto journal = q.admin({"journal", "verify"});
  EXPECT_EQ(journal.exit_code, 0) << journal.out << journal.err;
}

}  // namespace
}  // namespace qiao::testing
