// VM disks on the stack's Ceph through a real qiaod and real QEMU: three guests boot with
// copy-on-write clones of one golden image, each reads the image on vda and its writes stay
// its own; an attached volume is not deleted (409 names the VM) until the VM is gone; a
// tenant cannot attach or clone another tenant's volumes and images; QEMU reaches the RBD
// namespace with the key from a file, never on its command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;


class VmDisksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qiaod_ = new Qiaod(stackCephConfig());
    qiaod_->start();
  }
  static void TearDownTestSuite() {
    delete qiaod_;
    qiaod_ = nullptr;
  }
  void SetUp() override {
    if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
    suffix_ = randomSuffix();
    rbd_ = stackCeph();
    ASSERT_NE(rbd_, nullptr);
  }
  ApiClient admin() { return qiaod_->adminClient(); }
  ApiClient opA() { return qiaod_->client(qiaod_->identity("op-a", "operator", {"ta"})); }

  // A ready image of tenant ta whose first bytes are `marker`.
  void makeImage(const std::string& name, const std::string& marker) {
    auto a = opA();
    auto made = call(a, "POST", "/v1/images", json({{"name", name}}).dump());
    ASSERT_EQ(made.status, 201) << made.raw;
    std::string data(4 << 20, '\0');
    data.replace(0, marker.size(), marker);
    auto put = a.request("PUT", "/v1/images/" + name + "/data", data, "application/octet-stream");
    ASSERT_TRUE(put && put->status == 202) << (put ? put->body : put.error().describe());
    ASSERT_EQ(waitTask(a, json::parse(put->body)["id"])["state"], "succeeded");
  }
  json createVm(ApiClient& c, const json& spec) {
    auto r = call(c, "POST", "/v1/vms", spec.dump());
    EXPECT_EQ(r.status, 202) << r.raw;
    return waitTask(c, r.body.value("id", ""), std::chrono::seconds(180));
  }
  void deleteVm(ApiClient& c, const std::string& name, const std::string& tenant) {
    auto r = call(c, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant + "&force=true");
    ASSERT_EQ(r.status, 202) << r.raw;
    EXPECT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
  }
  // The phases the task's journal has for `step` ("begin", "done", ...), read from the store.
  std::vector<std::string> journalPhases(const std::string& task, const std::string& step) {
    auto r = runCommand({"sqlite3", qiaod_->dir() + "/state/qiao.db",
                         "SELECT phase FROM journal WHERE task_id = '" + task + "' AND step = '" +
                             step + "' ORDER BY seq"});
    std::vector<std::string> phases;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) phases.push_back(line);
    return phases;
  }
  // Creates image `name` of tenant ta and sends its data; returns the import task at once.
  std::string startImport(ApiClient& a, const std::string& name, const std::string& data) {
    auto made = call(a, "POST", "/v1/images", json({{"name", name}}).dump());
    EXPECT_EQ(made.status, 201) << made.raw;
    auto put = a.request("PUT", "/v1/images/" + name + "/data", data, "application/octet-stream");
    EXPECT_TRUE(put && put->status == 202) << (put ? put->body : put.error().describe());
    return put && put->status == 202 ? json::parse(put->body)["id"].get<std::string>() : "";
  }

  static Qiaod* qiaod_;
  std::string suffix_;
  std::unique_ptr<VolumeDriver> rbd_;
};
Qiaod* VmDisksTest::qiaod_ = nullptr;

