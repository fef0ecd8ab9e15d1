// A real guest's whole life through the API and qiaoctl, on the real libvirtd and QEMU:
// create, boot marker on the console, pause/resume, reboot, ACPI stop, start, delete; a guest
// that reboots itself stays running and qiaod never stops it; the console log survives a
// restart of qiaod.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
constexpr const char* kMarker = "QIAO-TEST-GUEST booted";

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testGuestAvailable())
        << "the test guest is missing in " << testGuestDir() << "; run scripts/build-test-guest";
  }
};

std::string vmPath(const std::string& name, const std::string& tenant,
                   const std::string& suffix = {}) {
  return "/v1/vms/" + name + suffix + "?tenant=" + tenant;
}

json act(ApiClient& c, const std::string& name, const std::string& tenant,
         const std::string& action) {
  auto r = call(c, "POST", "/v1/vms/" + name + "/actions/" + action + "?tenant=" + tenant);
  EXPECT_EQ(r.status, 202) << action << ": " << r.raw;
  if (r.status != 202) return json();
  return waitTask(c, r.body["id"]);
}

TEST_F(LifecycleTest, GuestLivesThroughEveryAction) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "acme" + randomSuffix(4);
  const std::string name = "web1";
  const std::string domain = tenant + "." + name;

  auto created = call(c, "POST", "/v1/vms", guestSpec(name, tenant).dump());
  ASSERT_EQ(created.status, 202) << created.raw;
  EXPECT_EQ(created.body["kind"], "vm.create");
  auto task = waitTask(c, created.body["id"]);
  ASSERT_EQ(task["state"], "succeeded") << task.dump() << "\n" << q.dir();
  EXPECT_EQ(task["progress"], 100);

  auto vm = call(c, "GET", vmPath(name, tenant));
  ASSERT_EQ(vm.status, 200);
  EXPECT_EQ(vm.body["state"], "running");
  EXPECT_EQ(vm.body["domain"], domain);
  EXPECT_EQ(vm.body["spec"]["memory_mib"], 256);

  // libvirt has the domain, with Qiao's metadata naming this cluster.
  auto domains = libvirtDomains();
  ASSERT_NE(std::find(domains.begin(), domains.end(), domain), domains.end());
  auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", domain}).out;
  EXPECT_NE(xml.find("<qiao:cluster>" + q.cluster() + "</qiao:cluster>"), std::string::npos);

  // The guest really booted: its marker, with our command-line word, is on the console.
  auto log = waitConsole(c, name, tenant, kMarker);
  ASSERT_GE(countOccurrences(log, kMarker), 1) << log;
  EXPECT_NE(log.find("qiao.name=web1"), std::string::npos) << log;

  auto paused = act(c, name, tenant, "pause");
  EXPECT_EQ(paused["state"], "succeeded") << paused.dump();
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "paused");
  auto resumed = act(c, name, tenant, "resume");
  EXPECT_EQ(resumed["state"], "succeeded") << resumed.dump();
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "running");

  auto rebooted = act(c, name, tenant, "reboot");
  EXPECT_EQ(rebooted["state"], "succeeded") << rebooted.dump();
  log = waitConsole(c, name, tenant, kMarker, 2);
  EXPECT_GE(countOccurrences(log, kMarker), 2) << "no second boot after reboot:\n" << log;
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "running");

  // A running VM is not deleted without force.
  auto refused = call(c, "DELETE", vmPath(name, tenant));
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_EQ(refused.body["error"]["code"], "conflict");

  // stop is an ACPI shutdown that the guest honours.
  auto stopped = act(c, name, tenant, "stop");
  EXPECT_EQ(stopped["state"], "succeeded") << stopped.dump();
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "shutoff");

  auto started = act(c, name, tenant, "start");
  EXPECT_EQ(started["state"], "succeeded") << started.dump();
  log = waitConsole(c, name, tenant, kMarker, 3);
  EXPECT_GE(countOccurrences(log, kMarker), 3) << log;

  auto forced = act(c, name, tenant, "force-stop");
  EXPECT_EQ(forced["state"], "succeeded") << forced.dump();
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "shutoff");

  auto deleted = call(c, "DELETE", vmPath(name, tenant));
  ASSERT_EQ(deleted.status, 202) << deleted.raw;
  auto del_task = waitTask(c, deleted.body["id"]);
  EXPECT_EQ(del_task["state"], "succeeded") << del_task.dump();
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).status, 404);
  domains = libvirtDomains();
  EXPECT_EQ(std::find(domains.begin(), domains.end(), domain), domains.end());
  EXPECT_EQ(q.admin({"audit", "verify"}).exit_code, 0);
  EXPECT_EQ(q.admin({"journal", "verify"}).exit_code, 0);
}

