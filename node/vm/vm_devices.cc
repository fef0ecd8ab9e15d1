// Disks and NICs of a living VM: hot-plug and unplug, a grown volume shown to its guest at
// once, vCPUs and memory. NICs are libvirt interfaces (libvirt attaches and detaches them).
// RBD disks are Qiao's own -blockdevs on Qiao's own root ports (libvirt 9.0 cannot name an
// RBD namespace), so they change through the guest's QMP monitor. The stored spec and the
// persistent definition follow in the same task, so the next start has the same devices.
#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/log.h"
#include "node/images/image_service.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/state/record_json.h"
#include "node/vm/domain.h"
#include "node/vm/vm_service.h"
#include "node/volumes/block_copy.h"

namespace qiao {
namespace {

const Logger kLog("vm");

// The ids of the devices QEMU holds under /machine/peripheral (those with an id).
Result<std::set<std::string>> peripheralIds(QmpChannel& qmp) {
  auto listed = qmp.execute("qom-list", {{"path", "/machine/peripheral"}});
  if (!listed) return std::unexpected(listed.error());
  if (!listed->is_array()) {
    return makeError(ErrorCode::kInternal, "qmp", "qom-list did not answer a list");
  }
  std::set<std::string> ids;
  for (const auto& entry : *listed) {
    if (entry.is_object() && entry.value("type", "").starts_with("child<")) {
      ids.insert(entry.value("name", ""));
    }
  }
  return ids;
}

}  // namespace

void VmService::setDiskReleaseTimeout(std::chrono::milliseconds timeout) {
  disk_release_timeout_ = timeout;
}

Status VmService::checkImageFits(const std::string& where, const DiskSpec& disk,
                                 const ImageRecord& image) {
  if (disk.size_gib > 0 && (disk.size_gib << 30) < image.virtual_size) {
    return makeError(ErrorCode::kInvalidArgument, "vm",
                     where + "size_gib " + std::to_string(disk.size_gib) +
                         " is smaller than image " + disk.image);
  }
  return {};
}

Status VmService::checkNewDisk(const VmSpec& spec, size_t i, bool importing_ok) const {
  const DiskSpec& disk = spec.disks[i];
  const std::string where = "disks[" + std::to_string(i) + "]: ";
  const std::string name = diskVolumeName(spec, i);
  if (disk.image.empty()) {
    auto volume = store_.volumes().get(spec.tenant, name);
    if (!volume) {
      return makeError(ErrorCode::kInvalidArgument, "vm",
                       where + "tenant " + spec.tenant + " has no volume named " + name);
    }
    if (!volume->attached_vm.empty()) {
      return makeError(ErrorCode::kConflict, "vm",
                       where + "volume " + name + " is attached to vm " + volume->attached_vm);
    }
    if (volume->state != VolumeState::kAvailable) {
      return makeError(
          ErrorCode::kConflict, "vm",
          where + "volume " + name + " is " + toString(volume->state) + ", not available");
    }
    return {};
  }
  auto image = findImageFor(store_, spec.tenant, disk.image);
  if (!image) return makeError(ErrorCode::kInvalidArgument, "vm", where + image.error().message);
  const bool importing = importing_ok && image->state == ImageState::kImporting;
  if (image->state != ImageState::kReady && !importing) {
    return makeError(ErrorCode::kConflict, "vm",
                     where + "image " + disk.image + " is " + toString(image->state) +
                         ", not ready" +
                         (image->state == ImageState::kPending ? " (upload its data first)" : ""));
  }
  // An image being imported has no size yet: the create checks it once the image is ready.
  if (!importing) {
    if (auto fits = checkImageFits(where, disk, *image); !fits) return fits;
  }
  if (store_.volumes().get(spec.tenant, name)) {
    return makeError(ErrorCode::kConflict, "vm",
                     where + "volume " + name + " (this disk's) already exists");
  }
  return {};
}

Result<TaskRecord> VmService::addDisk(const VmRecord& vm, DiskSpec disk,
                                      const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  if (spec->disks.size() >= kMaxDisks) {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " has " + std::to_string(kMaxDisks) +
                         " disks, the most a vm may have");
  }
  if (!disk.image.empty() && disk.volume.empty()) {
    // The new volume's name, kept when disks before it go: "<vm>-disk<k>", k free.
    std::set<std::string> taken;
    for (size_t i = 0; i < spec->disks.size(); ++i) taken.insert(diskVolumeName(*spec, i));
    for (size_t k = spec->disks.size(); disk.volume.empty(); ++k) {
      std::string candidate = imageDiskVolumeName(vm.name, k);
      if (!taken.contains(candidate) && !store_.volumes().get(vm.tenant, candidate)) {
        disk.volume = std::move(candidate);
      }
    }
  }
  VmSpec next = *spec;
  next.disks.push_back(disk);
  if (auto valid = validateVmSpec(next, storedLimits()); !valid) {
    return std::unexpected(valid.error());
  }
  if (auto ok = checkNewDisk(next, next.disks.size() - 1); !ok) return std::unexpected(ok.error());
  auto live = guests_.isLive(vm);
  if (!live) return std::unexpected(live.error());
  if (*live && volumes_.driver().backend() != "rbd") {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " is running and its volumes are in a " +
                         std::string(volumes_.driver().backend()) +
                         " backend: only RBD disks are hot-plugged; stop the vm to add it");
  }
  nlohmann::json params = vmSpecToJsonValue(next)["disks"].back();
  return queueTask(TaskEngine::newTask(TaskKind::kVmDiskAdd, vm.tenant, vm.name, identity,
                                       nlohmann::json{{"disk", params}}.dump()),
                   std::nullopt);
}

