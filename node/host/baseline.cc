#include "node/host/baseline.h"

#include <sys/timex.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/files.h"

namespace qiao {

std::string factsToJson(const BaselineFacts& f) {
  nlohmann::json j = {{"libvirt_connected", f.libvirt_connected},
                      {"libvirt_version", f.libvirt_version},
                      {"qemu_version", f.qemu_version},
                      {"accelerator", f.accelerator},
                      {"accelerator_reason", f.accelerator_reason},
                      {"cpu_features", f.cpu_features},
                      {"uefi_archs", f.uefi_archs},
                      {"bios_date", f.bios_date},
                      {"iommu", f.iommu},
                      {"hugepages", f.hugepages},
                      {"time_sync", f.time_sync}};
  return j.dump();
}

Result<BaselineFacts> factsFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto bad = [](const std::string& field) {
    return makeError(ErrorCode::kInvalidArgument, "host",
                     "the host check's " + field + " has the wrong type");
  };
  if (!j.is_object()) return bad("facts (an object)");
  BaselineFacts f;
  auto str = [&](const char* key, std::string& out) -> bool {
    if (!j.contains(key)) return true;
    if (!j[key].is_string() || j[key].get<std::string>().size() > 256) return false;
    out = j[key].get<std::string>();
    return true;
  };
  auto set = [&](const char* key, std::set<std::string>& out) -> bool {
    if (!j.contains(key)) return true;
    if (!j[key].is_array() || j[key].size() > 1024) return false;
    for (const auto& v : j[key]) {
      if (!v.is_string()) return false;
      out.insert(v.get<std::string>());
    }
    return true;
  };
  for (const char* key : {"libvirt_connected", "iommu"}) {
    if (j.contains(key) && !j[key].is_boolean()) return bad(key);
  }
  f.libvirt_connected = j.value("libvirt_connected", false);
  f.iommu = j.value("iommu", false);
  if (j.contains("hugepages")) {
    if (!j["hugepages"].is_number_integer()) return bad("hugepages");
    f.hugepages = j["hugepages"].get<int64_t>();
  }
  if (!str("libvirt_version", f.libvirt_version)) return bad("libvirt_version");
  if (!str("qemu_version", f.qemu_version)) return bad("qemu_version");
  if (!str("accelerator", f.accelerator)) return bad("accelerator");
  if (!str("accelerator_reason", f.accelerator_reason)) return bad("accelerator_reason");
  if (!str("bios_date", f.bios_date)) return bad("bios_date");
  if (!str("time_sync", f.time_sync)) return bad("time_sync");
  if (!set("cpu_features", f.cpu_features)) return bad("cpu_features");
  if (!set("uefi_archs", f.uefi_archs)) return bad("uefi_archs");
  return f;
}

namespace {

std::unexpected<Error> invalid(const std::string& message) {
  return makeError(ErrorCode::kInvalidArgument, "baseline", message);
}

Result<Need> parseNeed(const toml::node& node, const std::string& key) {
  auto v = node.value<std::string>();
  if (node.is_string() && v) {
    if (*v == "required") return Need::kRequired;
    if (*v == "preferred") return Need::kPreferred;
    if (*v == "ignored") return Need::kIgnored;
  }
  return invalid(key + ": must be \"required\", \"preferred\" or \"ignored\"");
}

Result<std::string> parseString(const toml::node& node, const std::string& key) {
  auto v = node.value<std::string>();
  if (!node.is_string() || !v) return invalid(key + ": must be a string");
  return *v;
}

Result<std::vector<std::string>> parseList(const toml::node& node, const std::string& key) {
  const auto* array = node.as_array();
  if (array == nullptr) return invalid(key + ": must be an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *array) {
    auto v = item.value<std::string>();
    if (!item.is_string() || !v || v->empty()) return invalid(key + ": must hold only strings");
    out.push_back(*v);
  }
  return out;
}

bool isVersion(const std::string& v) {
  return !v.empty() && std::isdigit(static_cast<unsigned char>(v[0])) &&
         v.find_first_not_of("0123456789.") == std::string::npos;
}

bool isIsoDate(const std::string& v) {
  return v.size() == 10 && v[4] == '-' && v[7] == '-' &&
         std::all_of(v.begin(), v.end(), [](char c) { return c == '-' || std::isdigit(c); });
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// An item the baseline marks required / preferred / ignored.
CheckResult needed(const std::string& name, Need need, bool present, const std::string& found,
                   const std::string& why) {
  if (present || need == Need::kIgnored) {
    return {name, Verdict::kPass, found + (need == Need::kIgnored && !present ? " (not required)" : "")};
  }
  return {name, need == Need::kRequired ? Verdict::kFail : Verdict::kWarn, found + ": " + why};
}

}  // namespace

std::string_view verdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kPass: return "pass";
    case Verdict::kWarn: return "warn";
    case Verdict::kFail: return "fail";
  }
  return "fail";
}

