// The host check's baseline: the file's keys and its errors, the facts read from /proc-like
// files, and the verdict of every item (pass, warn, fail) by what the baseline asks.
#include "node/host/baseline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace qiao {
namespace {

const CheckResult* item(const std::vector<CheckResult>& results, const std::string& name) {
  for (const auto& r : results) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

BaselineFacts goodFacts() {
  BaselineFacts f;
  f.libvirt_connected = true;
  f.libvirt_version = "9.0.0";
  f.qemu_version = "7.2.19";
  f.accelerator = "kvm";
  f.cpu_features = {"vmx", "aes", "avx2"};
  f.uefi_archs = {"x86_64", "aarch64"};
  f.bios_date = "2022-03-01";
  f.iommu = true;
  f.hugepages = 512;
  f.time_sync = "synchronized";
  return f;
}

const char* kStrict = R"(
[hypervisor]
min_libvirt = "9.0.0"
min_qemu = "7.2.0"
kvm = "required"
[cpu]
features = ["vmx", "aes"]
[firmware]
archs = ["x86_64", "aarch64"]
min_bios_date = "2020-01-01"
[host]
iommu = "required"
min_hugepages = 256
time_sync = "required"
)";

TEST(Baseline, ParsesEveryKey) {
  auto b = parseBaseline(kStrict, "/etc/qiao/baseline.toml");
  ASSERT_TRUE(b.has_value()) << b.error().message;
  EXPECT_EQ(b->source, "/etc/qiao/baseline.toml");
  EXPECT_EQ(b->min_qemu, "7.2.0");
  EXPECT_EQ(b->kvm, Need::kRequired);
  EXPECT_EQ(b->cpu_features, (std::vector<std::string>{"vmx", "aes"}));
  EXPECT_EQ(b->firmware_archs.size(), 2u);
  EXPECT_EQ(b->min_bios_date, "2020-01-01");
  EXPECT_EQ(b->iommu, Need::kRequired);
  EXPECT_EQ(b->min_hugepages, 256);
  EXPECT_EQ(b->time_sync, Need::kRequired);
}

TEST(Baseline, RefusesWhatIsWrongNamingFileAndKey) {
  struct Case {
    const char* text;
    const char* needle;
  };
  for (const auto& c : {Case{"[hypervisor]\nkvm = \"maybe\"\n", "hypervisor.kvm: must be"},
                        Case{"[hypervisor]\nmin_qemu = \"seven\"\n", "hypervisor.min_qemu"},
                        Case{"[cpu]\nfeatures = \"vmx\"\n", "cpu.features: must be an array"},
                        Case{"[firmware]\narchs = [\"riscv64\"]\n", "riscv64 is not a guest arch"},
                        Case{"[firmware]\nmin_bios_date = \"01/02/2020\"\n", "2019-01-31"},
                        Case{"[host]\nmin_hugepages = -1\n", "host.min_hugepages"},
                        Case{"[host]\nswap = 1\n", "host.swap: unknown key"},
                        Case{"toplevel = 1\n", "toplevel: unknown key"},
                        Case{"[host\n", "b.toml:"}}) {
    auto b = parseBaseline(c.text, "/etc/qiao/b.toml");
    ASSERT_FALSE(b.has_value()) << c.text;
    EXPECT_EQ(b.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(b.error().message.find(c.needle), std::string::npos) << b.error().message;
    EXPECT_NE(b.error().message.find("/etc/qiao/b.toml"), std::string::npos);
  }
}

TEST(Baseline, AMissingFileGivesTheDefaults) {
  auto b = loadBaseline("/nonexistent/baseline.toml");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->source, "");
  auto results = checkHost(*b, goodFacts());
  EXPECT_EQ(item(results, "baseline")->verdict, Verdict::kWarn);
  EXPECT_TRUE(mayTakeGuests(results));
  // Only the items the defaults ask for.
  EXPECT_EQ(item(results, "cpu"), nullptr);
  EXPECT_EQ(item(results, "hugepages"), nullptr);
}

TEST(Baseline, AGoodHostPassesEverything) {
  auto b = parseBaseline(kStrict, "b.toml");
  ASSERT_TRUE(b.has_value());
  auto results = checkHost(*b, goodFacts());
  for (const auto& r : results) EXPECT_EQ(r.verdict, Verdict::kPass) << r.name << ": " << r.detail;
  std::vector<std::string> names;
  for (const auto& r : results) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"baseline", "libvirt", "versions", "accelerator",
                                             "cpu", "firmware", "bios", "iommu", "hugepages",
                                             "time"}));
  EXPECT_TRUE(mayTakeGuests(results));
}

