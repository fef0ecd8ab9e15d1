// Per-VM statistics (VmService's share of issue 7, item 5). libvirt gives the domain's CPU,
// memory (balloon), NIC and <disk> figures in one call; Qiao's RBD disks are QEMU -blockdevs
// libvirt does not know, so their figures come from QMP query-blockstats through the guest's
// monitor. Only the per-VM stats ask QMP: /metrics takes libvirt's bulk call alone (a monitor
// per VM per scrape costs a libvirt connection each and can wait on the domain's job lock for
// libvirt's 30 s; docs/operators/monitoring.md).
#include "node/vm/vm_stats.h"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "node/qmp/qmp_channel.h"
#include "node/state/record_json.h"
#include "node/vm/domain.h"
#include "node/vm/vm_service.h"

namespace qiao {
namespace {

using nlohmann::json;

const Logger kLog("vm");

// How long the per-VM stats wait for QEMU's answer.
constexpr std::chrono::milliseconds kBlockstatsTimeout{5000};

uint64_t counter(const json& stats, const char* key) {
  auto it = stats.find(key);
  return it != stats.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// "/machine/peripheral/qd-1a2b/virtio-backend" -> "qd-1a2b"; other paths as they are.
std::string qdevId(const std::string& qdev) {
  constexpr std::string_view kPeripheral = "/machine/peripheral/";
  if (!qdev.starts_with(kPeripheral)) return qdev;
  std::string rest = qdev.substr(kPeripheral.size());
  return rest.substr(0, rest.find('/'));
}

json orNull(const std::optional<uint64_t>& value, uint64_t scale = 1) {
  return value ? json(*value * scale) : json(nullptr);
}

std::string utcNow() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::map<std::string, BlockFigures> parseQmpBlockstats(const json& answer) {
  std::map<std::string, BlockFigures> out;
  if (!answer.is_array()) return out;
  for (const auto& entry : answer) {
    if (!entry.is_object()) continue;
    auto stats = entry.find("stats");
    if (stats == entry.end() || !stats->is_object()) continue;
    BlockFigures f;
    f.read_bytes = counter(*stats, "rd_bytes");
    f.read_ops = counter(*stats, "rd_operations");
    f.write_bytes = counter(*stats, "wr_bytes");
    f.write_ops = counter(*stats, "wr_operations");
    f.flush_ops = counter(*stats, "flush_operations");
    for (const char* key : {"qdev", "node-name", "device"}) {
      auto name = entry.find(key);
      if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) continue;
      std::string id = key == std::string_view("qdev") ? qdevId(*name) : name->get<std::string>();
      if (!id.empty()) out.emplace(id, f);  // the first entry of a name wins
    }
  }
  return out;
}

bool VmFigures::live() const {
  return domain.state == DomainState::kRunning || domain.state == DomainState::kPaused ||
         domain.state == DomainState::kBlocked || domain.state == DomainState::kPmSuspended;
}

VmFigures mergeVmFigures(std::string tenant, std::string name, DomainStats domain,
                         const std::vector<VmStatsDisk>& disks,
                         const std::vector<VmStatsNic>& nics, const Result<json>* blockstats,
                         const std::string& no_qmp_reason) {
  VmFigures out;
  out.tenant = std::move(tenant);
  out.name = std::move(name);
  out.domain = std::move(domain);
  std::map<std::string, BlockFigures> qemu;
  if (blockstats != nullptr && blockstats->has_value()) qemu = parseQmpBlockstats(**blockstats);
  for (const auto& ref : disks) {
    VmFigures::Disk disk{ref, std::nullopt};
    std::string reason;
    if (ref.backend == "rbd") {
      if (blockstats == nullptr) {
        reason = no_qmp_reason.empty() ? "QMP was not asked" : no_qmp_reason;
      } else if (!blockstats->has_value()) {
        reason = "QMP query-blockstats failed: " + blockstats->error().message;
      } else if (auto it = qemu.find(ref.device); it != qemu.end()) {
        disk.figures = it->second;
      } else {
        reason = "QEMU has no device " + ref.device + " (not plugged)";
      }
    } else {
      // By the file libvirt opens; the target only when libvirt gave no path (targets of a
      // running VM can differ from the spec's order after hot-plugs).
      const DomainDiskStats* found = nullptr;
      for (const auto& d : out.domain.disks) {
        if (!ref.device.empty() && d.path == ref.device) found = &d;
      }
      for (const auto& d : out.domain.disks) {
        if (found == nullptr && d.path.empty() && d.target == ref.target) found = &d;
      }
      if (found != nullptr) {
        disk.figures = BlockFigures{found->read_bytes, found->read_ops, found->write_bytes,
                                    found->write_ops, found->flush_ops};
      } else {
        reason = "libvirt reports no disk " + (ref.device.empty() ? ref.target : ref.device);
      }
    }
    if (!disk.figures && out.live()) {
      out.missing.push_back({"disk " + (ref.volume.empty() ? ref.backend : ref.volume), reason});
    }
    out.disks.push_back(std::move(disk));
  }
  for (const auto& ref : nics) {
    VmFigures::Nic nic{ref, std::nullopt};
    for (const auto& n : out.domain.nics) {
      if (n.device == ref.device) nic.figures = n;
    }
    if (!nic.figures && out.live()) {
      out.missing.push_back({"nic " + ref.mac, "libvirt reports no interface " + ref.device});
    }
    out.nics.push_back(std::move(nic));
  }
  return out;
}

json vmFiguresToJson(const VmFigures& f) {
  const DomainStats& d = f.domain;
  auto seconds = [](const std::optional<uint64_t>& ns) {
    return ns ? json(static_cast<double>(*ns) / 1e9) : json(nullptr);
  };
  json cpu = {{"time_seconds", static_cast<double>(d.cpu_time_ns) / 1e9},
              {"user_seconds", seconds(d.cpu_user_ns)},
              {"system_seconds", seconds(d.cpu_system_ns)},
              {"vcpus", d.vcpus_current},
              {"vcpus_maximum", d.vcpus_maximum}};
  json memory = {{"maximum_bytes", d.memory_max_kib * 1024},
                 {"current_bytes", d.memory_current_kib * 1024},
                 {"rss_bytes", d.memory_rss_kib * 1024},
                 {"guest_unused_bytes", orNull(d.memory_unused_kib, 1024)},
                 {"guest_available_bytes", orNull(d.memory_available_kib, 1024)},
                 {"guest_usable_bytes", orNull(d.memory_usable_kib, 1024)},
                 {"guest_reported_at",
                  d.memory_last_update_s ? json(*d.memory_last_update_s) : json(nullptr)}};
  json disks = json::array();
  for (const auto& disk : f.disks) {
    json j = {{"volume", disk.ref.volume.empty() ? json(nullptr) : json(disk.ref.volume)},
              {"backend", disk.ref.backend},
              {"device", disk.ref.backend == "rbd" ? disk.ref.device : disk.ref.target}};
    const auto& g = disk.figures;
    j["read_bytes"] = g ? json(g->read_bytes) : json(nullptr);
    j["read_ops"] = g ? json(g->read_ops) : json(nullptr);
    j["write_bytes"] = g ? json(g->write_bytes) : json(nullptr);
    j["write_ops"] = g ? json(g->write_ops) : json(nullptr);
    j["flush_ops"] = g ? json(g->flush_ops) : json(nullptr);
    disks.push_back(std::move(j));
  }
  json nics = json::array();
  for (const auto& nic : f.nics) {
    json j = {{"mac", nic.ref.mac},
              {"network", nic.ref.network},
              {"ip", nic.ref.ip},
              {"device", nic.ref.device}};
    const auto& g = nic.figures;
    for (auto [key, value] : {std::pair{"rx_bytes", g ? g->rx_bytes : 0},
                              std::pair{"rx_packets", g ? g->rx_packets : 0},
                              std::pair{"rx_errors", g ? g->rx_errors : 0},
                              std::pair{"rx_drops", g ? g->rx_drops : 0},
                              std::pair{"tx_bytes", g ? g->tx_bytes : 0},
                              std::pair{"tx_packets", g ? g->tx_packets : 0},
                              std::pair{"tx_errors", g ? g->tx_errors : 0},
                              std::pair{"tx_drops", g ? g->tx_drops : 0}}) {
      j[key] = g ? json(value) : json(nullptr);
    }
    nics.push_back(std::move(j));
  }
  json missing = json::array();
  for (const auto& m : f.missing) missing.push_back({{"part", m.part}, {"reason", m.reason}});
  return {{"vm", f.name},         {"tenant", f.tenant}, {"state", domainStateName(d.state)},
          {"cpu", std::move(cpu)}, {"memory", std::move(memory)},
          {"disks", std::move(disks)}, {"nics", std::move(nics)},
          {"missing", std::move(missing)}};
}

Result<std::vector<VmStatsDisk>> VmService::statsDisksOf(const VmRecord& vm) const {
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  std::vector<VmStatsDisk> out;
  for (size_t i = 0; i < spec->disks.size(); ++i) {
    VmStatsDisk disk;
    disk.volume = diskVolumeName(*spec, i);
    disk.target = std::string("vd") + static_cast<char>('a' + i);
    auto volume = store_.getVolume(vm.tenant, disk.volume);
    if (!volume) return std::unexpected(volume.error());
    std::string type = volume->backend == "rbd" ? "rbd" : "file";
    std::string path;
    if (volumes_ != nullptr) {
      DiskSource source = volumes_->diskSource(*volume);
      type = source.type;
      path = source.path;
    }
    disk.backend = type == "rbd" ? "rbd" : "local";
    disk.device = type == "rbd" ? qemuDiskId(volume->uuid) : path;
    out.push_back(std::move(disk));
  }
  if (spec->cloud_init) out.push_back({"", "seed", seedPath(vm), "sda"});
  return out;
}

Result<std::vector<VmStatsNic>> VmService::statsNicsOf(const VmRecord& vm) const {
  auto ports = store_.listPorts("vm", vm.uuid);
  if (!ports) return std::unexpected(ports.error());
  std::vector<VmStatsNic> out;
  if (ports->empty()) return out;
  auto networks = store_.listNetworks({vm.tenant});
  if (!networks) return std::unexpected(networks.error());
  for (const auto& p : *ports) {
    VmStatsNic nic{p.mac, p.network, p.ip, p.name};
    for (const auto& n : *networks) {
      if (n.uuid == p.network) nic.network = n.name;
    }
    out.push_back(std::move(nic));
  }
  return out;
}

Result<json> VmService::stats(const VmRecord& vm) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  auto figures = hypervisor_.domainStats(domain);
  if (!figures) {
    if (figures.error().code != ErrorCode::kNotFound) return std::unexpected(figures.error());
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " is " + vm.state +
                         " and has no domain in libvirt: statistics exist only while it runs");
  }
  VmFigures probe;
  probe.domain.state = figures->state;
  if (!probe.live()) {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " is " +
                         domainStateName(figures->state) +
                         ": statistics exist only while it runs (start it first)");
  }
  auto disks = statsDisksOf(vm);
  if (!disks) return std::unexpected(disks.error());
  auto nics = statsNicsOf(vm);
  if (!nics) return std::unexpected(nics.error());

  bool has_rbd = false;
  for (const auto& d : *disks) has_rbd = has_rbd || d.backend == "rbd";
  std::optional<Result<json>> blockstats;
  if (has_rbd) {
    auto monitor = monitorOf(vm);
    if (monitor) {
      blockstats = (*monitor)->execute("query-blockstats", json::object(), kBlockstatsTimeout);
    } else {
      blockstats = Result<json>(std::unexpected(monitor.error()));
    }
    if (!blockstats->has_value()) {
      kLog.warn("no QMP block stats; the RBD disks' figures are missing",
                {{"vm", vmId(vm.tenant, vm.name)}, {"error", blockstats->error().describe()}});
    }
  }
  VmFigures merged = mergeVmFigures(vm.tenant, vm.name, std::move(*figures), *disks, *nics,
                                    blockstats ? &*blockstats : nullptr);
  json out = vmFiguresToJson(merged);
  out["uuid"] = vm.uuid;
  out["collected_at"] = utcNow();
  return out;
}

std::vector<VmFigures> VmService::metricsFigures() {
  std::vector<VmFigures> out;
  auto all = hypervisor_.stats();
  if (!all) return out;
  for (auto& domain : *all) {
    auto dot = domain.name.find('.');
    if (dot == std::string::npos) continue;
    auto vm = store_.getVm(domain.name.substr(0, dot), domain.name.substr(dot + 1));
    if (!vm) continue;  // not one of this node's VMs
    std::vector<VmStatsDisk> disks;
    std::vector<VmStatsNic> nics;
    if (auto found = statsDisksOf(*vm)) disks = std::move(*found);
    if (auto found = statsNicsOf(*vm)) nics = std::move(*found);
    out.push_back(mergeVmFigures(vm->tenant, vm->name, std::move(domain), disks, nics, nullptr,
                                 "RBD disks' figures are in GET /v1/vms/{name}/stats only"));
  }
  return out;
}

}  // namespace qiao
