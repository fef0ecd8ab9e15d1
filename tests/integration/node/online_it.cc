// Online operations on running guests, through a real qiaod, real QEMU (libvirt's QMP
// passthrough) and the stack's Ceph: a volume hot-plugged into a running test guest appears in
// it, grows in it without a reboot, and goes from it; a disk made from an image the same; the
// disk stays across a stop and start; the VM never reboots for any of it.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
constexpr int64_t kGiB = int64_t{1} << 30;

class OnlineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bridge_ = "qon-" + randomSuffix(6);
    qiaod_ = new Qiaod(stackCephConfig() + stackNetworkConfig(bridge_));
    qiaod_->start();
  }
  static void TearDownTestSuite() {
    if (qiaod_ != nullptr) {
      auto c = qiaod_->adminClient();
      for (const auto& vm : call(c, "GET", "/v1/vms?tenant=ta").body.value("items", json::array())) {
        auto r = call(c, "DELETE", "/v1/vms/" + vm["name"].get<std::string>() + "?force=true&tenant=ta");
        if (r.status == 202) waitTask(c, r.body["id"]);
      }
      for (const auto& n : call(c, "GET", "/v1/networks?tenant=ta").body.value("items", json::array())) {
        auto r = call(c, "DELETE", "/v1/networks/" + n["name"].get<std::string>() + "?tenant=ta");
        if (r.status == 202) waitTask(c, r.body["id"]);
      }
    }
    delete qiaod_;
    qiaod_ = nullptr;
    runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge_});
  }
  void SetUp() override {
    if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
    suffix_ = randomSuffix();
  }
  ApiClient admin() { return qiaod_->adminClient(); }

  json succeeds(ApiClient& c, const std::string& method, const std::string& target,
                const std::string& body = {}) {
    auto r = call(c, method, target, body);
    EXPECT_EQ(r.status, 202) << method << " " << target << ": " << r.raw;
    if (r.status != 202) return json();
    auto task = waitTask(c, r.body.value("id", ""), std::chrono::seconds(180));
    EXPECT_EQ(task["state"], "succeeded") << method << " " << target << ": " << task.dump();
    return task;
  }
  // A running test guest that reports its block devices.
  void startGuest(ApiClient& c, const std::string& name) {
    succeeds(c, "POST", "/v1/vms", guestSpec(name, "ta", "qiao.watchblk=1").dump());
    ASSERT_TRUE(sees(c, name, "QIAO-TEST-GUEST booted"));
  }
  // Waits for the guest to print `needle` (`count` times in all); a failure shows the console.
  bool sees(ApiClient& c, const std::string& name, const std::string& needle, int count = 1,
            std::chrono::seconds timeout = std::chrono::seconds(90)) {
    const std::string text = waitConsole(c, name, "ta", needle, count, timeout);
    const bool seen = countOccurrences(text, needle) >= count;
    EXPECT_TRUE(seen) << "the guest did not print \"" << needle << "\" " << count
                      << " time(s); its console ends with:\n"
                      << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
    return seen;
  }
  std::string console(ApiClient& c, const std::string& name) {
    auto r = c.request("GET", "/v1/vms/" + name + "/console-log?tenant=ta");
    return r && r->status == 200 ? r->body : std::string();
  }
  std::string inactiveXml(const std::string& name) {
    return runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "--inactive", "ta." + name})
        .out;
  }

  static Qiaod* qiaod_;
  static std::string bridge_;
  std::string suffix_;
};
Qiaod* OnlineTest::qiaod_ = nullptr;
std::string OnlineTest::bridge_;

