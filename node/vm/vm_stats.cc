// Per-VM statistics (VmService's share of issue 7, item 5). libvirt gives the domain's CPU,
// memory (balloon), NIC and <disk> figures in one call; Qiao's RBD disks are QEMU -blockdevs
// libvirt does not know, so their figures come from QMP query-blockstats through the guest's
// monitor, kept per VM (monitorOf). /metrics asks them too, with a short timeout per VM and a
// budget for the scrape: a monitor can wait on the domain's job lock (libvirt waits up to 30 s
// while a hot-plug holds it), and a scrape must stay short (docs/operators/monitoring.md).
#include "node/vm/vm_stats.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/log.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/state/record_json.h"
#include "node/vm/domain.h"
#include "node/vm/vm_service.h"

namespace qiao {
namespace {

using nlohmann::json;

const Logger kLog("vm");

// How long the per-VM stats wait for QEMU's answer.
constexpr std::chrono::milliseconds kBlockstatsTimeout{5000};
// /metrics: how long one VM's QEMU may take and how long all of them may take together
// (Prometheus' default scrape timeout is 10 s); kMetricsParallel (vm_stats.h) at once.
constexpr std::chrono::milliseconds kMetricsBlockstatsTimeout{2000};
constexpr std::chrono::milliseconds kMetricsBudget{4000};

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

bool hasRbd(const std::vector<VmStatsDisk>& disks) {
  return std::ranges::any_of(disks, [](const VmStatsDisk& d) { return d.backend == "rbd"; });
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

void askWithinBudget(WorkQueue& pool, size_t n, size_t parallel, std::chrono::milliseconds each,
                     std::chrono::milliseconds budget,
                     const std::function<void(size_t, std::chrono::milliseconds)>& ask,
                     const std::function<void(size_t)>& skipped) {
  using std::chrono::milliseconds;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  parallel = std::max<size_t>(1, parallel);
  std::mutex mutex;
  std::condition_variable done;
  for (size_t begin = 0; begin < n; begin += parallel) {
    size_t outstanding = 0;
    for (size_t i = begin; i < std::min(n, begin + parallel); ++i) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        skipped(i);
        continue;
      }
      const milliseconds timeout = std::min(left, each);
      {
        std::lock_guard lock(mutex);
        ++outstanding;
      }
      const bool posted = pool.post([&, i, timeout] {
        ask(i, timeout);
        std::lock_guard lock(mutex);
        if (--outstanding == 0) done.notify_all();
      });
      if (!posted) {  // the pool is stopping: ask from this thread
        ask(i, timeout);
        std::lock_guard lock(mutex);
        --outstanding;
      }
    }
    std::unique_lock lock(mutex);
    done.wait(lock, [&] { return outstanding == 0; });
  }
}

bool VmFigures::live() const { return domainLive(domain.state); }

VmFigures mergeVmFigures(std::string tenant, std::string name, DomainStats domain,
                         const std::vector<VmStatsDisk>& disks,
                         const std::vector<VmStatsNic>& nics, const Result<json>* blockstats) {
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
        reason = "QMP was not asked";
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
  return {{"vm", f.name},
          {"tenant", f.tenant},
          {"state", vmStateOf(d.state)},
          {"cpu", std::move(cpu)},
          {"memory", std::move(memory)},
          {"disks", std::move(disks)},
          {"nics", std::move(nics)},
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
    auto volume = store_.volumes().get(vm.tenant, disk.volume);
    if (!volume) return std::unexpected(volume.error());
    DiskSource source = volumes_.diskSource(*volume);
    const std::string& type = source.type;
    const std::string& path = source.path;
    disk.backend = type == "rbd" ? "rbd" : "local";
    disk.device = type == "rbd" ? qemuDiskId(volume->uuid) : path;
    out.push_back(std::move(disk));
  }
  if (spec->cloud_init) out.push_back({"", "seed", seedPath(vm), "sda"});
  return out;
}

Result<std::vector<VmStatsNic>> VmService::statsNicsOf(const VmRecord& vm) const {
  auto ports = store_.ports().ofVm(vm.uuid);
  if (!ports) return std::unexpected(ports.error());
  std::vector<VmStatsNic> out;
  if (ports->empty()) return out;
  auto networks = store_.networks().list({vm.tenant});
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
                     "vm " + vmId(vm.tenant, vm.name) + " is " + toString(vm.state) +
                         " and has no domain in libvirt: statistics exist only while it runs");
  }
  if (!domainLive(figures->state)) {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " is " +
                         toString(vmStateOf(figures->state)) +
                         ": statistics exist only while it runs (start it first)");
  }
  auto disks = statsDisksOf(vm);
  if (!disks) return std::unexpected(disks.error());
  auto nics = statsNicsOf(vm);
  if (!nics) return std::unexpected(nics.error());

  std::optional<Result<json>> blockstats;
  if (hasRbd(*disks)) {
    blockstats = rbdBlockstats(vm, kBlockstatsTimeout);
    if (!blockstats->has_value()) {
      kLog.warn("no QMP block stats; the RBD disks' figures are missing",
                {{"vm", vmId(vm.tenant, vm.name)}, {"error", blockstats->error().describe()}});
    }
  }
  VmFigures merged = mergeVmFigures(vm.tenant, vm.name, std::move(*figures), *disks, *nics,
                                    blockstats ? &*blockstats : nullptr);
  json out = vmFiguresToJson(merged);
  out["uuid"] = vm.uuid;
  out["collected_at"] = utcText(std::chrono::system_clock::now());
  return out;
}

