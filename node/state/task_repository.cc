#include "node/state/task_repository.h"

#include <map>

#include "node/state/database.h"
#include "node/state/queries.h"
#include "node/state/table.h"

namespace qiao {
namespace {

using TaskFill = Column<TaskRecord>::Fill;

const Table<TaskRecord> kTasks{
    "tasks",
    {
        field("id", &TaskRecord::id),
        field("kind", &TaskRecord::kind),
        field("tenant", &TaskRecord::tenant),
        field("target", &TaskRecord::target),
        field("identity", &TaskRecord::identity),
        field("state", &TaskRecord::state),
        field("progress", &TaskRecord::progress),
        field("message", &TaskRecord::message),
        field("error_json", &TaskRecord::error_json),
        mapped<TaskRecord, std::string>(
            "params_json",
            [](const TaskRecord& t) { return t.params_json.empty() ? "{}" : t.params_json; },
            [](TaskRecord& t, std::string v) { t.params_json = std::move(v); }),
        createdAt(&TaskRecord::created_at),
        updatedAt(&TaskRecord::updated_at),
        field("attempts", &TaskRecord::attempts),
        field("seq", &TaskRecord::seq, TaskFill::kGenerated),
    }};

const Table<JournalEntry> kJournal{
    "journal",
    {
        field("seq", &JournalEntry::seq, Column<JournalEntry>::Fill::kGenerated),
        field("task_id", &JournalEntry::task_id),
        field("step", &JournalEntry::step),
        field("phase", &JournalEntry::phase),
        field("at", &JournalEntry::at, Column<JournalEntry>::Fill::kCreatedAt),
        field("detail", &JournalEntry::detail),
    }};

// The unfinished states, as the database holds them.
std::vector<std::string> unfinishedStates() {
  return {toString(TaskState::kQueued), toString(TaskState::kRunning)};
}

}  // namespace

Status TaskRepository::insertLocked(const TaskRecord& task) {
  Statement q(db_, kTasks.insert());
  kTasks.bindInsert(q, task);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("insert task"));
  return {};
}

Status TaskRepository::create(const TaskRecord& task) {
  std::lock_guard lock(db_.mutex());
  return insertLocked(task);
}

Status TaskRepository::createIfIdle(const TaskRecord& task) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_,
                "SELECT id, kind FROM tasks WHERE tenant = ? AND target = ? AND state IN "
                "(?, ?) LIMIT 1");
    q.bind(task.tenant).bind(task.target).bindAll(unfinishedStates());
    auto step = q.step();
    if (step == Statement::Step::kRow) {
      return makeError(ErrorCode::kConflict, "store",
                       "vm " + task.tenant + "/" + task.target + " is busy with task " + q.text(0) +
                           " (" + q.text(1) + "); try again when it is done");
    }
    if (step != Statement::Step::kDone) return std::unexpected(db_.error("busy check"));
  }
  if (auto inserted = insertLocked(task); !inserted) return inserted;
  return tx.commit();
}

Status TaskRepository::update(const std::string& id, TaskState state, int progress,
                              const std::string& message, const std::string& error_json) {
  static const auto kSet = kTasks.set({"state", "progress", "message", "error_json"});
  TaskRecord values;
  values.state = state;
  values.progress = progress;
  values.message = message;
  values.error_json = error_json;
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE tasks SET " + kSet.sql() + " WHERE id = ?");
  kSet.bind(q, values);
  q.bind(id);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("update task"));
  if (db_.changes() == 0) return makeError(ErrorCode::kNotFound, "store", "no task " + id);
  return {};
}

Status TaskRepository::bumpAttempts(const std::string& id) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE tasks SET attempts = attempts + 1 WHERE id = ?");
  q.bind(id);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("bump attempts"));
  return {};
}

Result<TaskRecord> TaskRepository::get(const std::string& id) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kTasks.select() + " WHERE id = ?");
  q.bind(id);
  auto step = q.step();
  if (step == Statement::Step::kRow) return kTasks.read(q);
  if (step == Statement::Step::kDone) {
    return makeError(ErrorCode::kNotFound, "store", "no task " + id);
  }
  return std::unexpected(db_.error("get task"));
}

