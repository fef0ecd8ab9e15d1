#include "node/volumes/volume_service.h"

#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/crypto.h"
#include "base/json_input.h"
#include "base/log.h"
#include "base/names.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

const Logger kLog("volume");
constexpr int64_t kGiB = int64_t{1} << 30;

std::string volumeId(const VolumeRecord& v) { return v.tenant + "/" + v.name; }

}  // namespace

LiveDisks& VolumeService::noLiveDisks() {
  static NoLiveDisks none;
  return none;
}

void VolumeService::stop() { qmp_runtime_.stop(); }

VolumeService::VolumeService(Store& store, VolumeDriver& driver, TaskEngine& tasks,
                             EventBus& events, LiveDisks& live, StorageDaemonOptions daemons)
    : store_(store),
      driver_(driver),
      tasks_(tasks),
      events_(events),
      live_(live),
      daemons_(std::move(daemons)) {
  TaskEngine::Kind kind;
  kind.run = [this](TaskEngine::Run& run) { return runTask(run); };
  kind.give_up = [this](TaskEngine::Run& run) { giveUp(run); };
  kind.cancellable = {TaskKind::kVolumeCopy};
  tasks_.addFamily(TaskFamily::kVolume, std::move(kind));
}

VolumeRecord VolumeService::newVolume(const std::string& tenant, const std::string& name,
                                      int64_t size_bytes, const std::string& pool) const {
  VolumeRecord volume;
  volume.tenant = tenant;
  volume.name = name;
  volume.uuid = newUuid();
  volume.backend = std::string(driver_.backend());
  volume.object = "vol-" + name;
  volume.size_bytes = size_bytes;
  volume.state = VolumeState::kCreating;
  volume.pool = pool.empty() ? driver_.defaultPool() : pool;
  return volume;
}

Status VolumeService::checkSettled(const VolumeRecord& volume) {
  if (volume.state == VolumeState::kAvailable || volume.state == VolumeState::kInUse) return {};
  return makeError(
      ErrorCode::kConflict, "volume",
      "volume " + volumeId(volume) + " is " + toString(volume.state) + "; try again later");
}

Result<TaskRecord> VolumeService::create(const VolumeSpec& spec, const std::string& identity) {
  VolumeRecord volume = newVolume(spec.tenant, spec.name, spec.size_gib * kGiB, spec.pool);
  volume.qos = spec.qos;
  TaskRecord task = TaskEngine::newTask(TaskKind::kVolumeCreate, volume.tenant,
                                        taskTarget(volume.name), identity, "{}");
  if (auto created = store_.volumes().create(volume, &task); !created) {
    return std::unexpected(created.error());
  }
  publish(volume, "created");
  return tasks_.dispatch(task.id);
}

Result<VolumeRecord> VolumeService::claimForVm(const std::string& tenant, const std::string& name,
                                               const std::string& vm) {
  auto volume = store_.volumes().get(tenant, name);
  if (!volume) {
    if (volume.error().code == ErrorCode::kNotFound) {
      return makeError(ErrorCode::kNotFound, "volume",
                       "tenant " + tenant + " has no volume named " + name);
    }
    return volume;
  }
  if (volume->attached_vm == vm) return volume;
  if (auto idle = checkNotCopying(tenant, {name}); !idle) return std::unexpected(idle.error());
  auto busy = [&](const VolumeRecord& v) -> Result<VolumeRecord> {
    if (!v.attached_vm.empty()) {
      return makeError(ErrorCode::kConflict, "volume",
                       "volume " + volumeId(v) + " is attached to vm " + v.attached_vm,
                       dumpJson({{"vm", v.attached_vm}}));
    }
    return makeError(ErrorCode::kConflict, "volume",
                     "volume " + volumeId(v) + " is " + toString(v.state));
  };
  // Taken atomically: a concurrent delete or another VM's create cannot take it too.
  if (!store_.volumes().transition(tenant, name, {VolumeState::kAvailable}, "", VolumeState::kInUse,
                                   vm)) {
    auto fresh = store_.volumes().get(tenant, name);
    return busy(fresh ? *fresh : *volume);
  }
  volume->attached_vm = vm;
  volume->state = VolumeState::kInUse;
  publish(*volume, toString(volume->state));
  return volume;
}

