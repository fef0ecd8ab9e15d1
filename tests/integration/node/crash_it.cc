// Crash safety against the real libvirtd: 20 rounds of create/start/delete with qiaod killed
// by SIGKILL at a random step (a failpoint, or a random moment); after each restart no guest
// is lost, orphaned or duplicated, no task is left unfinished, and the journal and the audit
// chain verify. Then libvirtd is restarted under a running qiaod: guests keep running, state
// stays true, and work goes on.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::vector<std::string> kFailpoints = {
    "vm.create/define:before", "vm.create/define:after",  "vm.create/start:before",
    "vm.create/start:after",   "vm.create/record:after",  "vm.delete/stop:after",
    "vm.delete/undefine:before", "vm.delete/undefine:after", "vm.delete/cleanup:after",
    "vm.delete/forget:before",
};

// The domains of this cluster in libvirt, by name.
std::multiset<std::string> clusterDomains(const Qiaod& q) {
  std::multiset<std::string> out;
  for (const auto& name : libvirtDomains()) {
    auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", name}).out;
    if (xml.find("<qiao:cluster>" + q.cluster() + "</qiao:cluster>") != std::string::npos) {
      out.insert(name);
    }
  }
  return out;
}

// Store and libvirt agree: every VM has exactly one domain, every domain of ours a VM.
void expectConsistent(Qiaod& q, ApiClient& c, const std::string& context) {
  auto list = call(c, "GET", "/v1/vms?limit=1000");
  ASSERT_EQ(list.status, 200);
  std::multiset<std::string> stored;
  for (const auto& vm : list.body["items"]) {
    stored.insert(vm["tenant"].get<std::string>() + "." + vm["name"].get<std::string>());
    EXPECT_NE(vm["state"], "creating") << context << ": " << vm.dump();
    EXPECT_NE(vm["state"], "deleting") << context << ": " << vm.dump();
  }
  EXPECT_EQ(stored, clusterDomains(q)) << context;
}

TEST(CrashSafety, TwentyRoundsKilledAtRandomSteps) {
  Qiaod q;
  std::mt19937 rng(std::random_device{}());
  const std::string tenant = "crash" + randomSuffix(4);
  int deaths = 0;
  for (int round = 0; round < 20; ++round) {
    const std::string name = "r" + std::to_string(round);
    const std::string context = "round " + std::to_string(round);
    // Even rounds die at a named step; odd rounds at a random moment.
    std::string fp = kFailpoints[rng() % kFailpoints.size()];
    bool use_failpoint = round % 2 == 0;
    q.start(use_failpoint ? std::vector<std::string>{"QIAO_FAILPOINT=" + fp}
                          : std::vector<std::string>{});
    SCOPED_TRACE(context + (use_failpoint ? " failpoint " + fp : " random kill"));
    auto c = q.adminClient();
    std::thread killer;
    if (!use_failpoint) {
      int delay_ms = static_cast<int>(rng() % 1500);
      killer = std::thread([&q, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        q.kill9();
      });
    }
    json spec = {{"name", name}, {"tenant", tenant}, {"vcpus", 1}, {"memory_mib", 128}};
    bool died = runUntilDeath(q, c, "POST", "/v1/vms", spec.dump());
    if (!died) {
      died = runUntilDeath(q, c, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant + "&force=true",
                           "");
    }
    if (killer.joinable()) killer.join();
    if (died) ++deaths;
    if (q.running()) q.kill9();

    // Restart clean: the interrupted work is finished or undone by itself.
    q.start();
    auto c2 = q.adminClient();
    ASSERT_TRUE(waitAllTasksDone(c2, 90s)) << context;
    expectConsistent(q, c2, context + " after restart");
    // Whatever survived is deleted, so the next round starts from nothing.
    auto left = call(c2, "GET", "/v1/vms/" + name + "?tenant=" + tenant);
    if (left.status == 200) {
      auto del = call(c2, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant + "&force=true");
      ASSERT_EQ(del.status, 202) << del.raw;
      EXPECT_EQ(waitTask(c2, del.body["id"])["state"], "succeeded");
    }
    expectConsistent(q, c2, context + " after cleanup");
    q.kill9();
  }
  EXPECT_GE(deaths, 5) << "too few rounds actually killed qiaod mid-operation";
  auto audit = q.admin({"audit", "verify"});
  EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;
  auto journal = q.admin({"journal", "verify"});
  EXPECT_EQ(journal.exit_code, 0) << journal.out << journal.err;
}