TEST_F(VmDisksTest, ThreeGuestsBootFromClonesOfOneGoldenImageAndKeepTheirWritesApart) {
  auto c = admin();
  const std::string image = "golden-" + suffix_;
  const std::string marker = "QIAO-GOLDEN-" + suffix_;
  makeImage(image, marker);

  std::vector<std::string> vms;
  for (int i = 0; i < 3; ++i) {
    const std::string vm = "clone" + std::to_string(i) + "-" + suffix_;
    json spec = guestSpec(vm, "ta",
                          "qiao.readdisk=vda qiao.writedisk=vda:WROTE-BY-" + vm);
    spec["disks"] = json::array({{{"image", image}, {"size_gib", 1}}});
    json task = createVm(c, spec);
    ASSERT_EQ(task["state"], "succeeded") << task.dump();
    vms.push_back(vm);
  }
  for (const auto& vm : vms) {
    std::string log = waitConsole(c, vm, "ta", "disk vda wrote", 1, std::chrono::seconds(120));
    EXPECT_NE(log.find("disk vda head=" + marker), std::string::npos)
        << vm << " did not read the image on vda:\n" << log;
  }
  // Each clone holds its own write; the golden image holds none of them.
  for (const auto& vm : vms) {
    const VolumeId disk{"ta", "vol-" + vm + "-disk0"};
    auto head = rbd_->read(disk, 0, 64);
    ASSERT_TRUE(head.has_value()) << head.error().describe();
    EXPECT_TRUE(head->starts_with("WROTE-BY-" + vm)) << vm << ": " << head->substr(0, 40);
    EXPECT_EQ(rbd_->stat(disk)->size_bytes, int64_t{1} << 30);
  }
  EXPECT_TRUE(rbd_->read({"ta", "img-" + image}, 0, 64)->starts_with(marker));

  // The disks are volumes of the tenant, in use by their VMs; not deletable while they are.
  auto held = call(c, "DELETE", "/v1/volumes/" + vms[0] + "-disk0?tenant=ta");
  EXPECT_EQ(held.status, 409) << held.raw;
  EXPECT_EQ(held.body["error"]["details"]["vm"], vms[0]) << held.raw;

  // QEMU reaches the tenant's namespace, and the key is not on its command line.
  auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "ta." + vms[0]});
  EXPECT_NE(xml.out.find("&quot;namespace&quot;:&quot;ta&quot;"), std::string::npos) << xml.out;
  const std::string key = readFile(qiaod_->dir() + "/state/ceph/client.qiao.key");
  ASSERT_GT(key.size(), 20u);
  auto pids = runCommand({"pgrep", "-f", "guest=ta." + vms[0]});
  for (const auto& pid : std::vector<std::string>{pids.out.substr(0, pids.out.find('\n'))}) {
    if (pid.empty()) continue;
    EXPECT_EQ(readFile("/proc/" + pid + "/cmdline").find(key), std::string::npos)
        << "the cephx key is on QEMU's command line";
  }

  for (const auto& vm : vms) deleteVm(c, vm, "ta");
  for (const auto& vm : vms) {
    EXPECT_EQ(rbd_->stat({"ta", "vol-" + vm + "-disk0"}).error().code, ErrorCode::kNotFound)
        << "the disk of " << vm << " outlived it";
    EXPECT_EQ(call(c, "GET", "/v1/volumes/" + vm + "-disk0?tenant=ta").status, 404);
  }
  auto del = call(c, "DELETE", "/v1/images/" + image + "?tenant=ta");
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
}

TEST_F(VmDisksTest, AnAttachedVolumeIsHeldUntilItsVmIsGoneAndKeptDisksStay) {
  auto c = admin();
  const std::string image = "base-" + suffix_;
  makeImage(image, "QIAO-BASE");
  const std::string data = "data-" + suffix_;
  auto made = call(c, "POST", "/v1/volumes",
                   json({{"name", data}, {"tenant", "ta"}, {"size_gib", 1}}).dump());
  ASSERT_EQ(made.status, 202) << made.raw;
  ASSERT_EQ(waitTask(c, made.body["id"])["state"], "succeeded");

  const std::string vm = "holder-" + suffix_;
  json spec = guestSpec(vm, "ta", "qiao.readdisk=vdb");
  spec["disks"] = json::array({{{"image", image}, {"keep", true}}, {{"volume", data}}});
  ASSERT_EQ(createVm(c, spec)["state"], "succeeded");
  waitConsole(c, vm, "ta", "disk vdb head=", 1, std::chrono::seconds(120));

  auto volume = call(c, "GET", "/v1/volumes/" + data + "?tenant=ta").body;
  EXPECT_EQ(volume["state"], "in-use");
  EXPECT_EQ(volume["attached_vm"], vm);
  auto held = call(c, "DELETE", "/v1/volumes/" + data + "?tenant=ta");
  EXPECT_EQ(held.status, 409) << held.raw;
  EXPECT_NE(held.raw.find(vm), std::string::npos) << held.raw;
  // Another VM cannot take it either.
  json other = guestSpec("thief-" + suffix_, "ta");
  other["disks"] = json::array({{{"volume", data}}});
  auto refused = call(c, "POST", "/v1/vms", other.dump());
  EXPECT_EQ(refused.status, 409) << refused.raw;

  deleteVm(c, vm, "ta");
  volume = call(c, "GET", "/v1/volumes/" + data + "?tenant=ta").body;
  EXPECT_EQ(volume["state"], "available");
  EXPECT_EQ(volume["attached_vm"], "");
  // The kept image disk stays, now a volume of its own.
  auto kept = call(c, "GET", "/v1/volumes/" + vm + "-disk0?tenant=ta");
  ASSERT_EQ(kept.status, 200) << kept.raw;
  EXPECT_EQ(kept.body["state"], "available");
  EXPECT_EQ(kept.body["image"], "ta/" + image);
  // An image with a volume cloned from it is not deleted.
  auto image_held = call(c, "DELETE", "/v1/images/" + image + "?tenant=ta");
  EXPECT_EQ(image_held.status, 409) << image_held.raw;

  for (const auto& name : {data, vm + "-disk0"}) {
    auto del = call(c, "DELETE", "/v1/volumes/" + name + "?tenant=ta");
    ASSERT_EQ(del.status, 202) << del.raw;
    EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
  }
  auto del = call(c, "DELETE", "/v1/images/" + image + "?tenant=ta");
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
}

