#include "node/cli/host_check.h"

#include <nlohmann/json.hpp>

namespace qiao {
namespace {

std::string stringField(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

CheckResult checkLibvirt(const HostFacts& facts) {
  std::string state = stringField(facts.health, "libvirt");
  std::string version = stringField(facts.host, "libvirt_version");
  if (state == "connected") {
    return {"libvirt", Verdict::kPass,
            "qiaod is connected to libvirt" + (version.empty() ? "" : " " + version)};
  }
  return {"libvirt", Verdict::kFail,
          "qiaod cannot reach libvirtd (healthz says libvirt " +
              (state.empty() ? std::string("is unknown") : state) +
              "): no guest can be defined or started until libvirtd runs"};
}

CheckResult checkAccelerator(const HostFacts& facts) {
  std::string accel = stringField(facts.host, "accelerator");
  std::string reason = stringField(facts.host, "accelerator_reason");
  if (accel == "kvm") {
    return {"accelerator", Verdict::kPass, "kvm" + (reason.empty() ? "" : ": " + reason)};
  }
  if (accel == "tcg") {
    return {"accelerator", Verdict::kWarn,
            "tcg (software emulation, guests run many times slower)" +
                (reason.empty() ? "" : ": " + reason)};
  }
  return {"accelerator", Verdict::kFail,
          "the host reports no usable accelerator" +
              (accel.empty() ? std::string() : " (\"" + accel + "\")")};
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

const std::vector<HostCheck>& hostChecks() {
  static const std::vector<HostCheck> kChecks = {
      {"libvirt", &checkLibvirt},
      {"accelerator", &checkAccelerator},
  };
  return kChecks;
}

std::vector<CheckResult> runHostChecks(const HostFacts& facts) {
  std::vector<CheckResult> results;
  for (const auto& check : hostChecks()) {
    CheckResult r = check.run(facts);
    r.name = std::string(check.name);
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace qiao