Result<TaskRecord> VmService::removeDisk(const VmRecord& vm, const std::string& volume,
                                         const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  if (auto idle = checkNotCopying(vm, volume); !idle) return std::unexpected(idle.error());
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  bool found = false;
  for (size_t i = 0; i < spec->disks.size(); ++i)
    found = found || diskVolumeName(*spec, i) == volume;
  if (!found) {
    return makeError(ErrorCode::kNotFound, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " has no disk on volume " + volume);
  }
  return queueTask(TaskEngine::newTask(TaskKind::kVmDiskRemove, vm.tenant, vm.name, identity,
                                       nlohmann::json{{"volume", volume}}.dump()),
                   std::nullopt);
}

Status VmService::redefineWith(const VmRecord& vm, const VmSpec& spec) {
  VmRecord next = vm;
  next.spec_json = vmSpecToJson(spec);
  if (auto saved = store_.vms().setSpec(vm.tenant, vm.name, next.spec_json); !saved) return saved;
  auto xml = renderXml(next);
  if (!xml) return std::unexpected(xml.error());
  return hypervisor_.define(*xml);
}

Result<DiskDef> VmService::diskDefOf(const VmRecord& vm, const std::string& volume_name) const {
  auto volume = store_.volumes().get(vm.tenant, volume_name);
  if (!volume) return std::unexpected(volume.error());
  return diskFromSource(qemuDiskId(volume->uuid), volumes_.diskSource(*volume));
}

Status VmService::attachLive(QmpChannel& qmp, const DiskDef& disk) {
  auto devices = peripheralIds(qmp);
  if (!devices) return std::unexpected(devices.error());
  if (devices->contains(disk.id)) return {};  // done before a restart of qiaod
  if (auto added = addBlockNodes(qmp, BlockNode{disk.id, disk, false}); !added) {
    return added;
  }
  auto pci = qmp.execute("query-pci");
  if (!pci) return std::unexpected(pci.error());
  auto port = freeDiskPort(*pci);
  if (!port) {
    return makeError(ErrorCode::kConflict, "vm",
                     "no free PCIe port for a disk (the vm was defined before hot-plug; stop and "
                     "start it once)");
  }
  if (auto added = qmp.execute("device_add", rbdDevice(disk, *port, false)); !added) {
    return std::unexpected(added.error());
  }
  return {};
}