TEST(CrashSafety, LibvirtdRestartUnderRunningQiaod) {
  ASSERT_TRUE(testGuestAvailable());
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "lvr" + randomSuffix(4);
  for (const auto& name : {"a", "b"}) {
    auto r = call(c, "POST", "/v1/vms", guestSpec(name, tenant).dump());
    ASSERT_EQ(r.status, 202);
    ASSERT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
  }
  auto domid = [&](const std::string& name) {
    return runCommand({"virsh", "-c", "qemu:///system", "domid", tenant + "." + name}).out;
  };
  std::string id_a = domid("a");

  auto restart = runCommand({"bash", sourceDir() + "/scripts/stack", "restart-libvirtd"}, 120000);
  ASSERT_EQ(restart.exit_code, 0) << restart.out << restart.err;

  // qiaod notices the loss and the return, and says so on healthz.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  bool connected = false;
  while (!connected && std::chrono::steady_clock::now() < deadline) {
    auto h = call(c, "GET", "/v1/healthz");
    connected = h.status == 200 && h.body["libvirt"] == "connected";
    if (!connected) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(connected);
  EXPECT_EQ(domid("a"), id_a) << "the guest was restarted";
  expectConsistent(q, c, "after libvirtd restart");

  // State changes made behind qiaod's back after the reconnect are seen through events.
  runCommand({"virsh", "-c", "qemu:///system", "destroy", tenant + ".b"});
  auto vm = waitVm(c, "b", tenant, [](const json& v) { return v.is_object() && v["state"] == "shutoff"; });
  EXPECT_EQ(vm["state"], "shutoff") << vm.dump();
  EXPECT_EQ(call(c, "GET", "/v1/vms/a?tenant=" + tenant).body["state"], "running");

  // And work goes on.
  auto r = call(c, "POST", "/v1/vms?start=false",
                json({{"name", "c"}, {"tenant", tenant}, {"memory_mib", 128}}).dump());
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
}

// Operations in flight while libvirtd restarts under them: each waits for libvirt to come
// back and finishes; nothing is lost, orphaned or duplicated.
TEST(CrashSafety, LibvirtdRestartsDuringOperations) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  std::mt19937 rng(std::random_device{}());
  const std::string tenant = "lvo" + randomSuffix(4);
  auto restartLibvirtd = [&] {
    auto r = runCommand({"bash", sourceDir() + "/scripts/stack", "restart-libvirtd"}, 120000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  };
  for (int round = 0; round < 5; ++round) {
    const std::string name = "r" + std::to_string(round);
    SCOPED_TRACE("round " + std::to_string(round));
    auto created = call(c, "POST", "/v1/vms",
                        json({{"name", name}, {"tenant", tenant}, {"memory_mib", 128}}).dump());
    ASSERT_EQ(created.status, 202) << created.raw;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    restartLibvirtd();
    auto task = waitTask(c, created.body["id"], std::chrono::seconds(120));
    EXPECT_EQ(task["state"], "succeeded") << task.dump();
    auto deleted =
        call(c, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant + "&force=true");
    ASSERT_EQ(deleted.status, 202) << deleted.raw;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    restartLibvirtd();
    auto del_task = waitTask(c, deleted.body["id"], std::chrono::seconds(120));
    EXPECT_EQ(del_task["state"], "succeeded") << del_task.dump();
    ASSERT_TRUE(waitAllTasksDone(c, 60s));
    expectConsistent(q, c, "round " + std::to_string(round));
  }
  EXPECT_EQ(q.admin({"audit", "verify"}).exit_code, 0);
  EXPECT_EQ(q.admin({"journal", "verify"}).exit_code, 0);
}

TEST(CrashSafety, UnknownDomainOfThisClusterIsAdoptedAndMissingOneRedefined) {
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "adp" + randomSuffix(4);
  for (const auto& name : {"keep", "lost"}) {
    auto r = call(c, "POST", "/v1/vms?start=false",
                  json({{"name", name}, {"tenant", tenant}, {"memory_mib", 128}}).dump());
    ASSERT_EQ(r.status, 202);
    ASSERT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
  }
  q.kill9();
  // The store forgets "keep" (as if restored from an old backup); libvirt loses "lost".
  auto db = q.dir() + "/state/qiao.db";
  auto forgot = runCommand({"sqlite3", db, "DELETE FROM vms WHERE name = 'keep';"});
  ASSERT_EQ(forgot.exit_code, 0) << forgot.err;
  runCommand({"virsh", "-c", "qemu:///system", "undefine", tenant + ".lost"});

  q.start();
  auto c2 = q.adminClient();
  auto keep = waitVm(c2, "keep", tenant, [](const json& v) { return v.is_object(); });
  EXPECT_TRUE(keep.is_object()) << "the unknown domain was not adopted";
  auto domains = libvirtDomains();
  EXPECT_NE(std::find(domains.begin(), domains.end(), tenant + ".lost"), domains.end())
      << "the VM missing from libvirt was not redefined";
  expectConsistent(q, c2, "after adoption");
}

}  // namespace
}  // namespace qiao::testing
