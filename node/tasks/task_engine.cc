#include "node/tasks/task_engine.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/crypto.h"
#include "base/log.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

const Logger kLog("task");
// How long a step waits for an unreachable backend before the task fails.
constexpr auto kUnavailableRetry = std::chrono::seconds(60);

}  // namespace

TaskEngine::TaskEngine(TaskJournal& journal, EventBus& events, size_t workers, int max_attempts,
                       const Failpoints& failpoints)
    : journal_(journal),
      events_(events),
      max_attempts_(max_attempts),
      failpoints_(failpoints),
      workers_("qiao-task", workers) {}

TaskEngine::~TaskEngine() { stop(); }

void TaskEngine::addFamily(TaskFamily family, Kind kind) { kinds_[family] = std::move(kind); }

const TaskEngine::Kind* TaskEngine::kindOf(TaskKind kind) const {
  auto family = familyOf(kind);
  if (!family) return nullptr;
  auto it = kinds_.find(*family);
  return it == kinds_.end() ? nullptr : &it->second;
}

TaskRecord TaskEngine::newTask(TaskKind kind, const std::string& tenant, const std::string& target,
                               const std::string& identity, std::string params_json) {
  TaskRecord task;
  task.id = newUuid();
  task.kind = kind;
  task.tenant = tenant;
  task.target = target;
  task.identity = identity;
  task.state = TaskState::kQueued;
  task.message = "queued";
  task.params_json = std::move(params_json);
  return task;
}

Result<std::string> TaskEngine::objectOf(const TaskRecord& task, std::string_view prefix) {
  if (!task.target.starts_with(prefix)) {
    return makeError(
        ErrorCode::kInternal, "task",
        "task " + task.id + " of kind " + toString(task.kind) + " has target " + task.target);
  }
  return task.target.substr(prefix.size());
}

nlohmann::json TaskEngine::params(const TaskRecord& task) {
  auto params = nlohmann::json::parse(task.params_json, nullptr, false);
  return params.is_object() ? params : nlohmann::json::object();
}

std::string TaskEngine::lastFailure(TaskJournal& journal, const std::string& tenant,
                                    const std::string& target) {
  TaskFilter filter;
  filter.tenants = {tenant};
  filter.target = target;
  filter.limit = 1;
  std::string next;
  auto tasks = journal.list(filter, &next);
  if (!tasks || tasks->empty() || tasks->front().state != TaskState::kFailed) return {};
  return tasks->front().message;
}

Result<TaskRecord> TaskEngine::submit(const TaskRecord& task) {
  if (auto created = journal_.createIfIdle(task); !created) {
    return std::unexpected(created.error());
  }
  return dispatch(task.id);
}

Result<TaskRecord> TaskEngine::dispatch(const std::string& id) {
  auto recorded = journal_.get(id);
  if (!recorded) return std::unexpected(recorded.error());
  publish(*recorded);
  TaskRecord copy = *recorded;
  {
    std::lock_guard lock(cancel_mu_);
    dispatched_here_.insert(id);
  }
  if (stopping_.load() || !workers_.post([this, copy] { runTask(copy); })) {
    return makeError(ErrorCode::kUnavailable, "task", "qiaod is shutting down");
  }
  return recorded;
}

void TaskEngine::resumeUnfinished() {
  auto unfinished = journal_.unfinished();
  if (!unfinished) {
    kLog.error("cannot read unfinished tasks", {{"error", unfinished.error().describe()}});
    return;
  }
  for (auto task : *unfinished) {
    // A task this process took while it started (the API serves before the start-up
    // reconciliation ends) runs already: it is not a previous run's.
    {
      std::lock_guard lock(cancel_mu_);
      if (!dispatched_here_.insert(task.id).second) continue;
    }
    // Close the steps the previous run began and never ended, so the journal stays whole.
    if (auto entries = journal_.journalOf(task.id)) {
      std::map<std::string, JournalPhase> last_phase;
      for (const auto& e : *entries) {
        if (e.phase == JournalPhase::kCancelRequested) {
          std::lock_guard lock(cancel_mu_);
          cancel_requested_.insert(task.id);
          continue;
        }
        last_phase[e.step] = e.phase;
      }
      for (const auto& [step, phase] : last_phase) {
        if (phase == JournalPhase::kBegin || phase == JournalPhase::kUndoBegin) {
          (void)journal_.journal(task.id, step, JournalPhase::kFailed,
                                 "interrupted by a restart of qiaod");
        }
      }
    }
    (void)journal_.bumpAttempts(task.id);
    ++task.attempts;
    kLog.info("resuming a task interrupted by a restart",
              {{"task", task.id},
               {"kind", toString(task.kind)},
               {"attempt", std::to_string(task.attempts)}});
    workers_.post([this, task] { runTask(task); });
  }
}