Status VmService::detachLive(QmpChannel& qmp, const std::string& id) {
  auto devices = peripheralIds(qmp);
  if (!devices) return std::unexpected(devices.error());
  if (devices->contains(id)) {
    // The guest must let the device go (PCIe hot-unplug is a request to the guest's OS):
    // wait for QEMU's DEVICE_DELETED, then check.
    std::mutex mu;
    std::condition_variable cv;
    bool deleted = false;
    QmpSubscription sub = qmp.subscribe("DEVICE_DELETED", [&](const QmpEvent& event) {
      if (event.data.is_object() && event.data.value("device", "") == id) {
        std::lock_guard lock(mu);
        deleted = true;
        cv.notify_all();
      }
    });
    auto asked = qmp.execute("device_del", {{"id", id}});
    // Asked before (a task run again): QEMU says the unplug is under way; keep waiting.
    if (!asked && asked.error().message.find("in the process of unplug") == std::string::npos) {
      return std::unexpected(asked.error());
    }
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, disk_release_timeout_, [&] { return deleted; });
    }
    sub.reset();
    auto after = peripheralIds(qmp);
    if (!after) return std::unexpected(after.error());
    if (after->contains(id)) {
      return makeError(ErrorCode::kTimeout, "vm",
                       "the guest did not release disk " + id + " within " +
                           std::to_string(disk_release_timeout_.count() / 1000) +
                           " s (is its OS up, and does it handle PCIe hot-unplug?); the disk "
                           "stays attached: try again, or stop the vm and remove it then");
    }
  }
  return deleteBlockNodes(qmp, {id});
}

Status VmService::unplugDisk(const VmRecord& vm, const std::string& volume) {
  auto live = guests_.isLive(vm);
  if (!live) return std::unexpected(live.error());
  if (!*live) return {};
  auto def = diskDefOf(vm, volume);
  if (!def) return std::unexpected(def.error());
  auto qmp = guests_.monitorOf(vm);
  if (!qmp) return std::unexpected(qmp.error());
  return detachLive(**qmp, def->id);
}

Status VmService::runAddDisk(TaskEngine::Run& run, const VmRecord& vm,
                             const nlohmann::json& disk_json) {
  auto parsed =
      parseVmSpec(nlohmann::json{{"name", vm.name}, {"disks", {disk_json}}}.dump(), storedLimits());
  if (!parsed) return std::unexpected(parsed.error());
  const DiskSpec disk = parsed->disks.at(0);
  const std::string name = disk.volume;
  auto withDisk = [&](bool present) -> Result<VmSpec> {
    auto spec = storedSpec(vm);
    if (!spec) return spec;
    auto& disks = spec->disks;
    auto at = std::find_if(disks.begin(), disks.end(),
                           [&](const DiskSpec& d) { return d.volume == name; });
    if (present && at == disks.end()) disks.push_back(disk);
    if (!present && at != disks.end()) disks.erase(at);
    return spec;
  };
  VmSpec one;  // the VM with just this disk, for the volume's take and give back
  one.name = vm.name;
  one.tenant = vm.tenant;
  one.disks = {disk};
  Status result = run.step(
      "volume", 20, "preparing the volume", [&]() -> Status { return takeDisks(one); },
      [&]() -> Status { return giveBackDisks(one, /*deleting=*/false); });
  if (result) {
    result = run.step(
        "define", 50, "recording the disk",
        [&]() -> Status {
          auto spec = withDisk(true);
          if (!spec) return std::unexpected(spec.error());
          return redefineWith(vm, *spec);
        },
        [&]() -> Status {
          auto spec = withDisk(false);
          if (!spec) return std::unexpected(spec.error());
          return redefineWith(vm, *spec);
        });
  }
  if (result) {
    result = run.step(
        "attach", 90, "plugging the disk into the running guest",
        [&]() -> Status {
          auto live = guests_.isLive(vm);
          if (!live) return std::unexpected(live.error());
          if (!*live) return {};  // it has the disk at its next start
          auto def = diskDefOf(vm, name);
          if (!def) return std::unexpected(def.error());
          auto qmp = guests_.monitorOf(vm);
          if (!qmp) return std::unexpected(qmp.error());
          return attachLive(**qmp, *def);
        },
        [&]() -> Status { return unplugDisk(vm, name); });
  }
  if (!result) run.rollback();
  kLog.info("disk add", {{"vm", vmId(vm.tenant, vm.name)},
                         {"volume", name},
                         {"ok", result ? "yes" : result.error().describe()}});
  return result;
}