TEST_F(LifecycleTest, GuestThatRebootsItselfIsNeverStopped) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "reb" + randomSuffix(4);
  const std::string name = "looper";

  // Watch the event stream for the whole test: a stop of this VM must never appear.
  std::mutex mutex;
  std::vector<std::string> vm_events;
  std::vector<std::string> stopped_early;
  std::atomic<bool> done{false};
  std::atomic<bool> stop_requested{false};
  std::thread watcher([&] {
    auto events = q.adminClient();
    (void)events.streamEvents(
        "/v1/events?type=vm",
        [&](std::string_view, std::string_view data) {
          std::lock_guard lock(mutex);
          auto ev = json::parse(data, nullptr, false);
          if (ev.is_object() && ev["name"] == name && ev["state"] == "shutoff" &&
              !stop_requested.load()) {
            stopped_early.emplace_back(data);
          }
          vm_events.emplace_back(data);
          return !done.load();
        },
        120000);
  });

  auto created =
      call(c, "POST", "/v1/vms", guestSpec(name, tenant, "qiao.reboot=1").dump());
  ASSERT_EQ(created.status, 202) << created.raw;
  ASSERT_EQ(waitTask(c, created.body["id"])["state"], "succeeded");

  // Three reboots of its own: four boot markers.
  auto log = waitConsole(c, name, tenant, kMarker, 4, std::chrono::seconds(120));
  EXPECT_GE(countOccurrences(log, kMarker), 4) << log;
  EXPECT_EQ(call(c, "GET", vmPath(name, tenant)).body["state"], "running");
  auto state = runCommand({"virsh", "-c", "qemu:///system", "domstate", tenant + "." + name});
  EXPECT_NE(state.out.find("running"), std::string::npos) << state.out;

  // Only the create task exists: qiaod started no stop of its own.
  auto tasks = call(c, "GET", "/v1/tasks?tenant=" + tenant);
  ASSERT_EQ(tasks.status, 200);
  EXPECT_EQ(tasks.body["items"].size(), 1u) << tasks.raw;

  done = true;
  stop_requested = true;
  // Wake the stream with one more event, then end it.
  act(c, name, tenant, "force-stop");
  watcher.join();
  std::lock_guard lock(mutex);
  int rebooted = 0;
  for (const auto& e : vm_events) {
    auto ev = json::parse(e, nullptr, false);
    if (ev.is_discarded() || ev["name"] != name) continue;
    if (ev["reason"] == "rebooted") ++rebooted;
  }
  EXPECT_GE(rebooted, 3);
  EXPECT_TRUE(stopped_early.empty()) << "the VM was stopped before the test asked: "
                                     << stopped_early.front();
}

