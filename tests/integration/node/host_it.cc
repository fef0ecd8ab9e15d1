// `qiaoctl host check` and GET /v1/host/check against a real qiaod on this machine, with no
// baseline file, a strict one this host cannot meet, and one that does not parse.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace qiao::testing