Result<TaskRecord> TaskEngine::cancel(const std::string& id, const std::string& identity) {
  auto task = journal_.get(id);
  if (!task) return task;
  if (!unfinished(task->state)) {
    return makeError(ErrorCode::kConflict, "task",
                     "task " + id + " has already " +
                         (task->state == TaskState::kCancelled ? std::string("been cancelled")
                                                               : toString(task->state)));
  }
  const Kind* kind = kindOf(task->kind);
  if (kind == nullptr || std::find(kind->cancellable.begin(), kind->cancellable.end(),
                                   task->kind) == kind->cancellable.end()) {
    return makeError(ErrorCode::kConflict, "task",
                     "a " + toString(task->kind) +
                         " task cannot be cancelled; it finishes or rolls back "
                         "by itself");
  }
  {
    std::lock_guard lock(cancel_mu_);
    if (!cancel_requested_.insert(id).second) return task;  // asked already
  }
  (void)journal_.journal(id, "cancel", JournalPhase::kCancelRequested, "by " + identity);
  kLog.info("task cancel requested",
            {{"task", id}, {"kind", toString(task->kind)}, {"by", identity}});
  return task;
}

bool TaskEngine::cancelRequested(const std::string& id) const {
  std::lock_guard lock(cancel_mu_);
  return cancel_requested_.contains(id);
}

Error TaskEngine::Run::cancelledError() {
  return Error{ErrorCode::kConflict, "task", "cancelled", {}};
}

Error TaskEngine::Run::shutdownError() {
  return Error{ErrorCode::kUnavailable, "task",
               "qiaod is stopping; the task goes on at its next start", {}};
}

bool TaskEngine::Run::isShutdown(const Error& error) {
  const Error shutdown = shutdownError();
  return error.code == shutdown.code && error.subsystem == shutdown.subsystem &&
         error.message == shutdown.message;
}

void TaskEngine::publish(const TaskRecord& task) {
  events_.publish({"task", task.tenant, dumpJson(taskToJson(task))});
}

void TaskEngine::update(TaskRecord& task, TaskState state, int progress, const std::string& message,
                        const std::string& error_json) {
  task.state = state;
  task.progress = progress;
  task.message = message;
  task.error_json = error_json;
  if (auto updated = journal_.update(task.id, state, progress, message, error_json); !updated) {
    kLog.error("cannot record task progress",
               {{"task", task.id}, {"error", updated.error().describe()}});
  }
  if (auto fresh = journal_.get(task.id)) task.updated_at = fresh->updated_at;
  publish(task);
}

void TaskEngine::stop() {
  if (stopping_.exchange(true)) return;
  workers_.stop();
}

void TaskEngine::runTask(TaskRecord task) {
  if (stopping_.load()) return;
  const Kind* kind = kindOf(task.kind);
  Run run(*this, task, kind ? kind->step_lock : nullptr);
  Status result;
  if (kind == nullptr) {
    result = makeError(ErrorCode::kInternal, "task", "unknown task kind " + toString(task.kind));
  } else if (task.attempts > max_attempts_) {
    if (kind->give_up) kind->give_up(run);
    result = makeError(ErrorCode::kInternal, "task",
                       "task was interrupted " + std::to_string(task.attempts) +
                           " times by restarts of qiaod; gave up");
  } else {
    result = kind->run(run);
  }
  const std::string object = task.tenant + "/" + task.target;
  const std::string kind_name = toString(task.kind);
  const bool cancelled = cancelRequested(task.id);
  if (!result && stopping_.load() && Run::isShutdown(result.error())) {
    kLog.info("task left for the next start of qiaod",
              {{"task", task.id}, {"kind", kind_name}, {"object", object}});
    return;
  }
  if (result) {
    update(task, TaskState::kSucceeded, 100, "done");
    kLog.info("task succeeded", {{"task", task.id}, {"kind", kind_name}, {"object", object}});
  } else if (cancelled) {
    update(task, TaskState::kCancelled, task.progress, "cancelled", errorToJson(result.error()));
    kLog.info("task cancelled", {{"task", task.id}, {"kind", kind_name}, {"object", object}});
  } else {
    update(task, TaskState::kFailed, task.progress, result.error().describe(),
           errorToJson(result.error()));
    kLog.warn("task failed", {{"task", task.id},
                              {"kind", kind_name},
                              {"object", object},
                              {"error", result.error().describe()}});
  }
  // A request is forgotten only now that the outcome is recorded: until then the task shows
  // "running", and a second request must still find the first (one journal mark).
  std::lock_guard lock(cancel_mu_);
  cancel_requested_.erase(task.id);
  dispatched_here_.erase(task.id);
}