TEST(Baseline, EachShortfallFailsOrWarnsWithItsReason) {
  auto strict = *parseBaseline(kStrict, "b.toml");
  BaselineFacts f = goodFacts();
  f.libvirt_connected = false;
  f.qemu_version = "7.1.0";
  f.accelerator = "tcg";
  f.accelerator_reason = "/dev/kvm is missing";
  f.cpu_features.erase("aes");
  f.uefi_archs.erase("aarch64");
  f.bios_date = "2019-05-05";
  f.iommu = false;
  f.hugepages = 0;
  f.time_sync = "unsynchronized";
  auto results = checkHost(strict, f);
  EXPECT_FALSE(mayTakeGuests(results));
  for (const auto& [name, needle] :
       std::vector<std::pair<std::string, std::string>>{{"libvirt", "cannot reach libvirtd"},
                                                        {"versions", "QEMU 7.1.0 is below 7.2.0"},
                                                        {"accelerator", "/dev/kvm is missing"},
                                                        {"cpu", "lacks aes"},
                                                        {"firmware", "for aarch64"},
                                                        {"bios", "2019-05-05 is older"},
                                                        {"iommu", "no IOMMU groups"},
                                                        {"hugepages", "at least 256"},
                                                        {"time", "clock unsynchronized"}}) {
    const CheckResult* r = item(results, name);
    ASSERT_NE(r, nullptr) << name;
    EXPECT_EQ(r->verdict, Verdict::kFail) << name;
    EXPECT_NE(r->detail.find(needle), std::string::npos) << name << ": " << r->detail;
  }
  // Preferred: the same shortfalls warn; ignored: they pass.
  auto lenient = *parseBaseline(
      "[hypervisor]\nkvm = \"preferred\"\n[host]\niommu = \"ignored\"\ntime_sync = \"preferred\"\n",
      "b.toml");
  f.libvirt_connected = true;
  results = checkHost(lenient, f);
  EXPECT_EQ(item(results, "accelerator")->verdict, Verdict::kWarn);
  EXPECT_EQ(item(results, "iommu")->verdict, Verdict::kPass);
  EXPECT_EQ(item(results, "time")->verdict, Verdict::kWarn);
  EXPECT_TRUE(mayTakeGuests(results));
  // An unknown BIOS date cannot be judged: a warning.
  f.bios_date.clear();
  EXPECT_EQ(item(checkHost(strict, f), "bios")->verdict, Verdict::kWarn);
}

TEST(Baseline, VersionsAndDates) {
  EXPECT_EQ(compareVersions("9.10.0", "9.9"), 1);
  EXPECT_EQ(compareVersions("7.2.0-debian", "7.2"), 0);
  EXPECT_EQ(compareVersions("7.1.5", "7.2.0"), -1);
  EXPECT_EQ(compareVersions("", "1"), -1);
  EXPECT_EQ(isoDateFromSmbios("03/14/2022"), "2022-03-14");
  EXPECT_EQ(isoDateFromSmbios("2022-03-14"), "");
  EXPECT_EQ(isoDateFromSmbios("ab/cd/efgh"), "");
}

TEST(Baseline, KernelFactsFromTheirFiles) {
  const auto dir = std::filesystem::temp_directory_path() / ("qiao-baseline-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "groups" / "0");
  std::ofstream(dir / "cpuinfo") << "processor\t: 0\nflags\t\t: fpu vmx aes\n\nprocessor\t: 1\n"
                                    "flags\t\t: fpu\n";
  std::ofstream(dir / "meminfo") << "MemTotal: 1 kB\nHugePages_Total:     128\n";
  BaselineFacts f;
  readKernelFacts(f, dir / "cpuinfo", dir / "meminfo", dir / "groups");
  EXPECT_EQ(f.cpu_features, (std::set<std::string>{"fpu", "vmx", "aes"}));
  EXPECT_EQ(f.hugepages, 128);
  EXPECT_TRUE(f.iommu);
  EXPECT_NE(f.time_sync, "");
  // arm64's cpuinfo says Features; no groups: no IOMMU.
  std::ofstream(dir / "cpuinfo") << "processor\t: 0\nFeatures\t: fp asimd aes\n";
  std::filesystem::remove_all(dir / "groups" / "0");
  BaselineFacts arm;
  readKernelFacts(arm, dir / "cpuinfo", dir / "meminfo", dir / "groups");
  EXPECT_TRUE(arm.cpu_features.contains("asimd"));
  EXPECT_FALSE(arm.iommu);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qiao