Status VmService::runRemoveDisk(TaskEngine::Run& run, const VmRecord& vm,
                                const std::string& volume) {
  Status result = run.step("detach", 50, "unplugging the disk from the running guest",
                           [&]() -> Status { return unplugDisk(vm, volume); });
  if (result) {
    result = run.step("define", 75, "forgetting the disk", [&]() -> Status {
      auto spec = storedSpec(vm);
      if (!spec) return std::unexpected(spec.error());
      for (size_t i = 0; i < spec->disks.size(); ++i) {
        // Later image disks keep the names their volumes have now.
        if (spec->disks[i].volume.empty()) spec->disks[i].volume = diskVolumeName(*spec, i);
      }
      std::erase_if(spec->disks, [&](const DiskSpec& d) { return d.volume == volume; });
      return redefineWith(vm, *spec);
    });
  }
  if (result) {
    // The volume stays, available to its tenant (one made from an image too): an unplug never
    // destroys data; delete the volume for that.
    result = run.step("release", 95, "giving the volume back", [&]() {
      return volumes_.releaseFromVm(vm.tenant, volume, vm.name, /*destroy=*/false);
    });
  }
  return result;
}

}  // namespace qiao

namespace qiao {
namespace {

// libvirt writes attributes in single quotes: <mac address='02:51:a0:..'/>.
bool hasMac(const std::string& domain_xml, const std::string& mac) {
  return domain_xml.find("'" + mac + "'") != std::string::npos ||
         domain_xml.find("\"" + mac + "\"") != std::string::npos;
}

}  // namespace

Result<TaskRecord> VmService::addNic(const VmRecord& vm, NicSpec nic, const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  if (spec->nics.size() >= kMaxNics) {
    return makeError(ErrorCode::kConflict, "vm",
                     "vm " + vmId(vm.tenant, vm.name) + " has " + std::to_string(kMaxNics) +
                         " nics, the most a vm may have");
  }
  VmSpec next = *spec;
  next.nics.push_back(nic);
  if (auto ok = networks_.checkNics(vm.tenant, {nicRequests(next).back()}); !ok) {
    return std::unexpected(ok.error());
  }
  nlohmann::json params = {{"nic", vmSpecToJsonValue(next)["nics"].back()},
                           {"index", spec->nics.size()}};
  return queueTask(
      TaskEngine::newTask(TaskKind::kVmNicAdd, vm.tenant, vm.name, identity, params.dump()),
      std::nullopt);
}

Result<TaskRecord> VmService::removeNic(const VmRecord& vm, const std::string& mac,
                                        const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  auto ports = store_.ports().ofVm(vm.uuid);
  if (!ports) return std::unexpected(ports.error());
  for (const auto& port : *ports) {
    if (port.mac != mac) continue;
    nlohmann::json params = {
        {"mac", mac}, {"port", port.uuid}, {"index", port.nic}, {"nics_before", spec->nics.size()}};
    return queueTask(
        TaskEngine::newTask(TaskKind::kVmNicRemove, vm.tenant, vm.name, identity, params.dump()),
        std::nullopt);
  }
  return makeError(ErrorCode::kNotFound, "vm",
                   "vm " + vmId(vm.tenant, vm.name) + " has no nic with mac " + mac);
}

Result<PortRecord> VmService::portOfNic(const VmRecord& vm, size_t index) {
  auto ports = store_.ports().ofVm(vm.uuid);
  if (!ports) return std::unexpected(ports.error());
  for (const auto& port : *ports) {
    if (port.nic == static_cast<int64_t>(index)) return port;
  }
  return makeError(ErrorCode::kNotFound, "vm", "no port for nic " + std::to_string(index));
}

Status VmService::attachNicLive(const VmRecord& vm, size_t index) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  auto nics = networks_.nicsOf(vm.uuid);
  if (!nics) return std::unexpected(nics.error());
  if (index >= nics->size()) {
    return makeError(ErrorCode::kInternal, "vm", "nic " + std::to_string(index) + " has no port");
  }
  auto live = hypervisor_.domainXml(domain);
  if (!live) return std::unexpected(live.error());
  if (hasMac(*live, (*nics)[index].mac)) return {};  // done before a restart of qiaod
  return hypervisor_.attachDevice(domain, renderNicXml((*nics)[index]));
}