Result<VolumeRecord> VolumeService::cloneForVm(const std::string& tenant, const std::string& name,
                                               const VolumeId& image, const std::string& image_ref,
                                               int64_t size_bytes, const std::string& vm) {
  auto existing = store_.volumes().get(tenant, name);
  VolumeRecord volume;
  if (existing) {
    if (existing->attached_vm != vm || existing->image != image_ref) {
      return makeError(ErrorCode::kConflict, "volume",
                       "volume " + volumeId(*existing) + " already exists and is not this vm's");
    }
    volume = *existing;
  } else if (existing.error().code != ErrorCode::kNotFound) {
    return existing;
  } else {
    volume = newVolume(tenant, name, size_bytes, "");
    volume.attached_vm = vm;
    volume.image = image_ref;
    // Recorded first, so that a crash before the clone leaves a row that the undo (or a
    // retry) finds, never an RBD image nobody knows.
    if (auto created = store_.volumes().create(volume, nullptr); !created) {
      return std::unexpected(created.error());
    }
  }
  const VolumeId id = idOf(volume);
  if (auto cloned = driver_.clone(image, "golden", id); !cloned)
    return std::unexpected(cloned.error());
  if (auto grown = driver_.resize(id, size_bytes); !grown) return std::unexpected(grown.error());
  volume.size_bytes = size_bytes;
  setState(volume, VolumeState::kInUse);
  return volume;
}

Status VolumeService::releaseFromVm(const std::string& tenant, const std::string& name,
                                    const std::string& vm, bool destroy) {
  auto volume = store_.volumes().get(tenant, name);
  if (!volume) {
    if (volume.error().code == ErrorCode::kNotFound) return {};
    return std::unexpected(volume.error());
  }
  if (volume->attached_vm != vm) return {};  // not (or no longer) this vm's
  if (destroy) {
    // Its vm has no domain any more: a watch left on it is a killed client's.
    if (auto removed = removeReleased(idOf(*volume)); !removed) return removed;
    if (auto deleted = store_.volumes().remove(tenant, name); !deleted) return deleted;
    publish(*volume, "deleted");
    return {};
  }
  if (auto released =
          store_.volumes().transition(tenant, name, {VolumeState::kInUse, VolumeState::kError}, vm,
                                      VolumeState::kAvailable, "");
      !released) {
    return released;
  }
  volume->attached_vm.clear();
  volume->state = VolumeState::kAvailable;
  publish(*volume, toString(volume->state));
  return {};
}

Status VolumeService::checkNotInUse(const VolumeRecord& volume) {
  if (!volume.attached_vm.empty()) {
    return makeError(ErrorCode::kConflict, "volume",
                     "volume " + volumeId(volume) + " is attached to vm " + volume.attached_vm +
                         "; detach it or delete the vm first",
                     dumpJson({{"vm", volume.attached_vm}}));
  }
  auto holders = driver_.watchers(idOf(volume));
  if (!holders) {
    if (holders.error().code == ErrorCode::kNotFound) return {};
    return std::unexpected(holders.error());
  }
  if (!holders->empty()) {
    std::string list;
    for (const auto& h : *holders) list += (list.empty() ? "" : ", ") + h;
    return makeError(ErrorCode::kConflict, "volume",
                     "volume " + volumeId(volume) + " is open by " + list + "; close it first",
                     dumpJson({{"clients", *holders}}));
  }
  return {};
}

