// VolumeService: the volumes of one node's tenants. The API validates and records a task; the
// task's steps (create, set limits, resize, remove) run on the TaskEngine against the
// VolumeDriver, each idempotent with its undo, so a daemon killed half way finishes or rolls
// back at its next start. A volume in use (attached to a VM, or open by any Ceph client) is
// never removed: the answer is 409 and names the holder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/event_bus.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "storage/volume_driver.h"

namespace qiao {

struct VolumeSpec {
  std::string name;
  std::string tenant;  // may be absent: the API fills it in
  int64_t size_gib = 0;
  VolumeQos qos;
};

struct VolumeLimits {
  int64_t max_size_gib = 16384;
  std::string pool;  // the one pool a spec may name ("" with the local driver)
};

// Strict: unknown fields, wrong types, names that are not DNS labels, sizes and limits out of
// range are refused with a message naming the field. Never throws.
Result<VolumeSpec> parseVolumeSpec(std::string_view json_text, const VolumeLimits& limits);
// {"size_gib": N} of a resize.
Result<int64_t> parseResize(std::string_view json_text, const VolumeLimits& limits);
// The body of PUT /v1/volumes/{name}/limits: every limit (absent or 0: none).
Result<VolumeQos> parseQosBody(std::string_view json_text);

class VolumeService {
 public:
  VolumeService(Store& store, VolumeDriver& driver, TaskEngine& tasks, EventBus& events);

  Result<TaskRecord> create(const VolumeSpec& spec, const std::string& identity);
  Result<TaskRecord> remove(const VolumeRecord& volume, const std::string& identity);
  Result<TaskRecord> resize(const VolumeRecord& volume, int64_t size_gib,
                            const std::string& identity);
  // Replaces the volume's I/O limits. On RBD they are the image's own (librbd), so a VM that
  // has the volume open obeys the new ones within seconds, without a restart; a local file's
  // limits apply at its VM's next start.
  Result<TaskRecord> setLimits(const VolumeRecord& volume, const VolumeQos& qos,
                               const std::string& identity);

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
  // Gives the volume back (available), or with destroy removes it (data and record).
  Status releaseFromVm(const std::string& tenant, const std::string& name, const std::string& vm,
                       bool destroy);
  DiskSource diskSource(const VolumeRecord& volume) const { return driver_.diskSource(idOf(volume)); }

  // Called after a resize of a volume attached to a VM, so that a running guest sees the new
  // size at once (set by the VM service).
  using LiveResize = std::function<Status(const VolumeRecord& volume, int64_t size_bytes)>;
  void setLiveResize(LiveResize hook) { live_resize_ = std::move(hook); }

  VolumeDriver& driver() { return driver_; }
  // Where a volume lives in the backend: the tenant's namespace, "vol-<name>".
  static VolumeId idOf(const VolumeRecord& volume) { return {volume.tenant, volume.object}; }
  // Task targets of volumes: "volume/<name>" (never a VM's name, which has no '/').
  static std::string taskTarget(const std::string& name) { return "volume/" + name; }

 private:
  Status runTask(TaskEngine::Run& run);
  void giveUp(TaskEngine::Run& run);
  Status runCreate(TaskEngine::Run& run, VolumeRecord volume);
  Status runRemove(TaskEngine::Run& run, VolumeRecord volume);
  Status runResize(TaskEngine::Run& run, VolumeRecord volume, int64_t size_bytes);
  Status runLimits(TaskEngine::Run& run, VolumeRecord volume, const VolumeQos& qos);
  // kConflict naming the VM, or the clients, that hold the volume.
  Status checkNotInUse(const VolumeRecord& volume);
  void setState(VolumeRecord& volume, const std::string& state, const std::string& error = {});
  // Changes one thing of the volume's current record (not of a copy read earlier).
  Status updateFresh(const VolumeRecord& volume, const std::function<void(VolumeRecord&)>& change);
  void publish(const VolumeRecord& volume, std::string_view reason);
  Result<VolumeRecord> volumeOfTask(const TaskRecord& task);

  Store& store_;
  VolumeDriver& driver_;
  TaskEngine& tasks_;
  EventBus& events_;
  LiveResize live_resize_;
};

}  // namespace qiao