TEST_F(OnlineTest, AVolumeIsHotPluggedGrownAndUnpluggedWhileTheGuestRuns) {
  auto c = admin();
  const std::string vm = "hot-" + suffix_;
  const std::string vol = "data-" + suffix_;
  succeeds(c, "POST", "/v1/volumes",
           json{{"name", vol}, {"tenant", "ta"}, {"size_gib", 1}}.dump());
  startGuest(c, vm);
  ASSERT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST blk vd"), 0) << "no disk yet";

  // Plugged: the guest sees a 1 GiB disk; the volume is the VM's; the next start has it too.
  succeeds(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", json{{"volume", vol}}.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST blk vda " + std::to_string(kGiB)));
  auto volume = call(c, "GET", "/v1/volumes/" + vol + "?tenant=ta");
  EXPECT_EQ(volume.body["state"], "in-use");
  EXPECT_EQ(volume.body["attached_vm"], vm);
  EXPECT_NE(inactiveXml(vm).find("qd-"), std::string::npos) << "the definition has the disk";
  auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  ASSERT_EQ(got.body["spec"]["disks"].size(), 1u) << got.raw;
  EXPECT_EQ(got.body["spec"]["disks"][0]["volume"], vol);

  // Grown: the guest sees 2 GiB at once.
  succeeds(c, "POST", "/v1/volumes/" + vol + "/resize?tenant=ta", json{{"size_gib", 2}}.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST blk vda " + std::to_string(2 * kGiB)));

  // Unplugged: the guest lets it go, the volume is available again, the definition forgets it.
  succeeds(c, "DELETE", "/v1/vms/" + vm + "/disks/" + vol + "?tenant=ta");
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST blk-gone vda"));
  volume = call(c, "GET", "/v1/volumes/" + vol + "?tenant=ta");
  EXPECT_EQ(volume.body["state"], "available");
  EXPECT_EQ(volume.body.value("attached_vm", ""), "");
  EXPECT_EQ(inactiveXml(vm).find("qd-"), std::string::npos);

  // All of it without a reboot.
  EXPECT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST booted"), 1);
  EXPECT_EQ(call(c, "GET", "/v1/vms/" + vm + "?tenant=ta").body["state"], "running");

  // Refusals: a disk the VM does not have; a volume another VM holds; a hostile name.
  EXPECT_EQ(call(c, "DELETE", "/v1/vms/" + vm + "/disks/" + vol + "?tenant=ta").status, 404);
  EXPECT_EQ(call(c, "DELETE", "/v1/vms/" + vm + "/disks/a%22b?tenant=ta").status, 400);
  EXPECT_EQ(call(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", R"({"volume":"nope"})").status,
            400);
  EXPECT_EQ(call(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", R"({"bus":"ide"})").status, 400);

  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  succeeds(c, "DELETE", "/v1/volumes/" + vol + "?tenant=ta");
}

TEST_F(OnlineTest, ADiskFromAnImageIsPluggedAndStaysAcrossAStopAndStart) {
  auto c = admin();
  const std::string vm = "img-" + suffix_;
  const std::string image = "blank-" + suffix_;
  auto made = call(c, "POST", "/v1/images", json{{"name", image}, {"tenant", "ta"}}.dump());
  ASSERT_EQ(made.status, 201) << made.raw;
  auto put = c.request("PUT", "/v1/images/" + image + "/data?tenant=ta", std::string(4 << 20, 'q'),
                       "application/octet-stream");
  ASSERT_TRUE(put && put->status == 202);
  ASSERT_EQ(waitTask(c, json::parse(put->body)["id"])["state"], "succeeded");
  startGuest(c, vm);

  succeeds(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta",
           json{{"image", image}, {"size_gib", 1}}.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST blk vda " + std::to_string(kGiB)));
  const std::string disk = vm + "-disk0";
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + disk + "?tenant=ta").body["attached_vm"], vm);

  // A stop and a start: the disk is there from the boot on.
  succeeds(c, "POST", "/v1/vms/" + vm + "/actions/force-stop?tenant=ta");
  succeeds(c, "POST", "/v1/vms/" + vm + "/actions/start?tenant=ta");
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST booted", 2));
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST blk vda " + std::to_string(kGiB), 2));

  // The VM's delete takes the disk made from the image with it.
  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + disk + "?tenant=ta").status, 404);
  succeeds(c, "DELETE", "/v1/images/" + image + "?tenant=ta");
}

