// The host module: health, what this host is, its firmware, and its check against the
// cluster's baseline.
#include <memory>
#include <utility>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/host/baseline.h"
#include "node/vm/hypervisor.h"
#include "node/vm/vm_service.h"

namespace qiao {
namespace {

using nlohmann::json;

class HostRoutes {
 public:
  HostRoutes(VmService& vms, Hypervisor& hypervisor, HostRouteFacts facts)
      : vms_(vms), hypervisor_(hypervisor), facts_(std::move(facts)) {}

  ApiResponse healthz(RequestContext&) {
    bool libvirt = vms_.libvirtConnected();
    return jsonResponse(200, {{"status", libvirt ? "ok" : "degraded"},
                              {"libvirt", libvirt ? "connected" : "disconnected"},
                              {"version", facts_.version}});
  }

  ApiResponse host(RequestContext&) {
    const HostFacts& host = facts_.host;
    json body = {
        {"hostname", host.hostname},         {"arch", host.arch},
        {"cpu_model", host.cpu_model},       {"cores", host.cores},
        {"memory_bytes", host.memory_bytes}, {"kvm_device", host.kvm_device},
        {"accelerator", facts_.accelerator}, {"accelerator_reason", facts_.accelerator_reason},
        {"qiaod_version", facts_.version},   {"cluster", facts_.cluster},
        {"libvirt_version", nullptr},        {"qemu_version", nullptr}};
    if (auto info = hypervisor_.info()) {
      body["libvirt_version"] = info->libvirt_version;
      body["qemu_version"] = info->qemu_version;
      body["libvirt_uri"] = info->uri;
    }
    return jsonResponse(200, body);
  }

  ApiResponse hostCheck(RequestContext&) {
    BaselineFacts facts;
    facts.libvirt_connected = vms_.libvirtConnected();
    if (auto info = hypervisor_.info()) {
      facts.libvirt_version = info->libvirt_version;
      facts.qemu_version = info->qemu_version;
    }
    facts.accelerator = facts_.accelerator;
    facts.accelerator_reason = facts_.accelerator_reason;
    readKernelFacts(facts);
    facts.bios_date = isoDateFromSmbios(readHostFirmware().bios_date);
    std::vector<CheckResult> results;
    auto baseline = loadBaseline(facts_.baseline_file);
    if (baseline) {
      for (const auto& arch : baseline->firmware_archs) {
        FirmwareRequest want{
            arch, arch == "aarch64" ? "virt" : "q35", "uefi", {}, {"enrolled-keys"}};
        if (selectFirmware(facts_.firmware, want)) facts.uefi_archs.insert(arch);
      }
      results = checkHost(*baseline, facts);
    } else {
      // A baseline that does not parse is a failed check, naming what is wrong in it.
      results = checkHost(Baseline{}, facts);
      results.front() = {"baseline", Verdict::kFail, baseline.error().message};
    }
    json checks = json::array();
    for (const auto& r : results) {
      checks.push_back(
          {{"name", r.name}, {"verdict", verdictName(r.verdict)}, {"detail", r.detail}});
    }
    return jsonResponse(200, {{"baseline_file", facts_.baseline_file},
                              {"checks", std::move(checks)},
                              {"ok", mayTakeGuests(results)}});
  }

  ApiResponse hostFirmware(RequestContext&) {
    json builds = json::array();
    for (const auto& d : facts_.firmware.descriptors) {
      json targets = json::array();
      for (const auto& t : d.targets) {
        targets.push_back({{"architecture", t.architecture}, {"machines", t.machines}});
      }
      builds.push_back({{"descriptor", d.source},
                        {"description", d.description},
                        {"interfaces", d.interface_types},
                        {"device", d.device},
                        {"executable", d.executable},
                        {"nvram_template", d.nvram_template},
                        {"targets", std::move(targets)},
                        {"features", d.features}});
    }
    HostFirmware host = readHostFirmware();
    return jsonResponse(200, {{"builds", std::move(builds)},
                              {"warnings", facts_.firmware.warnings},
                              {"host",
                               {{"arch", facts_.host.arch},
                                {"cpu_model", facts_.host.cpu_model},
                                {"microcode", host.microcode},
                                {"boot_mode", host.boot_mode},
                                {"secure_boot", host.secure_boot},
                                {"bios_vendor", host.bios_vendor},
                                {"bios_version", host.bios_version},
                                {"bios_date", host.bios_date},
                                {"system_vendor", host.system_vendor},
                                {"product_name", host.product_name},
                                {"device_tree_model", host.device_tree_model}}}});
  }

 private:
  VmService& vms_;
  Hypervisor& hypervisor_;
  HostRouteFacts facts_;
};

}  // namespace

void addHostRoutes(RouteTable& routes, VmService& vms, Hypervisor& hypervisor,
                   HostRouteFacts facts) {
  auto m = std::make_shared<HostRoutes>(vms, hypervisor, std::move(facts));
  routes.add({{"GET", "/v1/healthz", "viewer", {}}, handlerOf(m, &HostRoutes::healthz)});
  routes.add({{"GET", "/v1/host", "viewer", {}}, handlerOf(m, &HostRoutes::host)});
  routes.add({{"GET", "/v1/host/firmware", "viewer", {}}, handlerOf(m, &HostRoutes::hostFirmware)});
  routes.add({{"GET", "/v1/host/check", "viewer", {}}, handlerOf(m, &HostRoutes::hostCheck)});
}

}  // namespace qiao