Result<TaskRecord> VolumeService::remove(const VolumeRecord& volume, const std::string& identity) {
  if (volume.state == VolumeState::kCreating || volume.state == VolumeState::kDeleting) {
    return makeError(
        ErrorCode::kConflict, "volume",
        "volume " + volumeId(volume) + " is " + toString(volume.state) + "; try again later");
  }
  if (auto free = checkNotInUse(volume); !free) return std::unexpected(free.error());
  return tasks_.submit(TaskEngine::newTask(TaskKind::kVolumeDelete, volume.tenant,
                                           taskTarget(volume.name), identity, "{}"));
}

Result<TaskRecord> VolumeService::resize(const VolumeRecord& volume, int64_t size_gib,
                                         const std::string& identity) {
  if (auto settled = checkSettled(volume); !settled) return std::unexpected(settled.error());
  if (size_gib * kGiB < volume.size_bytes) {
    return makeError(ErrorCode::kInvalidArgument, "volume",
                     "volume " + volumeId(volume) + " has " +
                         std::to_string(volume.size_bytes / kGiB) + " GiB; volumes only grow");
  }
  return tasks_.submit(TaskEngine::newTask(TaskKind::kVolumeResize, volume.tenant,
                                           taskTarget(volume.name), identity,
                                           dumpJson({{"size_bytes", size_gib * kGiB}})));
}

Result<TaskRecord> VolumeService::setLimits(const VolumeRecord& volume, const VolumeQos& qos,
                                            const std::string& identity) {
  if (auto settled = checkSettled(volume); !settled) return std::unexpected(settled.error());
  return tasks_.submit(TaskEngine::newTask(TaskKind::kVolumeLimits, volume.tenant,
                                           taskTarget(volume.name), identity,
                                           dumpJson({{"qos", qosToJson(qos)}})));
}

Result<TaskRecord> VolumeService::copy(const VolumeRecord& source, const CopyRequest& request,
                                       const std::string& identity) {
  if (auto settled = checkSettled(source); !settled) return std::unexpected(settled.error());
  const VolumeRecord target =
      newVolume(source.tenant, request.name, source.size_bytes, request.pool);
  TaskRecord task = TaskEngine::newTask(
      TaskKind::kVolumeCopy, source.tenant, taskTarget(source.name), identity,
      dumpJson({{"name", request.name},
                {"speed_bytes_per_sec", request.bandwidth_mib_s * (int64_t{1} << 20)}}));
  // One transaction: the new name is taken and the copy recorded, or neither (a source with
  // another task unfinished answers kConflict).
  if (auto created = store_.volumes().create(target, &task); !created) {
    return std::unexpected(created.error());
  }
  publish(target, "created");
  return tasks_.dispatch(task.id);
}

Status VolumeService::checkNotCopying(const std::string& tenant,
                                      const std::vector<std::string>& names) {
  if (names.empty()) return {};
  auto unfinished = store_.tasks().unfinished();
  if (!unfinished) return std::unexpected(unfinished.error());
  for (const auto& task : *unfinished) {
    if (task.kind != TaskKind::kVolumeCopy || task.tenant != tenant) continue;
    for (const auto& name : names) {
      if (task.target != taskTarget(name)) continue;
      return makeError(ErrorCode::kConflict, "volume",
                       "volume " + tenant + "/" + name + " is being copied by task " + task.id +
                           "; wait for it, or cancel it (qiaoctl task cancel " + task.id + ")",
                       dumpJson({{"task", task.id}}));
    }
  }
  return {};
}

Result<VolumeRecord> VolumeService::volumeOfTask(const TaskRecord& task) {
  auto name = TaskEngine::objectOf(task, "volume/");
  if (!name) return std::unexpected(name.error());
  return store_.volumes().get(task.tenant, *name);
}

