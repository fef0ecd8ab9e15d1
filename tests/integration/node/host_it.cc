// `qiaoctl host check` and GET /v1/host/check against a real qiaod on this machine, with no
// baseline file, a strict one this host cannot meet, and one that does not parse.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using json = nlohmann::json;

TEST(HostCheck, JudgesThisHostAgainstItsBaseline) {
  const std::string baseline = "/tmp/qiao-host-it-" + randomSuffix(8) + ".toml";
  Qiaod q("[host]\nbaseline_file = \"" + baseline + "\"\n");
  q.start();
  const auto& viewer = q.identity("installer", "viewer", {"acme"});

  // No file: the defaults (this qiaod runs TCG: KVM is only preferred, a warning).
  auto none = q.qiaoctl(viewer, {"host", "check"});
  EXPECT_EQ(none.exit_code, 0) << none.out << none.err;
  EXPECT_NE(none.out.find("warn  baseline"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("pass  libvirt"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("warn  accelerator  tcg"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("This host may take guests."), std::string::npos) << none.out;

  // A baseline this host cannot meet: each shortfall fails, with its reason; what it has
  // (Debian's OVMF and AAVMF descriptors) passes.
  std::ofstream(baseline) << "[hypervisor]\nmin_qemu = \"99.0\"\nkvm = \"required\"\n"
                             "[cpu]\nfeatures = [\"qiao_no_such_flag\"]\n"
                             "[firmware]\narchs = [\"x86_64\", \"aarch64\"]\n"
                             "[host]\nmin_hugepages = 1000000\n";
  auto strict = q.qiaoctl(viewer, {"host", "check"});
  EXPECT_EQ(strict.exit_code, 1) << strict.out << strict.err;
  for (const char* needle :
       {"pass  baseline", "fail  versions", "is below 99.0", "fail  accelerator",
        "fail  cpu", "lacks qiao_no_such_flag", "pass  firmware", "UEFI builds for x86_64, aarch64",
        "fail  hugepages", "must not take guests"}) {
    EXPECT_NE(strict.out.find(needle), std::string::npos) << needle << "\n" << strict.out;
  }
  auto c = q.client(viewer);
  auto api = call(c, "GET", "/v1/host/check");
  ASSERT_EQ(api.status, 200) << api.raw;
  EXPECT_EQ(api.body["ok"], false);
  EXPECT_EQ(api.body["baseline_file"], baseline);
  EXPECT_EQ(api.body["checks"][0]["name"], "baseline");

  // A baseline that does not parse fails the check, naming the key.
  std::ofstream(baseline) << "[host]\nswap = true\n";
  auto broken = q.qiaoctl(viewer, {"host", "check"});
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.out.find("fail  baseline"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("host.swap: unknown key"), std::string::npos) << broken.out;
  std::remove(baseline.c_str());
}

// The start-up KVM probe boots a kernel under KVM: its verdict must be what the same kernel
// does under KVM when the test runs it itself (on this project's nested test machines KVM
// starts QEMU but a Linux kernel never prints: the verdict must then be TCG, and a baseline
// that requires KVM fails).
// A standalone host (cluster.mode standalone, the default) answers the cluster's calls with
// itself alone: host list and get, cluster status without a leader.
TEST(ClusterCalls, AStandaloneHostIsAClusterOfOne) {
  Qiaod q("");
  q.start();
  const auto& viewer = q.identity("looker", "viewer", {"acme"});
  auto self = q.qiaoctl(viewer, {"-o", "json", "host"});
  ASSERT_EQ(self.exit_code, 0) << self.err;
  const std::string hostname = json::parse(self.out).value("hostname", "");
  auto list = q.qiaoctl(viewer, {"-o", "json", "host", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.out << list.err;
  json items = json::parse(list.out)["items"];
  ASSERT_EQ(items.size(), 1u) << list.out;
  EXPECT_EQ(items[0].value("name", ""), hostname);
  EXPECT_EQ(items[0].value("state", ""), "ready");
  EXPECT_FALSE(items[0]["lease"].value("held", true));
  auto one = q.qiaoctl(viewer, {"host", "get", hostname});
  EXPECT_EQ(one.exit_code, 0) << one.out << one.err;
  EXPECT_NE(one.out.find("ready"), std::string::npos) << one.out;
  auto none = q.qiaoctl(viewer, {"host", "get", "no-such-host"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no host no-such-host"), std::string::npos) << none.err;
  auto cluster = q.qiaoctl(viewer, {"-o", "json", "cluster", "status"});
  ASSERT_EQ(cluster.exit_code, 0) << cluster.out << cluster.err;
  json c = json::parse(cluster.out)["cluster"];
  EXPECT_EQ(c.value("mode", ""), "standalone");
  EXPECT_TRUE(c["leader"].is_null());
  EXPECT_FALSE(c.value("this_host_leads", true));
}

TEST(HostCheck, TheKvmVerdictIsWhatAKernelUnderKvmDoes) {
  if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  const std::string kernel = testGuestDir() + "/vmlinuz";
  auto direct = runCommand({"timeout", "15", "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host",
                            "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
                            "-serial", "stdio", "-kernel", kernel, "-append",
                            "panic=-1 root=/dev/none console=ttyS0"},
                           30000);
  const bool kvm_runs_linux = direct.out.find("Linux version") != std::string::npos;

  const std::string baseline = "/tmp/qiao-host-it-" + randomSuffix(8) + ".toml";
  std::ofstream(baseline) << "[hypervisor]\nkvm = \"required\"\n";
  Qiaod q("[vm]\naccelerator = \"auto\"\nshutdown_timeout_s = 30\nkvm_probe_kernel = \"" + kernel +
          "\"\n[host]\nbaseline_file = \"" + baseline + "\"\n");
  q.start();
  auto c = q.client(q.identity("installer", "viewer", {"acme"}));
  auto host = call(c, "GET", "/v1/host");
  ASSERT_EQ(host.status, 200) << host.raw;
  EXPECT_EQ(host.body["accelerator"], kvm_runs_linux ? "kvm" : "tcg") << host.raw;
  auto check = call(c, "GET", "/v1/host/check");
  ASSERT_EQ(check.status, 200) << check.raw;
  EXPECT_EQ(check.body["ok"], kvm_runs_linux) << check.raw;
  for (const auto& item : check.body["checks"]) {
    if (item["name"] != "accelerator") continue;
    EXPECT_EQ(item["verdict"], kvm_runs_linux ? "pass" : "fail") << item.dump();
    if (!kvm_runs_linux) {
      // Nested KVM starts QEMU and the kernel prints nothing; a machine without /dev/kvm
      // never gets that far.
      const bool has_kvm = std::filesystem::exists("/dev/kvm");
      EXPECT_NE(item["detail"].get<std::string>().find(has_kvm ? "printed nothing" : "no /dev/kvm"),
                std::string::npos)
          << item.dump();
    }
  }
  std::remove(baseline.c_str());
}

}  // namespace
}  // namespace qiao::testing