Result<std::vector<TaskRecord>> TaskRepository::list(const TaskFilter& filter,
                                                     std::string* next_page_token) {
  std::lock_guard lock(db_.mutex());
  std::string sql = kTasks.select() + " WHERE 1";
  std::vector<std::string> args;
  appendScope(filter.tenants, filter.state, &sql, &args);
  if (!filter.target.empty()) {
    sql += " AND target = ?";
    args.push_back(filter.target);
  }
  if (!filter.page_token.empty()) {
    if (filter.page_token.find_first_not_of("0123456789") != std::string::npos ||
        filter.page_token.size() > 18) {
      return makeError(ErrorCode::kInvalidArgument, "store", "page_token is not valid");
    }
    sql += " AND seq < " + filter.page_token;
  }
  int limit = std::max(1, filter.limit);
  sql += " ORDER BY seq DESC LIMIT " + std::to_string(limit + 1);
  Statement q(db_, sql);
  q.bindAll(args);
  auto out = readAll<TaskRecord>(
      db_, q, [](const Statement& row) { return kTasks.read(row); }, "list tasks");
  if (!out) return out;
  if (next_page_token) next_page_token->clear();
  if (static_cast<int>(out->size()) > limit) {
    out->pop_back();
    if (next_page_token) *next_page_token = std::to_string(out->back().seq);
  }
  return out;
}

Result<std::vector<TaskRecord>> TaskRepository::unfinished() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kTasks.select() + " WHERE state IN (?, ?) ORDER BY seq");
  q.bindAll(unfinishedStates());
  return readAll<TaskRecord>(
      db_, q, [](const Statement& row) { return kTasks.read(row); }, "unfinished tasks");
}

Status TaskRepository::journal(const std::string& task_id, const std::string& step,
                               JournalPhase phase, const std::string& detail) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kJournal.insert());
  kJournal.bindInsert(q, JournalEntry{0, task_id, step, phase, "", detail});
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("journal"));
  return {};
}

Result<std::vector<JournalEntry>> TaskRepository::journalOf(const std::string& task_id) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kJournal.select() + " WHERE task_id = ? ORDER BY seq");
  q.bind(task_id);
  return readAll<JournalEntry>(
      db_, q, [](const Statement& row) { return kJournal.read(row); }, "journal of task");
}

Result<TaskRepository::JournalReport> TaskRepository::verifyJournal() {
  std::lock_guard lock(db_.mutex());
  JournalReport report;
  std::map<std::string, std::string> task_state;
  {
    Statement q(db_, "SELECT id, state FROM tasks");
    Statement::Step step;
    while ((step = q.step()) == Statement::Step::kRow) task_state[q.text(0)] = q.text(1);
    if (step != Statement::Step::kDone) return std::unexpected(db_.error("verify journal"));
  }
  report.tasks_checked = static_cast<int64_t>(task_state.size());
  // Open steps per task: step -> the phase that opened it.
  std::map<std::string, std::map<std::string, JournalPhase>> open;
  auto problem = [&](const std::string& text) {
    if (report.ok) {
      report.ok = false;
      report.first_problem = text;
    }
  };
  Statement q(db_, "SELECT seq, task_id, step, phase FROM journal ORDER BY seq");
  Statement::Step rc;
  while ((rc = q.step()) == Statement::Step::kRow) {
    std::string seq = std::to_string(q.integer(0));
    std::string task = q.text(1), step = q.text(2), phase_name = q.text(3);
    if (!task_state.contains(task)) {
      problem("entry " + seq + " names task " + task + ", which does not exist");
      continue;
    }
    auto phase = parseEnum<JournalPhase>(phase_name);
    if (!phase) {
      problem("entry " + seq + ": unknown phase " + phase_name);
      continue;
    }
    auto& steps = open[task];
    switch (*phase) {
      case JournalPhase::kBegin:
      case JournalPhase::kUndoBegin:
        if (steps.contains(step)) {
          problem("entry " + seq + ": task " + task + " began step " + step +
                  " again before it ended");
        }
        steps[step] = *phase;
        break;
      case JournalPhase::kDone:
      case JournalPhase::kUndone:
      case JournalPhase::kFailed: {
        auto it = steps.find(step);
        if (it == steps.end()) {
          problem("entry " + seq + ": task " + task + " ended step " + step + " (" + phase_name +
                  ") that it never began");
          break;
        }
        if ((*phase == JournalPhase::kDone && it->second != JournalPhase::kBegin) ||
            (*phase == JournalPhase::kUndone && it->second != JournalPhase::kUndoBegin)) {
          problem("entry " + seq + ": task " + task + " step " + step + ": " + phase_name +
                  " does not close " + toString(it->second));
        }
        steps.erase(it);
        break;
      }
      case JournalPhase::kCancelRequested: break;  // a mark, not a step (TaskEngine::cancel)
    }
  }
  if (rc != Statement::Step::kDone) return std::unexpected(db_.error("verify journal"));
  for (const auto& [task, steps] : open) {
    const std::string& state = task_state[task];
    auto parsed = parseEnum<TaskState>(state);
    bool finished = !parsed || !qiao::unfinished(*parsed);
    if (steps.empty()) continue;
    if (finished || steps.size() > 1) {
      problem("task " + task + " (" + state + ") left step " + steps.begin()->first + " open");
    }
  }
  return report;
}

}  // namespace qiao
