// The host check (GET /v1/host/check, `qiaoctl host check`): whether this host may take
// guests, item by item, against the cluster's baseline (/etc/qiao/baseline.toml, the path in
// host.baseline_file). qiaod gathers the facts (they are this host's) and judges; qiaoctl
// prints the verdicts and exits non-zero when one fails.
//
// The baseline (every key optional; a missing file means these defaults):
//   [hypervisor]
//   min_libvirt = "9.0.0"        # "" = any version
//   min_qemu = "7.2.0"
//   kvm = "preferred"            # required | preferred | ignored (TCG: fail | warn | pass)
//   [cpu]
//   features = ["vmx"]           # /proc/cpuinfo flags (x86) or Features (arm64), all needed
//   [firmware]
//   archs = ["x86_64", "aarch64"]  # a UEFI build (QEMU descriptor) for each guest arch
//   min_bios_date = "2019-01-01" # the host's SMBIOS BIOS date (unknown: warn)
//   [host]
//   iommu = "ignored"            # required | preferred | ignored
//   min_hugepages = 0            # HugePages_Total
//   time_sync = "preferred"      # the kernel's clock synchronized (NTP, chrony)
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace qiao {

enum class Verdict { kPass, kWarn, kFail };
std::string_view verdictName(Verdict verdict);  // "pass", "warn", "fail"

struct CheckResult {
  std::string name;
  Verdict verdict = Verdict::kFail;
  std::string detail;  // what was found and, for warn and fail, why it matters
};

// How much an item matters: missing fails, warns, or is not looked at.
enum class Need { kRequired, kPreferred, kIgnored };

struct Baseline {
  std::string source;  // the file read; "" when there was none (the defaults)
  std::string min_libvirt, min_qemu;
  Need kvm = Need::kPreferred;
  std::vector<std::string> cpu_features;
  std::vector<std::string> firmware_archs;
  std::string min_bios_date;  // YYYY-MM-DD
  Need iommu = Need::kIgnored;
  int64_t min_hugepages = 0;
  Need time_sync = Need::kPreferred;
};

// kInvalidArgument naming `source`, the key and what is wrong (unknown keys included).
Result<Baseline> parseBaseline(std::string_view toml, const std::string& source);
// The file at `path`; a file that does not exist gives the defaults (source "").
Result<Baseline> loadBaseline(const std::string& path);

struct BaselineFacts {
  bool libvirt_connected = false;
  std::string libvirt_version, qemu_version;
  std::string accelerator, accelerator_reason;  // kvm | tcg, and why
  std::set<std::string> cpu_features;
  std::set<std::string> uefi_archs;  // guest archs with a UEFI build (without enrolled keys)
  std::string bios_date;             // YYYY-MM-DD, "" when unknown
  bool iommu = false;
  int64_t hugepages = 0;
  std::string time_sync = "unknown";  // synchronized | unsynchronized | unknown
};

// What the kernel says: CPU features, IOMMU groups, hugepages, whether the clock is synchronized
// (the files are parameters for tests).
void readKernelFacts(BaselineFacts& facts, const std::string& cpuinfo = "/proc/cpuinfo",
                     const std::string& meminfo = "/proc/meminfo",
                     const std::string& iommu_groups = "/sys/kernel/iommu_groups");
// SMBIOS's MM/DD/YYYY as YYYY-MM-DD; "" when it is not that.
std::string isoDateFromSmbios(std::string_view date);
// -1, 0, 1 comparing dotted versions numerically ("9.10.0" > "9.9"); text after the numbers
// ("7.2.0-debian") is ignored.
int compareVersions(std::string_view a, std::string_view b);

// The facts as JSON text (the host check a joiner sends with POST /v1/cluster/join, which the
// member judges again against its own baseline); kInvalidArgument naming a field of the wrong
// type. Unknown fields are ignored (a newer joiner may send more).
std::string factsToJson(const BaselineFacts& facts);
Result<BaselineFacts> factsFromJson(std::string_view json);

// The verdicts, in a fixed order: baseline, libvirt, versions, accelerator, cpu, firmware,
// bios, iommu, hugepages, time.
std::vector<CheckResult> checkHost(const Baseline& baseline, const BaselineFacts& facts);
bool mayTakeGuests(const std::vector<CheckResult>& results);  // no fail

}  // namespace qiao