TEST_F(VmDisksTest, ATenantCannotAttachOrCloneAnotherTenantsVolumesAndImages) {
  auto c = admin();
  const std::string image = "private-" + suffix_;
  makeImage(image, "QIAO-PRIVATE");
  const std::string data = "secret-" + suffix_;
  auto made = call(c, "POST", "/v1/volumes",
                   json({{"name", data}, {"tenant", "ta"}, {"size_gib", 1}}).dump());
  ASSERT_EQ(waitTask(c, made.body["id"])["state"], "succeeded");

  const auto domains_before = libvirtDomains();
  json steal_volume = guestSpec("steal-v-" + suffix_, "tb");
  steal_volume["disks"] = json::array({{{"volume", data}}});
  auto r1 = call(c, "POST", "/v1/vms", steal_volume.dump());
  EXPECT_EQ(r1.status, 400) << r1.raw;
  EXPECT_NE(r1.raw.find("tenant tb has no volume"), std::string::npos) << r1.raw;
  json steal_image = guestSpec("steal-i-" + suffix_, "tb");
  steal_image["disks"] = json::array({{{"image", image}}});
  auto r2 = call(c, "POST", "/v1/vms", steal_image.dump());
  EXPECT_EQ(r2.status, 400) << r2.raw;
  EXPECT_NE(r2.raw.find("tenant tb has no image"), std::string::npos) << r2.raw;
  EXPECT_EQ(libvirtDomains(), domains_before);
  auto tb = rbd_->list("tb");
  ASSERT_TRUE(tb.has_value());
  for (const auto& name : *tb) EXPECT_EQ(name.find("steal"), std::string::npos) << name;

  auto del = call(c, "DELETE", "/v1/volumes/" + data + "?tenant=ta");
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
  del = call(c, "DELETE", "/v1/images/" + image + "?tenant=ta");
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
}

TEST_F(VmDisksTest, ACloudInitSeedReachesTheGuestWithTheVmsIdentity) {
  auto c = admin();
  const std::string vm = "seeded-" + suffix_;
  json spec = guestSpec(vm, "ta", "qiao.seed=1");
  spec["cloud_init"] = {{"user_data", "#cloud-config for " + vm + "\nruncmd: [\"echo 'quoted' ; true\"]\n"},
                        {"meta_data", "qiao-test: yes\n"}};
  ASSERT_EQ(createVm(c, spec)["state"], "succeeded");
  auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta").body;
  const std::string uuid = got["uuid"];
  std::string log = waitConsole(c, vm, "ta", "QIAO-TEST-GUEST seed", 1, std::chrono::seconds(120));
  EXPECT_NE(log.find("seed instance-id=" + uuid + " hostname=" + vm +
                     " user-data=#cloud-config for " + vm),
            std::string::npos)
      << log;
  const std::string seed = qiaod_->dir() + "/state/seeds/" + uuid + ".iso";
  EXPECT_TRUE(fs::exists(seed));
  deleteVm(c, vm, "ta");
  EXPECT_FALSE(fs::exists(seed)) << "the seed outlived its VM";
}