Result<json> VmService::rbdBlockstats(const VmRecord& vm, std::chrono::milliseconds timeout) {
  auto monitor = guests_.monitorOf(vm);
  if (!monitor) return std::unexpected(monitor.error());
  return (*monitor)->execute("query-blockstats", json::object(), timeout);
}

std::vector<VmFigures> VmService::metricsFigures() {
  struct One {
    VmRecord vm;
    DomainStats domain;
    std::vector<VmStatsDisk> disks;
    std::vector<VmStatsNic> nics;
    std::optional<Result<json>> blockstats;  // asked: the live VMs with RBD disks
  };
  std::vector<One> all;
  auto domains = hypervisor_.stats();
  if (!domains) return {};
  for (auto& domain : *domains) {
    auto dot = domain.name.find('.');
    if (dot == std::string::npos) continue;
    auto vm = store_.vms().get(domain.name.substr(0, dot), domain.name.substr(dot + 1));
    if (!vm) continue;  // not one of this node's VMs
    One one{*vm, std::move(domain), {}, {}, std::nullopt};
    if (auto found = statsDisksOf(*vm)) one.disks = std::move(*found);
    if (auto found = statsNicsOf(*vm)) one.nics = std::move(*found);
    all.push_back(std::move(one));
  }
  std::vector<One*> asked;
  for (auto& one : all) {
    if (hasRbd(one.disks) && domainLive(one.domain.state)) asked.push_back(&one);
  }
  askWithinBudget(
      stats_pool_, asked.size(), kMetricsParallel, kMetricsBlockstatsTimeout, kMetricsBudget,
      [&](size_t i, std::chrono::milliseconds timeout) {
        asked[i]->blockstats = rbdBlockstats(asked[i]->vm, timeout);
      },
      [&](size_t i) {
        asked[i]->blockstats = makeError(ErrorCode::kTimeout, "vm",
                                         "not asked: this scrape's " +
                                             std::to_string(kMetricsBudget.count() / 1000) +
                                             " s for QEMU were spent on other VMs");
      });
  std::vector<VmFigures> out;
  out.reserve(all.size());
  for (auto& one : all) {
    if (one.blockstats && !one.blockstats->has_value()) {
      kLog.debug("no QMP block stats for /metrics",
                 {{"vm", vmId(one.vm.tenant, one.vm.name)},
                  {"error", one.blockstats->error().describe()}});
    }
    out.push_back(mergeVmFigures(one.vm.tenant, one.vm.name, std::move(one.domain), one.disks,
                                 one.nics, one.blockstats ? &*one.blockstats : nullptr));
  }
  return out;
}

}  // namespace qiao