TEST_F(OnlineTest, ANicIsHotPluggedGetsALeaseAndIsUnpluggedWhileTheGuestRuns) {
  auto c = admin();
  const std::string vm = "nic-" + suffix_;
  const std::string net = "lan-" + suffix_;
  succeeds(c, "POST", "/v1/networks",
           json{{"name", net}, {"tenant", "ta"}, {"subnet", "10.77.0.0/24"}}.dump());
  // The guest waits for a second NIC, takes a lease on it, and says when it is gone.
  const std::string script =
      "while [ ! -e /sys/class/net/eth1 ]; do sleep 1; done; ip link set eth1 up; "
      "udhcpc -i eth1 -n -q -t 20 -T 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 "
      "|| echo lease failed; while [ -e /sys/class/net/eth1 ]; do sleep 1; done; "
      "echo eth1 gone";
  json spec = guestSpec(vm, "ta", "qiao.dhcp=1 " + guestRun(script));
  spec["nics"] = json::array({{{"network", net}}});
  succeeds(c, "POST", "/v1/vms", spec.dump());
  ASSERT_TRUE(sees(c, vm, "iface=eth0"));

  succeeds(c, "POST", "/v1/vms/" + vm + "/nics?tenant=ta", json{{"network", net}}.dump());
  auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  ASSERT_EQ(got.body["ports"].size(), 2u) << got.raw;
  ASSERT_EQ(got.body["spec"]["nics"].size(), 2u) << got.raw;
  const std::string ip = got.body["ports"][1]["ip"];
  const std::string mac = got.body["ports"][1]["mac"];
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST lease ip=" + ip + " iface=eth1"));

  succeeds(c, "DELETE", "/v1/vms/" + vm + "/nics/" + mac + "?tenant=ta");
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: eth1 gone"));
  got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  EXPECT_EQ(got.body["ports"].size(), 1u) << got.raw;
  EXPECT_EQ(got.body["spec"]["nics"].size(), 1u) << got.raw;
  EXPECT_EQ(got.body["state"], "running");
  EXPECT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST booted"), 1);
  EXPECT_EQ(inactiveXml(vm).find(mac), std::string::npos) << "the definition forgot the nic";
  EXPECT_EQ(call(c, "DELETE", "/v1/vms/" + vm + "/nics/" + mac + "?tenant=ta").status, 404);
  EXPECT_EQ(call(c, "DELETE", "/v1/vms/" + vm + "/nics/not-a-mac?tenant=ta").status, 400);
  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  succeeds(c, "DELETE", "/v1/networks/" + net + "?tenant=ta");
}