Status VolumeService::runTask(TaskEngine::Run& run) {
  const TaskRecord& task = run.task();
  auto volume = volumeOfTask(task);
  if (!volume) return std::unexpected(volume.error());
  switch (task.kind) {
    case TaskKind::kVolumeCreate: return runCreate(run, *volume);
    case TaskKind::kVolumeDelete: return runRemove(run, *volume);
    case TaskKind::kVolumeResize:
      return runResize(run, *volume, TaskEngine::params(task).value("size_bytes", int64_t{0}));
    case TaskKind::kVolumeLimits: {
      auto qos = parseQos(TaskEngine::params(task).value("qos", nlohmann::json::object()), "qos");
      if (!qos) return std::unexpected(qos.error());
      return runLimits(run, *volume, *qos);
    }
    case TaskKind::kVolumeCopy: return runCopy(run, *volume);
    default: break;  // another family's kind: not ours
  }
  return makeError(ErrorCode::kInternal, "volume", "unknown task kind " + toString(task.kind));
}

void VolumeService::giveUp(TaskEngine::Run& run) {
  auto volume = volumeOfTask(run.task());
  if (!volume) return;
  if (run.task().kind == TaskKind::kVolumeCopy) {
    stopCopyJob(run.task(), *volume);
    removeCopyTarget(run.task(), *volume);
    return;
  }
  if (run.task().kind == TaskKind::kVolumeCreate) {
    (void)run.step("rollback", run.task().progress, "rolling back", [&]() -> Status {
      if (auto removed = driver_.remove(idOf(*volume)); !removed) return removed;
      return store_.volumes().remove(volume->tenant, volume->name);
    });
    return;
  }
  setState(*volume, VolumeState::kError, "gave up after restarts of qiaod");
}

Status VolumeService::runCreate(TaskEngine::Run& run, VolumeRecord volume) {
  const VolumeId id = idOf(volume);
  Status result = run.step(
      "create", 60, "creating the volume", [&]() { return driver_.create(id, volume.size_bytes); },
      [&]() { return driver_.remove(id); });
  if (result) {
    result = run.step("limits", 80, "setting I/O limits",
                      [&]() { return driver_.setQos(id, volume.qos); });
  }
  if (result) {
    result = run.step("record", 100, "recording the volume", [&]() -> Status {
      setState(volume, VolumeState::kAvailable);
      return {};
    });
  }
  if (!result) {
    run.rollback();
    if (auto forgot = store_.volumes().remove(volume.tenant, volume.name); forgot) {
      publish(volume, "create failed");
    }
  }
  return result;
}

Status VolumeService::runRemove(TaskEngine::Run& run, VolumeRecord volume) {
  const VolumeId id = idOf(volume);
  Status result = run.step("remove", 80, "removing the volume", [&]() -> Status {
    // Marked atomically (a VM may have taken it since the API answered; then it stays). A
    // step run again after a crash finds it deleting already.
    if (volume.state != VolumeState::kDeleting) {
      if (!store_.volumes().transition(volume.tenant, volume.name,
                                       {VolumeState::kAvailable, VolumeState::kError}, "",
                                       VolumeState::kDeleting, "")) {
        auto fresh = store_.volumes().get(volume.tenant, volume.name);
        if (fresh && !fresh->attached_vm.empty()) return checkNotInUse(*fresh);
        return makeError(ErrorCode::kConflict, "volume",
                         "volume " + volumeId(volume) + " is " +
                             (fresh ? toString(fresh->state) : std::string("gone")));
      }
      volume.state = VolumeState::kDeleting;
      publish(volume, toString(volume.state));
    }
    return driver_.remove(id);
  });
  if (result) {
    result = run.step("forget", 100, "forgetting the volume", [&]() -> Status {
      if (auto deleted = store_.volumes().remove(volume.tenant, volume.name); !deleted)
        return deleted;
      publish(volume, "deleted");
      return {};
    });
  }
  if (!result && volume.state == VolumeState::kDeleting) {
    // Refused before anything was removed (a client holds it): available again. Otherwise
    // the data may be partly gone: left in error, deletable again.
    const bool untouched = result.error().code == ErrorCode::kConflict;
    setState(volume, untouched ? VolumeState::kAvailable : VolumeState::kError,
             result.error().describe());
  }
  return result;
}

