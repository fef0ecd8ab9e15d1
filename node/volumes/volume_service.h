// VolumeService: the volumes of one node's tenants. The API validates and records a task; the
// task's steps (create, set limits, resize, remove) run on the TaskEngine against the
// VolumeDriver, each idempotent with its undo, so a daemon killed half way finishes or rolls
// back at its next start. A volume in use (attached to a VM, or open by any Ceph client) is
// never removed: the answer is 409 and names the holder.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "node/state/store.h"
#include "node/volumes/live_disks.h"
#include "node/vm/qmp/qmp_channel.h"
#include "node/vm/qmp/qmp_socket.h"
#include "node/tasks/task_engine.h"
#include "node/volumes/block_copy.h"
#include "node/volumes/volume_spec.h"
#include "storage/volume_driver.h"

namespace qiao {

class VolumeService {
 public:
  // `live`: the running VMs' disks (GuestMonitors); `daemons`: where copies of volumes no
  // running VM has open run (the Ceph key for RBD).
  VolumeService(Store& store, VolumeDriver& driver, TaskEngine& tasks, EventBus& events,
                LiveDisks& live = noLiveDisks(), StorageDaemonOptions daemons = {});
  static LiveDisks& noLiveDisks();
  // Closes the storage daemons' QMP connections and joins their I/O thread (after the task
  // workers stopped: a copy's steps use them). Idempotent.
  void stop();

  Result<TaskRecord> create(const VolumeSpec& spec, const std::string& identity);
  Result<TaskRecord> remove(const VolumeRecord& volume, const std::string& identity);
  Result<TaskRecord> resize(const VolumeRecord& volume, int64_t size_gib,
                            const std::string& identity);
  // Replaces the volume's I/O limits. On RBD they are the image's own (librbd), so a VM that
  // has the volume open obeys the new ones within seconds, without a restart; a local file's
  // limits apply at its VM's next start.
  Result<TaskRecord> setLimits(const VolumeRecord& volume, const VolumeQos& qos,
                               const std::string& identity);

  // A new volume `request.name`, a full copy of `source` (its state when the copy began),
  // made by a block job with progress; POST /v1/tasks/{id}/cancel stops it and removes the
  // partial copy, the source untouched. Runs in the QEMU of the running VM that has the source
  // attached (a live copy), else in a qemu-storage-daemon. The task's target is the source:
  // while it runs the source cannot be resized, limited, deleted, attached, and its VM cannot
  // be started, stopped or deleted (checkNotCopying).
  Result<TaskRecord> copy(const VolumeRecord& source, const CopyRequest& request,
                          const std::string& identity);
  // kConflict naming the task when a copy of one of the tenant's volumes `names` is
  // unfinished (one read of the unfinished tasks for all of them).
  Status checkNotCopying(const std::string& tenant, const std::vector<std::string>& names);

  // The disks of a VM, made or taken by its tasks' steps (idempotent: a step run again after
  // a crash finds its own work done).
  // Takes an available volume of the VM's tenant for the VM (kConflict naming the VM that
  // has it; kNotFound when the tenant has no such volume).
  Result<VolumeRecord> claimForVm(const std::string& tenant, const std::string& name,
                                  const std::string& vm);
  // A new volume for the VM, a copy-on-write clone of `image_ref`'s golden snapshot, grown to
  // size_bytes.
  Result<VolumeRecord> cloneForVm(const std::string& tenant, const std::string& name,
                                  const VolumeId& image, const std::string& image_ref,
                                  int64_t size_bytes, const std::string& vm);
  // Gives the volume back (available), or with destroy removes it (data and record), waiting
  // out a watch a killed client left (its vm's domain is gone when this runs).
  Status releaseFromVm(const std::string& tenant, const std::string& name, const std::string& vm,
                       bool destroy);
  DiskSource diskSource(const VolumeRecord& volume) const { return driver_.diskSource(idOf(volume)); }

  // Removes a volume whose last client is gone: a QEMU (or storage daemon) that had to be
  // killed leaves its watch on an RBD image until the OSD times it out (30 s by default), so
  // a kConflict is waited out, up to 45 s.
  Status removeReleased(const VolumeId& id);

  VolumeDriver& driver() { return driver_; }
  // Where a volume lives in the backend: the tenant's namespace, "vol-<name>".
  static VolumeId idOf(const VolumeRecord& volume) {
    return {volume.tenant, volume.object, volume.pool};
  }
  // Task targets of volumes: "volume/<name>" (never a VM's name, which has no '/').
  static std::string taskTarget(const std::string& name) { return "volume/" + name; }

 private:
  // A record of a volume being made: a fresh uuid, this backend, "creating", in `pool` (""
  // for the node's own).
  VolumeRecord newVolume(const std::string& tenant, const std::string& name, int64_t size_bytes,
                         const std::string& pool) const;
  // kConflict unless the volume is available or in use (not being made, removed, in error).
  static Status checkSettled(const VolumeRecord& volume);
  Status runTask(TaskEngine::Run& run);
  void giveUp(TaskEngine::Run& run);
  Status runCreate(TaskEngine::Run& run, VolumeRecord volume);
  Status runRemove(TaskEngine::Run& run, VolumeRecord volume);
  Status runResize(TaskEngine::Run& run, VolumeRecord volume, int64_t size_bytes);
  Status runLimits(TaskEngine::Run& run, VolumeRecord volume, const VolumeQos& qos);
  Status runCopy(TaskEngine::Run& run, const VolumeRecord& source);
  // Stops the copy's job wherever it runs (its VM's QEMU, its storage daemon); idempotent.
  void stopCopyJob(const TaskRecord& task, const VolumeRecord& source);
  // Removes a failed or abandoned copy's target and forgets it (after stopCopyJob: the job
  // may hold it open); a finished copy's target stays.
  void removeCopyTarget(const TaskRecord& task, const VolumeRecord& source);
  // kConflict naming the VM, or the clients, that hold the volume.
  Status checkNotInUse(const VolumeRecord& volume);
  void setState(VolumeRecord& volume, VolumeState state, const std::string& error = {});
  // Changes one thing of the volume's current record (not of a copy read earlier).
  Status updateFresh(const VolumeRecord& volume, const std::function<void(VolumeRecord&)>& change);
  void publish(const VolumeRecord& volume, std::string_view reason);
  Result<VolumeRecord> volumeOfTask(const TaskRecord& task);

  Store& store_;
  VolumeDriver& driver_;
  TaskEngine& tasks_;
  EventBus& events_;
  LiveDisks& live_;
  StorageDaemonOptions daemons_;
  QmpRuntime qmp_runtime_;  // the storage daemons' QMP connections
};

}  // namespace qiao