Result<Baseline> parseBaseline(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return invalid(source + ":" + std::to_string(e.source().begin.line) + ": " +
                   std::string(e.description()));
  }
  Baseline b;
  b.source = source;
  for (const auto& [table_key, table_node] : root) {
    const std::string table(table_key.str());
    const auto* t = table_node.as_table();
    if (t == nullptr) return invalid(source + ": " + table + ": unknown key");
    for (const auto& [key_node, node] : *t) {
      const std::string key = table + "." + std::string(key_node.str());
      const std::string where = source + ": " + key;
      Status ok;
      auto str = [&](std::string& out, bool (*check)(const std::string&), const char* form) {
        auto v = parseString(node, where);
        if (!v) {
          ok = std::unexpected(v.error());
        } else if (!v->empty() && !check(*v)) {
          ok = invalid(where + ": must look like " + form);
        } else {
          out = *v;
        }
      };
      auto need = [&](Need& out) {
        auto v = parseNeed(node, where);
        if (v) out = *v;
        else ok = std::unexpected(v.error());
      };
      auto list = [&](std::vector<std::string>& out) {
        auto v = parseList(node, where);
        if (v) out = std::move(*v);
        else ok = std::unexpected(v.error());
      };
      if (key == "hypervisor.min_libvirt") str(b.min_libvirt, isVersion, "9.0.0");
      else if (key == "hypervisor.min_qemu") str(b.min_qemu, isVersion, "7.2.0");
      else if (key == "hypervisor.kvm") need(b.kvm);
      else if (key == "cpu.features") list(b.cpu_features);
      else if (key == "firmware.archs") {
        list(b.firmware_archs);
        for (const auto& a : b.firmware_archs) {
          if (ok && a != "x86_64" && a != "aarch64") {
            ok = invalid(where + ": " + a + " is not a guest arch (x86_64, aarch64)");
          }
        }
      } else if (key == "firmware.min_bios_date") str(b.min_bios_date, isIsoDate, "2019-01-31");
      else if (key == "host.iommu") need(b.iommu);
      else if (key == "host.time_sync") need(b.time_sync);
      else if (key == "host.min_hugepages") {
        auto v = node.value<int64_t>();
        if (!node.is_integer() || !v || *v < 0) ok = invalid(where + ": must be an integer >= 0");
        else b.min_hugepages = *v;
      } else {
        return invalid(where + ": unknown key");
      }
      if (!ok) return std::unexpected(ok.error());
    }
  }
  return b;
}

Result<Baseline> loadBaseline(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Baseline{};
  if (::access(path.c_str(), R_OK) != 0) {
    return makeError(ErrorCode::kInternal, "baseline", "cannot read " + path);
  }
  return parseBaseline(readTextFile(path), path);
}

void readKernelFacts(BaselineFacts& facts, const std::string& cpuinfo,
                     const std::string& meminfo, const std::string& iommu_groups) {
  std::istringstream cpu(readTextFile(cpuinfo));
  for (std::string line; std::getline(cpu, line);) {
    // x86 "flags : ...", arm64 "Features : ..."; the first CPU's is every CPU's.
    if (!line.starts_with("flags") && !line.starts_with("Features")) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    for (std::string w; words >> w;) facts.cpu_features.insert(w);
    break;
  }
  std::istringstream mem(readTextFile(meminfo));
  for (std::string line; std::getline(mem, line);) {
    if (line.starts_with("HugePages_Total:")) {
      facts.hugepages = std::atoll(line.substr(16).c_str());
    }
  }
  std::error_code ec;
  facts.iommu = std::filesystem::is_directory(iommu_groups, ec) &&
                std::filesystem::directory_iterator(iommu_groups, ec) !=
                    std::filesystem::directory_iterator();
  struct timex tx = {};
  int state = ::adjtimex(&tx);
  if (state < 0) {
    facts.time_sync = "unknown";
  } else {
    facts.time_sync =
        state == TIME_ERROR || (tx.status & STA_UNSYNC) ? "unsynchronized" : "synchronized";
  }
}

std::string isoDateFromSmbios(std::string_view d) {
  if (d.size() != 10 || d[2] != '/' || d[5] != '/') return "";
  std::string iso = std::string(d.substr(6, 4)) + "-" + std::string(d.substr(0, 2)) + "-" +
                    std::string(d.substr(3, 2));
  return isIsoDate(iso) ? iso : "";
}

int compareVersions(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view v) {
    std::vector<long> out;
    size_t i = 0;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
      long n = 0;
      while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
        n = n * 10 + (v[i++] - '0');
      }
      out.push_back(n);
      if (i < v.size() && v[i] == '.') ++i;
      else break;
    }
    return out;
  };
  auto x = parts(a), y = parts(b);
  x.resize(std::max(x.size(), y.size()));
  y.resize(x.size());
  return x < y ? -1 : (x > y ? 1 : 0);
}