Status VmService::detachNicLive(const VmRecord& vm, const NicDef& nic) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  auto live = hypervisor_.domainXml(domain);
  if (!live) return std::unexpected(live.error());
  if (!hasMac(*live, nic.mac)) return {};
  if (auto asked = hypervisor_.detachDevice(domain, renderNicXml(nic)); !asked) return asked;
  // The guest lets the device go (PCIe hot-unplug); libvirt's live XML says when.
  const auto deadline = std::chrono::steady_clock::now() + disk_release_timeout_;
  while (std::chrono::steady_clock::now() < deadline) {
    live = hypervisor_.domainXml(domain);
    if (!live) return std::unexpected(live.error());
    if (!hasMac(*live, nic.mac)) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return makeError(ErrorCode::kTimeout, "vm",
                   "the guest did not release nic " + nic.mac + " within " +
                       std::to_string(disk_release_timeout_.count() / 1000) +
                       " s (is its OS up, and does it handle PCIe hot-unplug?); the nic stays: "
                       "try again, or stop the vm and remove it then");
}

Status VmService::runAddNic(TaskEngine::Run& run, const VmRecord& vm,
                            const nlohmann::json& params) {
  auto parsed = parseNicSpec(params.value("nic", nlohmann::json::object()).dump());
  if (!parsed) return std::unexpected(parsed.error());
  const NicSpec nic = *parsed;
  const size_t index = params.value("index", size_t{0});
  // The spec with the NIC at `index` (the task's steps may run again after a restart).
  auto withNic = [&]() -> Result<VmSpec> {
    auto spec = storedSpec(vm);
    if (!spec) return spec;
    if (spec->nics.size() == index) spec->nics.push_back(nic);
    return spec;
  };
  auto live = [&]() -> Result<bool> { return guests_.isLive(vm); };
  Status result = run.step(
      "port", 30, "making the port",
      [&]() -> Status {
        auto spec = withNic();
        if (!spec) return std::unexpected(spec.error());
        return networks_.plugVm(vm.tenant, vm.uuid, vm.name, nicRequests(*spec));
      },
      [&]() -> Status {
        auto port = portOfNic(vm, index);
        if (!port)
          return port.error().code == ErrorCode::kNotFound ? Status{}
                                                           : Status(std::unexpected(port.error()));
        return networks_.unplugNic(*port);
      });
  if (result) {
    result = run.step(
        "define", 50, "recording the nic",
        [&]() -> Status {
          auto spec = withNic();
          if (!spec) return std::unexpected(spec.error());
          return redefineWith(vm, *spec);
        },
        [&]() -> Status {
          auto spec = storedSpec(vm);
          if (!spec) return std::unexpected(spec.error());
          if (spec->nics.size() > index) spec->nics.erase(spec->nics.begin() + index);
          return redefineWith(vm, *spec);
        });
  }
  if (result) {
    result = run.step(
        "attach", 90, "plugging the nic into the running guest",
        [&]() -> Status {
          auto is_live = live();
          if (!is_live) return std::unexpected(is_live.error());
          return *is_live ? attachNicLive(vm, index) : Status{};
        },
        [&]() -> Status {
          auto is_live = live();
          if (!is_live || !*is_live)
            return is_live ? Status{} : Status(std::unexpected(is_live.error()));
          auto nics = networks_.nicsOf(vm.uuid);
          if (!nics) return std::unexpected(nics.error());
          return index < nics->size() ? detachNicLive(vm, (*nics)[index]) : Status{};
        });
  }
  if (!result) run.rollback();
  return result;
}

