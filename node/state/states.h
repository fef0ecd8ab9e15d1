// The states of the stored records, the kinds of tasks and the phases of their journal, each an
// enum with exactly one mapping to the text that the database, the API's JSON, the events and
// the failpoint names carry. The names are part of the API (docs/api/openapi.yaml): they never
// change.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/enum_names.h"

namespace qiao {

// A task's life: queued, then running, then one of the three outcomes.
enum class TaskState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
// A volume: being made, free, used by a VM, growing, going, or broken.
enum class VolumeState { kCreating, kAvailable, kInUse, kResizing, kDeleting, kError };
// An image: waiting for its upload, being imported, or ready to clone.
enum class ImageState { kPending, kImporting, kReady };
// A tenant network: being made, in service, going, or broken.
enum class NetworkState { kCreating, kReady, kDeleting, kError };
// A VM: being made; then the state of its libvirt domain (running ... pmsuspended, nostate when
// libvirt cannot tell); going; or broken (a delete that failed past the domain, a domain that
// could not be redefined).
enum class VmState {
  kCreating,
  kRunning,
  kBlocked,
  kPaused,
  kShutdown,
  kShutoff,
  kCrashed,
  kPmSuspended,
  kDeleting,
  kError,
  kNoState,
};

// What a task does. Each belongs to one family (familyOf), whose service runs it.
enum class TaskKind {
  kVmCreate,
  kVmDelete,
  kVmStart,
  kVmStop,
  kVmForceStop,
  kVmReboot,
  kVmPause,
  kVmResume,
  kVmDiskAdd,
  kVmDiskRemove,
  kVmNicAdd,
  kVmNicRemove,
  kVmResize,
  kVolumeCreate,
  kVolumeDelete,
  kVolumeResize,
  kVolumeLimits,
  kVolumeCopy,
  kImageImport,
  kImageDelete,
  kNetworkCreate,
  kNetworkDelete,
  // Read from a row whose kind this qiaod does not know (one written by a newer version): it
  // has no name and no family, so no service runs it and it fails as an unknown kind.
  kUnknown,
};
enum class TaskFamily { kVm, kVolume, kImage, kNetwork };

// A phase of a step in the task journal: begun, done or failed; its undo begun and done (a
// failed undo is "failed" too); and the mark of a cancel request (step "cancel"), which opens
// and closes nothing.
enum class JournalPhase { kBegin, kDone, kFailed, kUndoBegin, kUndone, kCancelRequested };

// The one mapping of each enum (base/enum_names.h): specialised below.

template <>
struct EnumNames<TaskState> {
  static constexpr std::array<std::pair<TaskState, std::string_view>, 5> kNames{{
      {TaskState::kQueued, "queued"},
      {TaskState::kRunning, "running"},
      {TaskState::kSucceeded, "succeeded"},
      {TaskState::kFailed, "failed"},
      {TaskState::kCancelled, "cancelled"},
  }};
};

template <>
struct EnumNames<VolumeState> {
  static constexpr std::array<std::pair<VolumeState, std::string_view>, 6> kNames{{
      {VolumeState::kCreating, "creating"},
      {VolumeState::kAvailable, "available"},
      {VolumeState::kInUse, "in-use"},
      {VolumeState::kResizing, "resizing"},
      {VolumeState::kDeleting, "deleting"},
      {VolumeState::kError, "error"},
  }};
};

template <>
struct EnumNames<ImageState> {
  static constexpr std::array<std::pair<ImageState, std::string_view>, 3> kNames{{
      {ImageState::kPending, "pending"},
      {ImageState::kImporting, "importing"},
      {ImageState::kReady, "ready"},
  }};
};

template <>
struct EnumNames<NetworkState> {
  static constexpr std::array<std::pair<NetworkState, std::string_view>, 4> kNames{{
      {NetworkState::kCreating, "creating"},
      {NetworkState::kReady, "ready"},
      {NetworkState::kDeleting, "deleting"},
      {NetworkState::kError, "error"},
  }};
};

template <>
struct EnumNames<VmState> {
  static constexpr std::array<std::pair<VmState, std::string_view>, 11> kNames{{
      {VmState::kCreating, "creating"},
      {VmState::kRunning, "running"},
      {VmState::kBlocked, "blocked"},
      {VmState::kPaused, "paused"},
      {VmState::kShutdown, "shutdown"},
      {VmState::kShutoff, "shutoff"},
      {VmState::kCrashed, "crashed"},
      {VmState::kPmSuspended, "pmsuspended"},
      {VmState::kDeleting, "deleting"},
      {VmState::kError, "error"},
      {VmState::kNoState, "nostate"},
  }};
  // A stored name that is none of these: a state Qiao cannot tell, which the next
  // reconciliation replaces with libvirt's (never "creating", which would keep the VM busy).
  static constexpr VmState kUnreadable = VmState::kNoState;
};

template <>
struct EnumNames<TaskKind> {
  static constexpr std::array<std::pair<TaskKind, std::string_view>, 22> kNames{{
      {TaskKind::kVmCreate, "vm.create"},
      {TaskKind::kVmDelete, "vm.delete"},
      {TaskKind::kVmStart, "vm.start"},
      {TaskKind::kVmStop, "vm.stop"},
      {TaskKind::kVmForceStop, "vm.force-stop"},
      {TaskKind::kVmReboot, "vm.reboot"},
      {TaskKind::kVmPause, "vm.pause"},
      {TaskKind::kVmResume, "vm.resume"},
      {TaskKind::kVmDiskAdd, "vm.disk-add"},
      {TaskKind::kVmDiskRemove, "vm.disk-remove"},
      {TaskKind::kVmNicAdd, "vm.nic-add"},
      {TaskKind::kVmNicRemove, "vm.nic-remove"},
      {TaskKind::kVmResize, "vm.resize"},
      {TaskKind::kVolumeCreate, "volume.create"},
      {TaskKind::kVolumeDelete, "volume.delete"},
      {TaskKind::kVolumeResize, "volume.resize"},
      {TaskKind::kVolumeLimits, "volume.limits"},
      {TaskKind::kVolumeCopy, "volume.copy"},
      {TaskKind::kImageImport, "image.import"},
      {TaskKind::kImageDelete, "image.delete"},
      {TaskKind::kNetworkCreate, "network.create"},
      {TaskKind::kNetworkDelete, "network.delete"},
  }};
  // A stored kind that is none of these runs nothing (never the first kind's work).
  static constexpr TaskKind kUnreadable = TaskKind::kUnknown;
};

template <>
struct EnumNames<JournalPhase> {
  static constexpr std::array<std::pair<JournalPhase, std::string_view>, 6> kNames{{
      {JournalPhase::kBegin, "begin"},
      {JournalPhase::kDone, "done"},
      {JournalPhase::kFailed, "failed"},
      {JournalPhase::kUndoBegin, "undo-begin"},
      {JournalPhase::kUndone, "undone"},
      {JournalPhase::kCancelRequested, "cancel-requested"},
  }};
  // A stored phase that is none of these leaves no step open (a restart closes none with it);
  // verifyJournal reads the text and names it.
  static constexpr JournalPhase kUnreadable = JournalPhase::kFailed;
};

// The JSON of each enum is its name (nlohmann finds these by argument-dependent lookup), so a
// record or event never shows the number.
template <typename Json>
void to_json(Json& j, const TaskState& e) {
  j = toString(e);
}
template <typename Json>
void to_json(Json& j, const VolumeState& e) {
  j = toString(e);
}
template <typename Json>
void to_json(Json& j, const ImageState& e) {
  j = toString(e);
}
template <typename Json>
void to_json(Json& j, const NetworkState& e) {
  j = toString(e);
}
template <typename Json>
void to_json(Json& j, const VmState& e) {
  j = toString(e);
}
template <typename Json>
void to_json(Json& j, const TaskKind& e) {
  j = toString(e);
}

// Queued or running: a task that has no outcome yet.
constexpr bool unfinished(TaskState state) {
  return state == TaskState::kQueued || state == TaskState::kRunning;
}

// creating or deleting: a task owns the VM's state until it ends.
constexpr bool transient(VmState state) {
  return state == VmState::kCreating || state == VmState::kDeleting;
}

// The family whose service runs tasks of a kind; nullopt for kUnknown.
constexpr std::optional<TaskFamily> familyOf(TaskKind kind) {
  switch (kind) {
    case TaskKind::kVmCreate:
    case TaskKind::kVmDelete:
    case TaskKind::kVmStart:
    case TaskKind::kVmStop:
    case TaskKind::kVmForceStop:
    case TaskKind::kVmReboot:
    case TaskKind::kVmPause:
    case TaskKind::kVmResume:
    case TaskKind::kVmDiskAdd:
    case TaskKind::kVmDiskRemove:
    case TaskKind::kVmNicAdd:
    case TaskKind::kVmNicRemove:
    case TaskKind::kVmResize: return TaskFamily::kVm;
    case TaskKind::kVolumeCreate:
    case TaskKind::kVolumeDelete:
    case TaskKind::kVolumeResize:
    case TaskKind::kVolumeLimits:
    case TaskKind::kVolumeCopy: return TaskFamily::kVolume;
    case TaskKind::kImageImport:
    case TaskKind::kImageDelete: return TaskFamily::kImage;
    case TaskKind::kNetworkCreate:
    case TaskKind::kNetworkDelete: return TaskFamily::kNetwork;
    case TaskKind::kUnknown: break;
  }
  return std::nullopt;
}

}  // namespace qiao