TEST_F(LifecycleTest, QiaoctlDrivesTheSameLifecycle) {
  Qiaod q;
  q.start();
  const auto& admin = q.identity("admin", "admin");
  const std::string tenant = "cli" + randomSuffix(4);

  auto created = q.qiaoctl(admin, {"vm", "create", "-f", "-", "--wait"},
                           guestSpec("db1", tenant).dump());
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err;

  auto list = q.qiaoctl(admin, {"--tenant", tenant, "vm", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("db1"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("running"), std::string::npos) << list.out;

  auto get = q.qiaoctl(admin, {"--tenant", tenant, "-o", "json", "vm", "get", "db1"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  auto vm = json::parse(get.out, nullptr, false);
  ASSERT_FALSE(vm.is_discarded()) << get.out;
  EXPECT_EQ(vm["state"], "running");

  auto c = q.adminClient();
  waitConsole(c, "db1", tenant, kMarker);
  auto console = q.qiaoctl(admin, {"--tenant", tenant, "vm", "console-log", "db1"});
  EXPECT_EQ(console.exit_code, 0);
  EXPECT_NE(console.out.find(kMarker), std::string::npos) << console.out;

  auto stop = q.qiaoctl(admin, {"--tenant", tenant, "vm", "stop", "db1", "--wait"});
  EXPECT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  auto host = q.qiaoctl(admin, {"host"});
  EXPECT_EQ(host.exit_code, 0) << host.err;
  EXPECT_NE(host.out.find("tcg"), std::string::npos) << host.out;

  auto missing = q.qiaoctl(admin, {"--tenant", tenant, "vm", "get", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  auto usage = q.qiaoctl(admin, {"vm", "frobnicate"});
  EXPECT_EQ(usage.exit_code, 2);

  auto del = q.qiaoctl(admin, {"--tenant", tenant, "vm", "delete", "db1", "--wait"});
  EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
  auto gone = q.qiaoctl(admin, {"--tenant", tenant, "vm", "get", "db1"});
  EXPECT_EQ(gone.exit_code, 1);
}

TEST_F(LifecycleTest, ConsoleLogSurvivesDaemonRestartAndGuestKeepsRunning) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "con" + randomSuffix(4);
  auto created = call(c, "POST", "/v1/vms", guestSpec("keep", tenant).dump());
  ASSERT_EQ(created.status, 202);
  ASSERT_EQ(waitTask(c, created.body["id"])["state"], "succeeded");
  waitConsole(c, "keep", tenant, kMarker);

  auto pid_before = runCommand({"virsh", "-c", "qemu:///system", "domid", tenant + ".keep"}).out;
  q.kill9();
  q.start();
  auto c2 = q.adminClient();
  auto vm = call(c2, "GET", vmPath("keep", tenant));
  ASSERT_EQ(vm.status, 200);
  EXPECT_EQ(vm.body["state"], "running");
  auto pid_after = runCommand({"virsh", "-c", "qemu:///system", "domid", tenant + ".keep"}).out;
  EXPECT_EQ(pid_before, pid_after) << "the guest was restarted by the daemon restart";
  auto log = waitConsole(c2, "keep", tenant, kMarker);
  EXPECT_GE(countOccurrences(log, kMarker), 1);
}

TEST_F(LifecycleTest, UefiGuestBootsWithItsOwnNvram) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "efi" + randomSuffix(4);
  auto spec = guestSpec("u1", tenant);
  spec["firmware"] = "uefi";
  auto created = call(c, "POST", "/v1/vms", spec.dump());
  ASSERT_EQ(created.status, 202) << created.raw;
  auto task = waitTask(c, created.body["id"]);
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  auto log = waitConsole(c, "u1", tenant, kMarker, 1, std::chrono::seconds(120));
  EXPECT_GE(countOccurrences(log, kMarker), 1) << "no boot through OVMF:\n" << log;
  auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", tenant + ".u1"}).out;
  EXPECT_NE(xml.find("OVMF_CODE"), std::string::npos) << xml;
  EXPECT_NE(xml.find("secure='no'"), std::string::npos) << "plain uefi must not pick a secure build";
  auto uuid = call(c, "GET", "/v1/vms/u1?tenant=" + tenant).body["uuid"].get<std::string>();
  const std::string nvram = q.dir() + "/state/nvram/" + uuid + "_VARS.fd";
  EXPECT_TRUE(std::filesystem::exists(nvram)) << nvram;

  // Secure boot with enrolled keys and SMM: runs without a kernel from host paths ...
  json secure = {{"name", "s1"}, {"tenant", tenant}, {"memory_mib", 256}, {"firmware", "uefi-secure"}};
  auto s1 = call(c, "POST", "/v1/vms", secure.dump());
  ASSERT_EQ(s1.status, 202) << s1.raw;
  EXPECT_EQ(waitTask(c, s1.body["id"])["state"], "succeeded");
  auto sxml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", tenant + ".s1"}).out;
  EXPECT_NE(sxml.find("secure='yes'"), std::string::npos) << sxml;
  EXPECT_NE(sxml.find("<smm state='on'/>"), std::string::npos) << sxml;
  // ... and is refused up front with one, never a VM that fails later.
  auto refused = call(c, "POST", "/v1/vms", [&] {
    auto j = guestSpec("s2", tenant);
    j["firmware"] = "uefi-secure";
    return j.dump();
  }());
  EXPECT_EQ(refused.status, 400) << refused.raw;

  auto del = call(c, "DELETE", "/v1/vms/u1?tenant=" + tenant + "&force=true");
  ASSERT_EQ(del.status, 202);
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
  EXPECT_FALSE(std::filesystem::exists(nvram)) << "the NVRAM outlived its VM";
}

TEST_F(LifecycleTest, Aarch64GuestBootsThroughAavmfUnderTcg) {
  const std::string dir = buildDir() + "/test-guest-aarch64";
  ASSERT_TRUE(std::filesystem::exists(dir + "/vmlinuz"))
      << "run scripts/build-test-guest --arch aarch64 --out " << dir;
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "arm" + randomSuffix(4);
  json spec = {{"name", "a1"},
               {"tenant", tenant},
               {"arch", "aarch64"},
               {"firmware", "uefi"},
               {"memory_mib", 512},
               {"boot",
                {{"kernel", std::filesystem::canonical(dir + "/vmlinuz").string()},
                 {"initrd", std::filesystem::canonical(dir + "/initrd.img").string()},
                 {"cmdline", "console=ttyAMA0 qiao.name=a1"}}}};
  auto created = call(c, "POST", "/v1/vms", spec.dump());
  ASSERT_EQ(created.status, 202) << created.raw;
  auto task = waitTask(c, created.body["id"]);
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  auto log = waitConsole(c, "a1", tenant, "QIAO-TEST-GUEST booted arch=aarch64", 1,
                         std::chrono::seconds(120));
  EXPECT_NE(log.find("QIAO-TEST-GUEST booted arch=aarch64"), std::string::npos) << log;
  EXPECT_NE(log.find("-arm64"), std::string::npos) << "no arm64 kernel banner:\n" << log;
  auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", tenant + ".a1"}).out;
  EXPECT_NE(xml.find("AAVMF"), std::string::npos) << xml;
  EXPECT_NE(xml.find("cortex-a72"), std::string::npos);
  auto uuid = call(c, "GET", "/v1/vms/a1?tenant=" + tenant).body["uuid"].get<std::string>();
  const std::string nvram = q.dir() + "/state/nvram/" + uuid + "_VARS.fd";
  EXPECT_TRUE(std::filesystem::exists(nvram));
  auto del = call(c, "DELETE", "/v1/vms/a1?tenant=" + tenant + "&force=true");
  ASSERT_EQ(del.status, 202);
  EXPECT_EQ(waitTask(c, del.body["id"])["state"], "succeeded");
  EXPECT_FALSE(std::filesystem::exists(nvram));
}

}  // namespace
}  // namespace qiao::testing