Status VmService::runRemoveNic(TaskEngine::Run& run, const VmRecord& vm,
                               const nlohmann::json& params) {
  const std::string mac = params.value("mac", "");
  const std::string port_uuid = params.value("port", "");
  const size_t index = params.value("index", size_t{0});
  const size_t before = params.value("nics_before", size_t{0});
  Status result =
      run.step("detach", 40, "unplugging the nic from the running guest", [&]() -> Status {
        auto is_live = guests_.isLive(vm);
        if (!is_live) return std::unexpected(is_live.error());
        if (!*is_live) return {};
        auto nics = networks_.nicsOf(vm.uuid);
        if (!nics) return std::unexpected(nics.error());
        for (const auto& nic : *nics) {
          if (nic.mac == mac) return detachNicLive(vm, nic);
        }
        return {};  // its port is gone: unplugged before a restart of qiaod
      });
  if (result) {
    result = run.step("port", 70, "removing the port", [&]() -> Status {
      auto ports = store_.ports().ofVm(vm.uuid);
      if (!ports) return std::unexpected(ports.error());
      for (const auto& port : *ports) {
        if (port.uuid == port_uuid) return networks_.unplugNic(port);
      }
      return {};
    });
  }
  if (result) {
    result = run.step("define", 95, "forgetting the nic", [&]() -> Status {
      auto spec = storedSpec(vm);
      if (!spec) return std::unexpected(spec.error());
      // After the port (the definition's NICs come from the ports). Only once: a step run
      // again after a restart finds the spec one NIC shorter.
      if (spec->nics.size() == before && index < before) {
        spec->nics.erase(spec->nics.begin() + index);
      }
      return redefineWith(vm, *spec);
    });
  }
  return result;
}

}  // namespace qiao

namespace qiao {

Result<TaskRecord> VmService::resize(const VmRecord& vm, int vcpus, int64_t memory_mib,
                                     const std::string& identity) {
  if (auto free = checkNotBusy(vm); !free) return std::unexpected(free.error());
  auto spec = storedSpec(vm);
  if (!spec) return std::unexpected(spec.error());
  if (vcpus > spec->max_vcpus) {
    return makeError(ErrorCode::kInvalidArgument, "vm",
                     "vcpus " + std::to_string(vcpus) + " is above the vm's max_vcpus (" +
                         std::to_string(spec->max_vcpus) + ", fixed when it was created)");
  }
  if (memory_mib > spec->max_memory_mib) {
    return makeError(ErrorCode::kInvalidArgument, "vm",
                     "memory_mib " + std::to_string(memory_mib) +
                         " is above the vm's max_memory_mib (" +
                         std::to_string(spec->max_memory_mib) + ", fixed when it was created)");
  }
  nlohmann::json params = nlohmann::json::object();
  if (vcpus > 0) params["vcpus"] = vcpus;
  if (memory_mib > 0) params["memory_mib"] = memory_mib;
  return queueTask(
      TaskEngine::newTask(TaskKind::kVmResize, vm.tenant, vm.name, identity, params.dump()),
      std::nullopt);
}

Status VmService::runResize(TaskEngine::Run& run, const VmRecord& vm, int vcpus,
                            int64_t memory_mib) {
  const std::string domain = domainNameOf(vm.tenant, vm.name);
  // The running guest first: what it refuses (a vCPU it does not let go) changes nothing.
  Status result = run.step("live", 60, "changing the running guest", [&]() -> Status {
    auto live = guests_.isLive(vm);
    if (!live) return std::unexpected(live.error());
    if (!*live) return {};
    if (vcpus > 0) {
      if (auto set = hypervisor_.setVcpus(domain, vcpus); !set) return set;
    }
    if (memory_mib > 0) {
      if (auto set = hypervisor_.setMemory(domain, static_cast<uint64_t>(memory_mib) * 1024);
          !set) {
        return set;
      }
    }
    return {};
  });
  if (result) {
    result = run.step("define", 95, "recording the new size", [&]() -> Status {
      auto spec = storedSpec(vm);
      if (!spec) return std::unexpected(spec.error());
      if (vcpus > 0) spec->vcpus = vcpus;
      if (memory_mib > 0) spec->memory_mib = memory_mib;
      return redefineWith(vm, *spec);
    });
  }
  return result;
}

}  // namespace qiao