Status TaskEngine::Run::step(std::string_view name, int progress, std::string_view message,
                             const std::function<Status()>& action, std::function<Status()> undo) {
  const std::string step_name(name);
  engine_.update(task_, TaskState::kRunning, task_.progress, std::string(message));
  (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kBegin);
  engine_.failpoints_.hit(toString(task_.kind) + "/" + step_name + ":before");
  Status result = runRetrying(action, message);
  if (!result) {
    (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kFailed,
                                   result.error().describe());
    return result;
  }
  engine_.failpoints_.hit(toString(task_.kind) + "/" + step_name + ":after");
  (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kDone);
  if (undo) undo_.emplace_back(step_name, std::move(undo));
  engine_.update(task_, TaskState::kRunning, progress, std::string(message));
  return {};
}

Status TaskEngine::Run::waitFor(std::string_view name, std::string_view message,
                                std::chrono::milliseconds timeout,
                                const std::function<Result<std::string>()>& check) {
  auto missing = check();
  if (missing && missing->empty()) return {};  // nothing to wait for: nothing journaled
  const std::string step_name(name);
  (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kBegin);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string shown;
  Status result;
  for (;;) {
    if (!missing) {
      result = std::unexpected(missing.error());
      break;
    }
    if (missing->empty()) break;
    if (engine_.stopping()) {
      result = std::unexpected(shutdownError());
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      result = makeError(ErrorCode::kTimeout, "task",
                         "gave up after " + std::to_string(timeout.count() / 1000) +
                             " s waiting for " + *missing);
      break;
    }
    if (*missing != shown) {
      shown = *missing;
      engine_.update(task_, TaskState::kRunning, task_.progress,
                     std::string(message) + ": waiting for " + shown);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    missing = check();
  }
  if (!result) {
    (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kFailed,
                                   result.error().describe());
    return result;
  }
  (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kDone);
  return {};
}

void TaskEngine::Run::progress(int percent, const std::string& message) {
  engine_.update(task_, TaskState::kRunning, percent, message);
}

void TaskEngine::Run::rollback() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    const std::string& step_name = it->first;
    (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kUndoBegin);
    engine_.failpoints_.hit(toString(task_.kind) + "/" + step_name + ":undo");
    Status result = runRetrying(it->second, "undoing " + step_name);
    if (result) {
      (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kUndone);
    } else {
      (void)engine_.journal_.journal(task_.id, step_name, JournalPhase::kFailed,
                                     "undo: " + result.error().describe());
      kLog.error("undo failed",
                 {{"task", task_.id}, {"step", step_name}, {"error", result.error().describe()}});
    }
  }
  undo_.clear();
}

Status TaskEngine::Run::runRetrying(const std::function<Status()>& action,
                                    std::string_view message) {
  auto attempt = [&]() -> Status {
    if (step_lock_ == nullptr) return action();
    std::shared_lock lock(*step_lock_);
    return action();
  };
  Status result = attempt();
  auto give_up = std::chrono::steady_clock::now() + kUnavailableRetry;
  while (!result && result.error().code == ErrorCode::kUnavailable &&
         std::chrono::steady_clock::now() < give_up && !engine_.stopping()) {
    engine_.update(task_, TaskState::kRunning, task_.progress,
                   std::string(message) + " (waiting for " + result.error().subsystem + ": " +
                       result.error().message + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    result = attempt();
  }
  return result;
}

}  // namespace qiao
