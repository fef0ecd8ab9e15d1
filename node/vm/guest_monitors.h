// GuestMonitors: the QMP monitors of running guests, one kept per VM, for what libvirt has no
// API for (Qiao's RBD disks, block jobs, the balloon's figures); and, on them, LiveDisks for
// the volume service. Built before the VM and volume services, which both use it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "node/vm/qmp/qmp_channel.h"
#include "node/state/store.h"
#include "node/vm/hypervisor.h"
#include "node/volumes/live_disks.h"

namespace qiao {

class GuestMonitors final : public LiveDisks {
 public:
  // Opens the monitor of a libvirt domain (libvirt's passthrough). Null: this node has no
  // monitor access, and what needs one answers kUnavailable.
  using Factory = std::function<Result<std::shared_ptr<QmpChannel>>(const std::string& domain)>;
  GuestMonitors(Store& store, Hypervisor& hypervisor, Factory factory);

  // The VM's monitor, opened on first use and kept: a channel reconnects by itself when
  // libvirtd comes back, and opening one cost more than the commands a hot-plug sends. The
  // daemon's factory makes every channel on one LibvirtQmpConnection (one libvirt connection
  // and a few workers for all VMs), so keeping one per VM costs no thread.
  Result<std::shared_ptr<QmpChannel>> monitorOf(const VmRecord& vm);
  // Forgets a deleted VM's monitor.
  void forget(const std::string& vm_uuid);
  // Forgets every monitor; monitorOf answers kUnavailable from now on. The monitors' shared
  // connection and workers belong to whoever made the factory, and are stopped after this.
  void stop();
  // Whether the VM's domain runs now (false when it has none).
  Result<bool> isLive(const VmRecord& vm);

  Status growLive(const VolumeRecord& volume, int64_t size_bytes) override;
  Result<LiveDisk> liveDiskOf(const VolumeRecord& volume) override;

 private:
  Store& store_;
  Hypervisor& hypervisor_;
  Factory factory_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<QmpChannel>> kept_;  // by VM uuid
  bool stopped_ = false;
};

}  // namespace qiao