TEST_F(OnlineTest, VcpusAndMemoryChangeLiveWithinTheirMaximums) {
  auto c = admin();
  const std::string vm = "res-" + suffix_;
  // The guest onlines each vCPU once, when it comes (never again: the kernel offlines one
  // it is asked to give back), and says, at each change, how many it runs and
  // how much memory its kernel manages (the balloon takes or gives back the rest).
  const std::string script =
      "o=; s=; while true; do for f in /sys/devices/system/cpu/cpu*/online; do "
      "case \" $s \" in *\" $f \"*) ;; *) echo 1 > $f; s=\"$s $f\";; esac; done; "
      "n=\"cpus=$(grep -c ^processor /proc/cpuinfo) kib=$(awk '/MemTotal/{print $2}' "
      "/proc/meminfo)\"; [ \"$n\" != \"$o\" ] && echo \"$n\"; o=$n; sleep 1; done";
  json spec = guestSpec(vm, "ta", guestRun(script));
  spec["memory_mib"] = 256;
  spec["max_memory_mib"] = 512;
  spec["vcpus"] = 1;
  spec["max_vcpus"] = 2;
  succeeds(c, "POST", "/v1/vms", spec.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: cpus=1 "));
  auto memory = [&]() {
    // The last report's figure.
    const std::string text = console(c, vm);
    auto at = text.rfind(" kib=");
    return at == std::string::npos ? 0L : std::stol(text.substr(at + 5));
  };
  // The balloon holds the guest near 256 MiB (its kernel keeps a part for itself).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (memory() > 300 * 1024 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  // Under 300 MiB the balloon may still be inflating (under TCG it takes seconds): the figure
  // to compare with is the one it settles at (the same in two reports, the guest reports
  // each second).
  for (long last = -1, now = memory(); now != last && std::chrono::steady_clock::now() < deadline;
       last = now, now = memory()) {
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  const long small = memory();
  ASSERT_GT(small, 0);
  ASSERT_LE(small, 300 * 1024) << "the balloon did not hold the guest at memory_mib";

  succeeds(c, "POST", "/v1/vms/" + vm + "/resize?tenant=ta",
           json{{"vcpus", 2}, {"memory_mib", 448}}.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: cpus=2 "));
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (memory() < small + 150 * 1024 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  EXPECT_GE(memory(), small + 150 * 1024) << "the guest did not get its memory back";
  auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  EXPECT_EQ(got.body["spec"]["vcpus"], 2);
  EXPECT_EQ(got.body["spec"]["memory_mib"], 448);

  // Back to one vCPU: the guest must let one go. This test guest's kernel offlines it but
  // never completes the ACPI eject under TCG, so the task ends with a clear timeout and the
  // spec keeps what the VM runs; a guest that lets go gets its spec changed.
  auto fewer = call(c, "POST", "/v1/vms/" + vm + "/resize?tenant=ta", json{{"vcpus", 1}}.dump());
  ASSERT_EQ(fewer.status, 202) << fewer.raw;
  auto task = waitTask(c, fewer.body.value("id", ""), std::chrono::seconds(120));
  got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  if (task["state"] == "succeeded") {
    EXPECT_EQ(got.body["spec"]["vcpus"], 1);
  } else {
    EXPECT_NE(task.dump().find("did not let its vCPUs go"), std::string::npos) << task.dump();
    EXPECT_EQ(got.body["spec"]["vcpus"], 2) << "a vCPU the guest kept stays in the spec";
  }
  EXPECT_EQ(got.body["state"], "running");
  EXPECT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST booted"), 1);

  // Above the maximums, or nothing asked: refused.
  EXPECT_EQ(call(c, "POST", "/v1/vms/" + vm + "/resize?tenant=ta", R"({"vcpus": 3})").status, 400);
  EXPECT_EQ(call(c, "POST", "/v1/vms/" + vm + "/resize?tenant=ta", R"({"memory_mib": 1024})")
                .status,
            400);
  EXPECT_EQ(call(c, "POST", "/v1/vms/" + vm + "/resize?tenant=ta", "{}").status, 400);
  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
}

// On a node whose volumes are on RBD, a UEFI VM's NVRAM is an RBD image of its own beside them
// (made from the firmware's template, given to QEMU as its second flash), for x86_64 (plain
// and secure) and aarch64 guests; it goes with the VM.
TEST_F(OnlineTest, UefiNvramLivesOnRbdBesideTheDisks) {
  auto c = admin();
  auto rbd = stackCeph();
  ASSERT_NE(rbd, nullptr);
  struct Case {
    std::string name;
    json spec;
    std::string marker;  // "" = no kernel: it only has to run
  };
  const std::string arm = buildDir() + "/test-guest-aarch64";
  std::vector<Case> cases;
  {
    json x86 = guestSpec("efi-" + suffix_, "ta");
    x86["firmware"] = "uefi";
    cases.push_back({"efi-" + suffix_, x86, "QIAO-TEST-GUEST booted arch=x86_64"});
    cases.push_back({"sec-" + suffix_,
                     json{{"name", "sec-" + suffix_}, {"tenant", "ta"}, {"memory_mib", 256},
                          {"firmware", "uefi-secure"}},
                     ""});
    if (std::filesystem::exists(arm + "/vmlinuz")) {
      cases.push_back(
          {"arm-" + suffix_,
           json{{"name", "arm-" + suffix_},
                {"tenant", "ta"},
                {"arch", "aarch64"},
                {"firmware", "uefi"},
                {"memory_mib", 512},
                {"boot",
                 {{"kernel", std::filesystem::canonical(arm + "/vmlinuz").string()},
                  {"initrd", std::filesystem::canonical(arm + "/initrd.img").string()},
                  {"cmdline", "console=ttyAMA0 qiao.name=arm-" + suffix_}}}},
           "QIAO-TEST-GUEST booted arch=aarch64"});
    }
  }
  for (const auto& each : cases) {
    SCOPED_TRACE(each.name);
    succeeds(c, "POST", "/v1/vms", each.spec.dump());
    const std::string uuid = call(c, "GET", "/v1/vms/" + each.name + "?tenant=ta").body["uuid"];
    const VolumeId id{"ta", "nvram-" + uuid};
    auto stat = rbd->stat(id);
    ASSERT_TRUE(stat) << "no NVRAM image in the tenant's namespace";
    EXPECT_FALSE(std::filesystem::exists(qiaod_->dir() + "/state/nvram/" + uuid + "_VARS.fd"));
    const std::string xml =
        runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "ta." + each.name}).out;
    EXPECT_NE(xml.find("stateless='yes'"), std::string::npos) << xml;
    EXPECT_NE(xml.find("pflash1=qiao-nvram"), std::string::npos) << xml;
    if (!each.marker.empty()) {
      ASSERT_TRUE(sees(c, each.name, each.marker, 1, std::chrono::seconds(150)));
    } else {
      std::this_thread::sleep_for(std::chrono::seconds(5));
      EXPECT_EQ(call(c, "GET", "/v1/vms/" + each.name + "?tenant=ta").body["state"], "running");
      EXPECT_NE(xml.find("secure='yes'"), std::string::npos) << xml;
    }
    // The variable store starts as the firmware's template (a secure one with its keys).
    auto head = rbd->read(id, 0, 4096);
    ASSERT_TRUE(head);
    EXPECT_NE(head->find("_FVH"), std::string::npos) << "not a firmware volume";
    succeeds(c, "DELETE", "/v1/vms/" + each.name + "?tenant=ta&force=true");
    auto gone = rbd->stat(id);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << "the NVRAM outlived its VM";
  }
}

// A disk's QEMU id (node/vm/domain.cc qemuDiskId): "qd-" and the first 16 hex digits of its
// volume's uuid.
std::string diskId(const std::string& volume_uuid) {
  std::string hex;
  for (char ch : volume_uuid) {
    if (std::isxdigit(static_cast<unsigned char>(ch)) != 0 && hex.size() < 16) hex += ch;
  }
  return "qd-" + hex;
}

// qiaod killed (SIGKILL, at a named step) in the middle of a hot-plug and of an unplug: after
// its restart the interrupted task is finished, and the store (spec, volume), libvirt's
// definition, QEMU and the guest agree on whether the VM has the disk.
TEST_F(OnlineTest, KilledDuringHotPlugAndUnplugTheStoreLibvirtAndTheGuestAgree) {
  const std::string vm = "kill-" + suffix_;
  const std::string vol = "kd-" + suffix_;
  {
    auto c = admin();
    succeeds(c, "POST", "/v1/volumes",
             json{{"name", vol}, {"tenant", "ta"}, {"size_gib", 1}}.dump());
    startGuest(c, vm);
  }
  const std::string domain = "ta." + vm;
  auto agree = [&](const std::string& context) -> bool {
    auto c = admin();
    EXPECT_TRUE(waitAllTasksDone(c, std::chrono::seconds(120))) << context;
    auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
    bool in_spec = false;
    for (const auto& d : got.body["spec"]["disks"]) in_spec = in_spec || d.value("volume", "") == vol;
    auto volume = call(c, "GET", "/v1/volumes/" + vol + "?tenant=ta").body;
    const std::string id = diskId(volume.value("uuid", ""));
    const bool in_definition = inactiveXml(vm).find(id) != std::string::npos;
    const bool in_qemu =
        runCommand({"virsh", "-c", "qemu:///system", "qemu-monitor-command", domain,
                    R"({"execute":"qom-list","arguments":{"path":"/machine/peripheral"}})"})
            .out.find("\"" + id + "\"") != std::string::npos;
    const bool attached = volume.value("attached_vm", "") == vm && volume["state"] == "in-use";
    const std::string tasks = call(c, "GET", "/v1/tasks?tenant=ta&limit=2").raw;
    EXPECT_EQ(in_definition, in_spec) << context << "; last tasks: " << tasks;
    EXPECT_EQ(in_qemu, in_spec) << context << "; last tasks: " << tasks;
    EXPECT_EQ(attached, in_spec) << context << ": " << volume.dump();
    if (in_spec) {
      EXPECT_EQ(volume.value("state", ""), "in-use") << context;
    } else {
      EXPECT_EQ(volume.value("state", ""), "available") << context;
    }
    // The guest: its last word on vda says the same. It looks every second, but a TCG guest
    // on a loaded host can take a few seconds to say it; a guest that disagrees for 30 s fails.
    std::string text;
    bool guest_has = !in_spec;
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         guest_has != in_spec && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      text = console(c, vm);
      const auto plugged = text.rfind("QIAO-TEST-GUEST blk vda ");
      const auto gone = text.rfind("QIAO-TEST-GUEST blk-gone vda");
      guest_has = plugged != std::string::npos && (gone == std::string::npos || gone < plugged);
    }
    EXPECT_EQ(guest_has, in_spec) << context << "; in qemu: " << in_qemu << "; console ends: "
                                  << text.substr(text.size() > 1500 ? text.size() - 1500 : 0);
    return in_spec;
  };
  const std::vector<std::pair<std::string, std::string>> rounds = {
      {"vm.disk-add/volume:after", "vm.disk-remove/detach:after"},
      {"vm.disk-add/define:after", "vm.disk-remove/define:before"},
      {"vm.disk-add/attach:before", "vm.disk-remove/release:before"},
      {"vm.disk-add/attach:after", "vm.disk-remove/detach:before"},
  };
  for (const auto& [add_at, remove_at] : rounds) {
    for (const auto& [point, method] : {std::pair{add_at, std::string("POST")},
                                        std::pair{remove_at, std::string("DELETE")}}) {
      SCOPED_TRACE(point);
      qiaod_->kill9();
      qiaod_->start({"QIAO_FAILPOINT=" + point});
      auto c = admin();
      const bool adding = method == "POST";
      const std::string target = adding ? "/v1/vms/" + vm + "/disks?tenant=ta"
                                        : "/v1/vms/" + vm + "/disks/" + vol + "?tenant=ta";
      EXPECT_TRUE(runUntilDeath(*qiaod_, c, method, target,
                                adding ? json{{"volume", vol}}.dump() : std::string()))
          << "failpoint " << point << " did not kill qiaod";
      if (qiaod_->running()) qiaod_->kill9();
      qiaod_->start();
      const bool has = agree(point + " after the restart");
      // Whatever the interrupted task ended in, the next round starts from the other state.
      if (has != adding) {
        auto c2 = admin();
        succeeds(c2, method, target, adding ? json{{"volume", vol}}.dump() : std::string());
        agree(point + " after doing it again");
      }
    }
  }
  auto c = admin();
  EXPECT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST booted"), 1);
  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  succeeds(c, "DELETE", "/v1/volumes/" + vol + "?tenant=ta");
}

// The guest reads its disk 4 MiB at a time, each read at a new offset, and prints when each
// began and ended (seconds of its uptime): the durations show the limit the disk obeys.
std::map<int, double> readDurations(const std::string& console) {
  std::map<int, double> out;
  std::istringstream lines(console);
  std::string line;
  const std::string tag = "QIAO-TEST-GUEST run: read ";
  while (std::getline(lines, line)) {
    auto at = line.find(tag);
    if (at == std::string::npos) continue;
    std::istringstream words(line.substr(at + tag.size()));
    int i = 0;
    double begin = 0, end = 0;
    if (words >> i >> begin >> end) out[i] = end - begin;
  }
  return out;
}

TEST_F(OnlineTest, IoLimitsChangeLiveAndTheGuestFeelsThem) {
  auto c = admin();
  const std::string vm = "qos-" + suffix_;
  const std::string vol = "slow-" + suffix_;
  succeeds(c, "POST", "/v1/volumes",
           json{{"name", vol}, {"tenant", "ta"}, {"size_gib", 2}}.dump());
  const std::string script =
      "i=0; while [ $i -lt 300 ]; do a=$(cut -d' ' -f1 /proc/uptime); "
      "dd if=/dev/vda of=/dev/null bs=1M count=4 skip=$((i*4)) 2>/dev/null; "
      "b=$(cut -d' ' -f1 /proc/uptime); echo \"read $i $a $b\"; i=$((i+1)); done";
  json spec = guestSpec(vm, "ta", guestRun(script));
  spec["disks"] = json::array({{{"volume", vol}}});
  succeeds(c, "POST", "/v1/vms", spec.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: read 3 "));
  auto before = readDurations(console(c, vm));
  double fastest = 1e9;
  for (auto [i, d] : before) fastest = std::min(fastest, d);
  ASSERT_LT(fastest, 1.5) << "reads without a limit are not fast enough to show one";

  // 1 MiB/s of reads, set while the guest reads: a 4 MiB read then takes about 3 s or more
  // (librbd lets one second's worth through at once).
  succeeds(c, "PUT", "/v1/volumes/" + vol + "/limits?tenant=ta",
           json{{"read_bytes_per_sec", 1 << 20}}.dump());
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + vol + "?tenant=ta").body["qos"]["read_bytes_per_sec"],
            1 << 20);
  const int set_at = readDurations(console(c, vm)).rbegin()->first;
  int slow = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (slow < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    slow = 0;
    for (auto [i, d] : readDurations(console(c, vm))) {
      if (i > set_at + 1 && d >= 2.5) ++slow;
    }
  }
  EXPECT_GE(slow, 2) << "the guest's reads did not slow down to the limit";

  // Removed live: fast again.
  succeeds(c, "PUT", "/v1/volumes/" + vol + "/limits?tenant=ta", "{}");
  const int cleared_at = readDurations(console(c, vm)).rbegin()->first;
  bool fast = false;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fast && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    for (auto [i, d] : readDurations(console(c, vm))) fast = fast || (i > cleared_at + 1 && d < 1.5);
  }
  EXPECT_TRUE(fast) << "the guest's reads stayed slow after the limits were removed";
  EXPECT_EQ(countOccurrences(console(c, vm), "QIAO-TEST-GUEST booted"), 1);

  // A total and its split together are refused.
  EXPECT_EQ(call(c, "PUT", "/v1/volumes/" + vol + "/limits?tenant=ta",
                 R"({"bytes_per_sec": 1000, "read_bytes_per_sec": 10})")
                .status,
            400);
  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  succeeds(c, "DELETE", "/v1/volumes/" + vol + "?tenant=ta");
}

}  // namespace
}  // namespace qiao::testing
