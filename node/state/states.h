// The states of the stored records and the kinds of tasks, each an enum with exactly one
// mapping to the text that the database, the API's JSON and the events carry. The names are
// part of the API (docs/api/openapi.yaml): they never change.
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

// Queued or running: a task that has no outcome yet.
constexpr bool unfinished(TaskState state) {
  return state == TaskState::kQueued || state == TaskState::kRunning;
}

}  // namespace qiao
