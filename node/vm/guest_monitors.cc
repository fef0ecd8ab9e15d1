#include "node/vm/guest_monitors.h"

#include "node/state/record_json.h"
#include "node/vm/domain.h"

namespace qiao {

GuestMonitors::GuestMonitors(Store& store, Hypervisor& hypervisor, Factory factory)
    : store_(store), hypervisor_(hypervisor), factory_(std::move(factory)) {}

Result<std::shared_ptr<QmpChannel>> GuestMonitors::monitorOf(const VmRecord& vm) {
  if (!factory_) {
    return makeError(ErrorCode::kUnavailable, "vm", "this node has no QMP monitor access");
  }
  std::lock_guard lock(mutex_);
  if (stopped_) return makeError(ErrorCode::kUnavailable, "vm", "qiaod is stopping");
  auto& kept = kept_[vm.uuid];
  if (!kept) {
    auto made = factory_(domainNameOf(vm.tenant, vm.name));
    if (!made) {
      kept_.erase(vm.uuid);
      return made;
    }
    kept = *made;
  }
  return kept;
}

void GuestMonitors::forget(const std::string& vm_uuid) {
  std::lock_guard lock(mutex_);
  kept_.erase(vm_uuid);
}

void GuestMonitors::stop() {
  std::map<std::string, std::shared_ptr<QmpChannel>> kept;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    kept.swap(kept_);
  }
  // Released outside the lock: a channel's destructor may wait for its own workers.
}

Result<bool> GuestMonitors::isLive(const VmRecord& vm) {
  auto info = hypervisor_.lookup(domainNameOf(vm.tenant, vm.name));
  if (!info) {
    if (info.error().code == ErrorCode::kNotFound) return false;
    return std::unexpected(info.error());
  }
  return domainLive(info->state);
}

Status GuestMonitors::growLive(const VolumeRecord& volume, int64_t size_bytes) {
  auto vm = store_.vms().get(volume.tenant, volume.attached_vm);
  if (!vm) {
    return vm.error().code == ErrorCode::kNotFound ? Status{} : Status(std::unexpected(vm.error()));
  }
  auto live = isLive(*vm);
  if (!live) return std::unexpected(live.error());
  if (!*live || volume.backend != "rbd") return {};  // seen at the next start
  auto qmp = monitorOf(*vm);
  if (!qmp) return std::unexpected(qmp.error());
  // QEMU resizes the image (already this size: nothing to do in Ceph) and tells the guest.
  auto resized = (*qmp)->execute("block_resize",
                                 {{"node-name", qemuDiskId(volume.uuid)}, {"size", size_bytes}});
  if (!resized) return std::unexpected(resized.error());
  return {};
}

Result<LiveDisk> GuestMonitors::liveDiskOf(const VolumeRecord& volume) {
  if (volume.attached_vm.empty()) return LiveDisk{};
  auto vm = store_.vms().get(volume.tenant, volume.attached_vm);
  if (!vm) {
    if (vm.error().code == ErrorCode::kNotFound) return LiveDisk{};
    return std::unexpected(vm.error());
  }
  auto live = isLive(*vm);
  if (!live) return std::unexpected(live.error());
  if (!*live) return LiveDisk{};
  if (volume.backend != "rbd") {
    return makeError(ErrorCode::kConflict, "vm",
                     "volume " + volume.tenant + "/" + volume.name +
                         " is a local file of running vm " + volume.attached_vm +
                         ": live copies need volumes on Ceph; stop the vm to copy it");
  }
  auto qmp = monitorOf(*vm);
  if (!qmp) return std::unexpected(qmp.error());
  return LiveDisk{*qmp, qemuDiskId(volume.uuid)};
}

}  // namespace qiao