Status VolumeService::runResize(TaskEngine::Run& run, VolumeRecord volume, int64_t size_bytes) {
  const VolumeId id = idOf(volume);
  Status result = run.step("resize", 70, "growing the volume",
                           [&]() { return driver_.resize(id, size_bytes); });
  if (result && !volume.attached_vm.empty()) {
    result = run.step("guest", 85, "showing the new size to the running guest",
                      [&]() { return live_.growLive(volume, size_bytes); });
  }
  if (result) {
    result = run.step("record", 100, "recording the size", [&]() -> Status {
      return updateFresh(volume, [&](VolumeRecord& v) { v.size_bytes = size_bytes; });
    });
  }
  return result;
}

Status VolumeService::runLimits(TaskEngine::Run& run, VolumeRecord volume, const VolumeQos& qos) {
  Status result = run.step("limits", 70, "setting I/O limits",
                           [&]() { return driver_.setQos(idOf(volume), qos); });
  if (result) {
    result = run.step("record", 100, "recording the limits", [&]() -> Status {
      return updateFresh(volume, [&](VolumeRecord& v) { v.qos = qos; });
    });
  }
  return result;
}

namespace {

// The names a copy gives its job and nodes, the same across restarts of its task.
struct CopyNames {
  std::string job, source_node, target_node;
};
CopyNames copyNames(const TaskRecord& task) {
  std::string tag;
  for (char c : task.id) {
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0 && tag.size() < 12) tag += c;
  }
  return {"qiao-copy-" + tag, "qcs-" + tag, "qct-" + tag};
}

}  // namespace

Status VolumeService::runCopy(TaskEngine::Run& run, const VolumeRecord& source) {
  const nlohmann::json params = TaskEngine::params(run.task());
  auto target = store_.volumes().get(source.tenant, params.value("name", ""));
  if (!target) return std::unexpected(target.error());
  const VolumeId target_id = idOf(*target);
  const CopyNames names = copyNames(run.task());
  BlockCopyPlan plan;
  plan.job_id = names.job;
  plan.target = {names.target_node, driver_.diskSource(target_id), false};
  plan.speed_bytes_per_sec = params.value("speed_bytes_per_sec", int64_t{0});

  Status result = run.step(
      "create", 5, "creating the copy " + target->name,
      [&]() { return driver_.create(target_id, source.size_bytes); },
      [&]() { return removeReleased(target_id); });
  if (result) {
    result = run.step("copy", 95, "copying", [&]() -> Status {
      if (run.cancelled()) return std::unexpected(TaskEngine::Run::cancelledError());
      auto found = live_.liveDiskOf(source);
      if (!found) return std::unexpected(found.error());
      const LiveDisk live = *found;
      std::shared_ptr<QmpChannel> qmp = live.qmp;
      if (qmp) {
        plan.source_node = live.node;
        plan.add_source.reset();
      } else {
        plan.source_node = names.source_node;
        plan.add_source = BlockNode{names.source_node, driver_.diskSource(idOf(source)), true};
        auto daemon = openStorageDaemon(qmp_runtime_, daemons_, names.job);
        if (!daemon) return std::unexpected(daemon.error());
        qmp = *daemon;
      }
      int last_percent = -1;
      auto last_report = std::chrono::steady_clock::now();
      BlockCopyHooks hooks;
      hooks.cancelled = [&] { return run.cancelled(); };
      hooks.progress = [&](const BlockCopyProgress& p) {
        if (p.total_bytes <= 0) return;
        const int percent = 5 + static_cast<int>(90 * p.done_bytes / p.total_bytes);
        const auto now = std::chrono::steady_clock::now();
        if (percent == last_percent && now - last_report < std::chrono::seconds(2)) return;
        last_percent = percent;
        last_report = now;
        run.progress(percent, "copying " + (live.qmp ? std::string("live") : "offline") + ": " +
                                  std::to_string(p.done_bytes >> 20) + " of " +
                                  std::to_string(p.total_bytes >> 20) + " MiB");
      };
      Status copied = runBlockCopy(*qmp, plan, hooks);
      Status cleaned = cleanupBlockCopy(*qmp, plan);
      if (!live.qmp) (void)stopStorageDaemon(qmp_runtime_, daemons_, names.job, qmp.get());
      if (!copied) return copied;
      return cleaned;
    });
  }
  if (result) {
    result = run.step("record", 100, "recording the copy", [&]() -> Status {
      return updateFresh(*target, [](VolumeRecord& v) { v.state = VolumeState::kAvailable; });
    });
  }
  if (!result) {
    stopCopyJob(run.task(), source);  // first: its QEMU may still hold the target open
    run.rollback();
    removeCopyTarget(run.task(), source);
  }
  return result;
}