// No kernel from the host: an operator's VM boots from its disk, a clone of an uploaded
// bootable image (BIOS, MBR, syslinux), and reads its cloud-init seed.
TEST_F(VmDisksTest, AnOperatorsVmBootsFromAnUploadedImage) {
  const std::string disk = testGuestDir() + "/disk.img";
  if (!fs::exists(disk)) GTEST_SKIP() << "no bootable test disk (x86_64 only)";
  auto a = opA();
  const std::string image = "bootable-" + suffix_;
  auto made = call(a, "POST", "/v1/images", json({{"name", image}, {"format", "raw"}}).dump());
  ASSERT_EQ(made.status, 201) << made.raw;
  auto put = a.upload("/v1/images/" + image + "/data", disk);
  ASSERT_TRUE(put && put->status == 202) << (put ? put->body : put.error().describe());
  ASSERT_EQ(waitTask(a, json::parse(put->body)["id"])["state"], "succeeded");

  const std::string vm = "fromdisk-" + suffix_;
  json spec = {{"name", vm}, {"memory_mib", 256},
               {"disks", json::array({{{"image", image}, {"size_gib", 1}}})},
               {"cloud_init", {{"user_data", "#cloud-config booted from a disk"}}}};
  ASSERT_EQ(createVm(a, spec)["state"], "succeeded");
  std::string log = waitConsole(a, vm, "ta", "QIAO-TEST-GUEST seed", 1, std::chrono::seconds(120));
  EXPECT_NE(log.find("qiao.from=disk"), std::string::npos) << log;
  EXPECT_NE(log.find("hostname=" + vm), std::string::npos) << log;
  deleteVm(a, vm, "ta");
  auto del = call(a, "DELETE", "/v1/images/" + image);
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
}

// A script may create an image and, at once, a VM from it: the VM's create waits while the
// image is imported (it used to be refused: "image ... is importing, not ready"), and fails,
// leaving nothing, when the import fails.
TEST_F(VmDisksTest, AVmCreateWaitsForAnImageStillImportingAndFailsWithItsImport) {
  auto a = opA();
  const std::string image = "late-" + suffix_;
  std::string data(64 << 20, '\0');
  data.replace(0, 9, "QIAO-LATE");
  const std::string import = startImport(a, image, data);
  ASSERT_FALSE(import.empty());
  json spec = {{"name", "late-" + suffix_}, {"tenant", "ta"}, {"memory_mib", 128},
               {"disks", json::array({{{"image", image}}})}};
  auto r = call(a, "POST", "/v1/vms?start=false", spec.dump());
  ASSERT_EQ(r.status, 202) << r.raw;
  json task = waitTask(a, r.body["id"], std::chrono::seconds(180));
  EXPECT_EQ(task["state"], "succeeded") << task.dump();
  EXPECT_EQ(waitTask(a, import)["state"], "succeeded");
  EXPECT_EQ(journalPhases(task["id"], "wait"), (std::vector<std::string>{"begin", "done"}))
      << "the create should have waited for the import";
  auto volume = call(a, "GET", "/v1/volumes/late-" + suffix_ + "-disk0?tenant=ta");
  EXPECT_EQ(volume.status, 200) << volume.raw;
  EXPECT_EQ(volume.body["image"], "ta/" + image);
  deleteVm(a, "late-" + suffix_, "ta");

  // An image whose import fails (a qcow2 with a backing file): the waiting create fails with
  // the import's reason, and no VM or volume is left.
  const std::string evil = "evil-" + suffix_;
  const std::string file = qiaod_->dir() + "/evil-" + suffix_ + ".qcow2";
  auto made = runCommand({"qemu-img", "create", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F",
                          "raw", file, "16M"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string evil_import = startImport(a, evil, readFile(file));
  ASSERT_FALSE(evil_import.empty());
  spec["name"] = "evil-" + suffix_;
  spec["disks"] = json::array({{{"image", evil}}});
  r = call(a, "POST", "/v1/vms?start=false", spec.dump());
  if (r.status == 202) {
    task = waitTask(a, r.body["id"], std::chrono::seconds(180));
    EXPECT_EQ(task["state"], "failed") << task.dump();
    const std::string message = task["message"];
    EXPECT_NE(message.find("was not imported: its import failed"), std::string::npos) << message;
    EXPECT_NE(message.find("backing file"), std::string::npos) << message;
  } else {
    // The import failed before the create was sent: refused at once, naming the image.
    EXPECT_EQ(r.status, 400) << r.raw;
    EXPECT_NE(r.raw.find(evil), std::string::npos) << r.raw;
  }
  EXPECT_EQ(call(a, "GET", "/v1/vms/evil-" + suffix_ + "?tenant=ta").status, 404);
  EXPECT_EQ(call(a, "GET", "/v1/volumes/evil-" + suffix_ + "-disk0?tenant=ta").status, 404);
}

}  // namespace
}  // namespace qiao::testing