std::vector<CheckResult> checkHost(const Baseline& b, const BaselineFacts& f) {
  std::vector<CheckResult> out;
  out.push_back(b.source.empty()
                    ? CheckResult{"baseline", Verdict::kWarn,
                                  "no baseline file: the built-in defaults were checked (write "
                                  "the cluster's to host.baseline_file)"}
                    : CheckResult{"baseline", Verdict::kPass, b.source});

  if (f.libvirt_connected) {
    out.push_back({"libvirt", Verdict::kPass, "qiaod is connected to libvirt"});
  } else {
    out.push_back({"libvirt", Verdict::kFail,
                   "qiaod cannot reach libvirtd: no guest can be defined or started until it "
                   "runs"});
  }

  std::vector<std::string> too_old;
  std::string found = "libvirt " + (f.libvirt_version.empty() ? "?" : f.libvirt_version) +
                      ", QEMU " + (f.qemu_version.empty() ? "?" : f.qemu_version);
  for (const auto& [what, have, least] :
       {std::tuple{"libvirt", f.libvirt_version, b.min_libvirt},
        std::tuple{"QEMU", f.qemu_version, b.min_qemu}}) {
    if (least.empty()) continue;
    if (have.empty() || compareVersions(have, least) < 0) {
      too_old.push_back(std::string(what) + " " + (have.empty() ? "unknown" : have) +
                        " is below " + least);
    }
  }
  out.push_back(too_old.empty() ? CheckResult{"versions", Verdict::kPass, found}
                                : CheckResult{"versions", Verdict::kFail,
                                              join(too_old) + " (the cluster's minimum)"});

  const std::string accel = f.accelerator.empty() ? "none" : f.accelerator;
  const std::string reason = f.accelerator_reason.empty() ? "" : ": " + f.accelerator_reason;
  if (accel == "kvm") {
    out.push_back({"accelerator", Verdict::kPass, "kvm" + reason});
  } else {
    out.push_back(needed("accelerator", b.kvm, false, accel + reason,
                         "without KVM guests run emulated, many times slower"));
  }

  if (!b.cpu_features.empty()) {
    std::vector<std::string> missing;
    for (const auto& want : b.cpu_features) {
      if (!f.cpu_features.contains(want)) missing.push_back(want);
    }
    out.push_back(missing.empty()
                      ? CheckResult{"cpu", Verdict::kPass, "has " + join(b.cpu_features)}
                      : CheckResult{"cpu", Verdict::kFail,
                                    "lacks " + join(missing) +
                                        " (the cluster's guests may need them; a guest moved "
                                        "here could not run)"});
  }

  if (!b.firmware_archs.empty()) {
    std::vector<std::string> missing;
    for (const auto& arch : b.firmware_archs) {
      if (!f.uefi_archs.contains(arch)) missing.push_back(arch);
    }
    out.push_back(missing.empty()
                      ? CheckResult{"firmware", Verdict::kPass,
                                    "UEFI builds for " + join(b.firmware_archs)}
                      : CheckResult{"firmware", Verdict::kFail,
                                    "no UEFI build (QEMU firmware descriptor) for " +
                                        join(missing) + ": install ovmf / qemu-efi-aarch64"});
  }

  if (!b.min_bios_date.empty()) {
    if (f.bios_date.empty()) {
      out.push_back({"bios", Verdict::kWarn,
                     "the host's BIOS date is unknown (no SMBIOS): cannot compare with " +
                         b.min_bios_date});
    } else if (f.bios_date < b.min_bios_date) {
      out.push_back({"bios", Verdict::kFail,
                     "BIOS of " + f.bios_date + " is older than " + b.min_bios_date +
                         ": update the server's firmware"});
    } else {
      out.push_back({"bios", Verdict::kPass, "BIOS of " + f.bios_date});
    }
  }

  out.push_back(needed("iommu", b.iommu, f.iommu,
                       f.iommu ? "IOMMU groups present" : "no IOMMU groups",
                       "devices cannot be passed to guests (enable VT-d / SMMU and "
                       "intel_iommu=on or iommu.passthrough)"));

  if (b.min_hugepages > 0) {
    const std::string have = std::to_string(f.hugepages) + " hugepages";
    out.push_back(f.hugepages >= b.min_hugepages
                      ? CheckResult{"hugepages", Verdict::kPass, have}
                      : CheckResult{"hugepages", Verdict::kFail,
                                    have + ", the baseline wants at least " +
                                        std::to_string(b.min_hugepages)});
  }

  out.push_back(needed("time", b.time_sync, f.time_sync == "synchronized",
                       "clock " + f.time_sync,
                       "certificates, logs and guests' clocks need a synchronized host clock "
                       "(chrony, systemd-timesyncd)"));
  return out;
}

bool mayTakeGuests(const std::vector<CheckResult>& results) {
  return std::none_of(results.begin(), results.end(),
                      [](const CheckResult& r) { return r.verdict == Verdict::kFail; });
}

}  // namespace qiao
