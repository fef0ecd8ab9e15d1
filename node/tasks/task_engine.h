// TaskEngine: runs the node's tasks (VM, volume and image operations alike). A task is a row
// in the store; its run is a sequence of named, idempotent steps, each journaled (begin, done
// or failed) with its undo remembered, so that a failure rolls back in reverse order and a
// daemon killed half way resumes the task at its next start. Each family of tasks (TaskFamily:
// VM, volume, image, network) registers a handler for its kinds; the engine owns the workers,
// the progress updates and the events.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "base/failpoint.h"
#include "base/work_queue.h"
#include "node/state/records.h"
#include "node/state/task_journal.h"

namespace qiao {

class TaskEngine {
 public:
  class Run;

  struct Kind {
    // Does the work of one task; its steps go through run.step().
    std::function<Status(Run& run)> run;
    // Runs instead of `run` when the task was interrupted by restarts more than max_attempts
    // times, before it fails: a half-made object is rolled back here. Optional.
    std::function<void(Run& run)> give_up;
    // Held shared by every step, so that the family's reconciliation (holding it exclusively)
    // never sees a step half done. Optional.
    std::shared_mutex* step_lock = nullptr;
    // The kinds (volume.copy) that cancel() may stop; their run checks Run::cancelled()
    // between its waits and rolls back when asked.
    std::vector<TaskKind> cancellable;
  };

  // `failpoints`: the node's (base/failpoint.h); hit before, after and at the undo of each step.
  TaskEngine(TaskJournal& journal, EventBus& events, size_t workers, int max_attempts,
             const Failpoints& failpoints = Failpoints::none());
  ~TaskEngine();
  TaskEngine(const TaskEngine&) = delete;
  TaskEngine& operator=(const TaskEngine&) = delete;

  // Tasks of the kinds of `family` (familyOf) run with `kind`. Before start().
  void addFamily(TaskFamily family, Kind kind);

  // A new task record, queued, with a fresh id.
  static TaskRecord newTask(TaskKind kind, const std::string& tenant, const std::string& target,
                            const std::string& identity, std::string params_json);
  // The object a task of a family works on: "volume/data1" with prefix "volume/" is "data1";
  // kInternal when the target is not of that family.
  static Result<std::string> objectOf(const TaskRecord& task, std::string_view prefix);
  // The task's parameters; an empty object when it has none (or they do not parse).
  static nlohmann::json params(const TaskRecord& task);
  // The message of the newest task on (tenant, target) when it failed, else "": why an
  // object that a task was making is not there.
  static std::string lastFailure(TaskJournal& journal, const std::string& tenant,
                                 const std::string& target);

  // Records the task (kConflict when another one for its (tenant, target) is unfinished) and
  // queues it.
  Result<TaskRecord> submit(const TaskRecord& task);
  // Queues a task already recorded (say, in one transaction with the object it creates).
  Result<TaskRecord> dispatch(const std::string& id);
  // Queues again the tasks a previous run of qiaod left unfinished, closing their open steps;
  // tasks this process has queued itself meanwhile are left to the run they have.
  void resumeUnfinished();

  // Asks an unfinished task of a cancellable kind to stop: it ends "cancelled" once its run
  // sees the request (Run::cancelled()) and has rolled back what it did; a task that
  // finishes first keeps its outcome. The request is journaled, so a restart keeps it.
  // kNotFound for no such task; kConflict when it has finished or its kind cannot stop.
  Result<TaskRecord> cancel(const std::string& id, const std::string& identity);
  bool cancelRequested(const std::string& id) const;

  // Records and announces the task's new state.
  void update(TaskRecord& task, TaskState state, int progress, const std::string& message,
              const std::string& error_json = {});

  // Stops accepting tasks; the running ones finish their current step.
  void stop();
  bool stopping() const { return stopping_.load(); }
  // Blocks until no task is queued or running.
  void drain() { workers_.drain(); }

 private:
  void runTask(TaskRecord task);
  const Kind* kindOf(TaskKind kind) const;
  void publish(const TaskRecord& task);

  TaskJournal& journal_;
  EventBus& events_;
  int max_attempts_;
  const Failpoints& failpoints_;
  std::map<TaskFamily, Kind> kinds_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex cancel_mu_;
  std::set<std::string> cancel_requested_;  // task ids
  std::set<std::string> dispatched_here_;   // queued or running in this process (cancel_mu_)
  WorkQueue workers_;
};

// One run of one task: executes named steps, journals each, arms the failpoints
// "<kind>/<step>:before|after|undo", reports progress, and remembers the undo of every step
// that completed.
class TaskEngine::Run {
 public:
  Run(TaskEngine& engine, TaskRecord& task, std::shared_mutex* step_lock)
      : engine_(engine), task_(task), step_lock_(step_lock) {}

  TaskRecord& task() { return task_; }

  // Runs `action` as step `name`; on success records `progress` and remembers `undo`.
  // A backend that answers kUnavailable (libvirt or Ceph restarting) is waited for, up to a
  // minute, and the step run again: steps are idempotent.
  Status step(std::string_view name, int progress, std::string_view message,
              const std::function<Status()>& action, std::function<Status()> undo = nullptr);
  // Reports progress within the current step (long copies).
  void progress(int percent, const std::string& message);
  // Waits (polling every 250 ms, outside any step lock) until `check` says what the task
  // needs is there ("") or fails; while it waits, the task's message is "<message>: waiting
  // for <what check says is missing>". Journaled as step `name` when it had to wait. Ends
  // with kTimeout after `timeout`, and with shutdownError() when qiaod stops meanwhile: the
  // task then stays unfinished and goes on at the next start, like one interrupted by a crash.
  Status waitFor(std::string_view name, std::string_view message,
                 std::chrono::milliseconds timeout,
                 const std::function<Result<std::string>()>& check);
  // True once cancel() was asked for this task.
  bool cancelled() const { return engine_.cancelRequested(task_.id); }
  // The error a run returns when it stopped because it was cancelled.
  static Error cancelledError();
  // The error a run returns when it stopped because qiaod is stopping; the engine then leaves
  // the task unfinished (no outcome recorded) for the next start.
  static Error shutdownError();
  static bool isShutdown(const Error& error);
  // Undoes the completed steps, newest first. Undo steps are idempotent too.
  void rollback();

 private:
  Status runRetrying(const std::function<Status()>& action, std::string_view message);

  TaskEngine& engine_;
  TaskRecord& task_;
  std::shared_mutex* step_lock_;
  std::vector<std::pair<std::string, std::function<Status()>>> undo_;
};

}  // namespace qiao