Status VolumeService::removeReleased(const VolumeId& id) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  for (;;) {
    Status removed = driver_.remove(id);
    if (removed || removed.error().code != ErrorCode::kConflict ||
        std::chrono::steady_clock::now() > deadline) {
      return removed;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

void VolumeService::stopCopyJob(const TaskRecord& task, const VolumeRecord& source) {
  const CopyNames names = copyNames(task);
  BlockCopyPlan plan;
  plan.job_id = names.job;
  plan.target.name = names.target_node;
  if (auto live = live_.liveDiskOf(source); live && live->qmp) {
    if (auto cleaned = cleanupBlockCopy(*live->qmp, plan); !cleaned) {
      kLog.warn("cannot stop a copy's job in its vm",
                {{"task", task.id}, {"error", cleaned.error().describe()}});
    }
  }
  (void)stopStorageDaemon(qmp_runtime_, daemons_, names.job);
}

void VolumeService::removeCopyTarget(const TaskRecord& task, const VolumeRecord& source) {
  auto target = store_.volumes().get(source.tenant, TaskEngine::params(task).value("name", ""));
  if (!target || target->state != VolumeState::kCreating) return;  // gone, or a finished copy
  if (auto removed = removeReleased(idOf(*target)); !removed) {
    kLog.warn("cannot remove a failed copy",
              {{"volume", volumeId(*target)}, {"error", removed.error().describe()}});
    setState(*target, VolumeState::kError,
             "the copy failed and its data could not be removed: " + removed.error().describe());
    return;
  }
  if (store_.volumes().remove(target->tenant, target->name)) publish(*target, "copy failed");
}

Status VolumeService::updateFresh(const VolumeRecord& volume,
                                  const std::function<void(VolumeRecord&)>& change) {
  // Made to the volume as it is: a VM (on a cluster member, any member's) may have taken or
  // given it back since the task began.
  auto fresh = store_.volumes().modify(volume.tenant, volume.name, change);
  if (!fresh) return std::unexpected(fresh.error());
  publish(*fresh, toString(fresh->state));
  return {};
}

void VolumeService::setState(VolumeRecord& volume, VolumeState state, const std::string& error) {
  // Only the state and its error, on the record as it is (what else changed meanwhile stays).
  auto updated = store_.volumes().modify(volume.tenant, volume.name, [&](VolumeRecord& v) {
    v.state = state;
    v.last_error = error;
  });
  if (!updated) {
    kLog.error("cannot record a volume's state",
               {{"volume", volumeId(volume)}, {"error", updated.error().describe()}});
    return;
  }
  volume = *updated;
  publish(volume, toString(state));
}

void VolumeService::publish(const VolumeRecord& volume, std::string_view reason) {
  nlohmann::json event = volumeToJson(volume);
  event["type"] = "volume";
  event["reason"] = std::string(reason);
  events_.publish({"volume", volume.tenant, dumpJson(event)});
}

}  // namespace qiao
