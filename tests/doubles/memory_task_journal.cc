#include "tests/doubles/memory_task_journal.h"

#include <algorithm>

namespace qiao {
namespace {

Error noTask(const std::string& id) {
  return Error{ErrorCode::kNotFound, "store", "no task " + id, ""};
}

}  // namespace

void MemoryTaskJournal::put(const TaskRecord& task) {
  std::lock_guard lock(mu_);
  TaskRecord recorded = task;
  recorded.seq = next_seq_++;
  tasks_[task.id] = recorded;
}

Status MemoryTaskJournal::createIfIdle(const TaskRecord& task) {
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, t] : tasks_) {
      if (t.tenant == task.tenant && t.target == task.target && qiao::unfinished(t.state)) {
        return makeError(ErrorCode::kConflict, "store", "busy with task " + id);
      }
    }
  }
  put(task);
  return {};
}

Status MemoryTaskJournal::update(const std::string& id, TaskState state, int progress,
                                 const std::string& message, const std::string& error_json) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::unexpected(noTask(id));
  it->second.state = state;
  it->second.progress = progress;
  it->second.message = message;
  it->second.error_json = error_json;
  return {};
}

Status MemoryTaskJournal::bumpAttempts(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(id);
  if (it != tasks_.end()) ++it->second.attempts;
  return {};
}

Result<TaskRecord> MemoryTaskJournal::get(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::unexpected(noTask(id));
  return it->second;
}

Result<std::vector<TaskRecord>> MemoryTaskJournal::list(const TaskFilter& filter,
                                                        std::string* next_page_token) {
  std::lock_guard lock(mu_);
  std::vector<TaskRecord> out;
  for (const auto& [id, t] : tasks_) {
    bool in_tenants = filter.tenants.empty() ||
                      std::ranges::find(filter.tenants, t.tenant) != filter.tenants.end();
    if (in_tenants && (filter.state.empty() || filter.state == toString(t.state)) &&
        (filter.target.empty() || filter.target == t.target)) {
      out.push_back(t);
    }
  }
  std::ranges::sort(out, [](const TaskRecord& a, const TaskRecord& b) { return a.seq > b.seq; });
  if (static_cast<int>(out.size()) > filter.limit) out.resize(std::max(1, filter.limit));
  if (next_page_token) next_page_token->clear();
  return out;
}

Result<std::vector<TaskRecord>> MemoryTaskJournal::unfinished() {
  std::lock_guard lock(mu_);
  std::vector<TaskRecord> out;
  for (const auto& [id, t] : tasks_) {
    if (qiao::unfinished(t.state)) out.push_back(t);
  }
  std::ranges::sort(out, [](const TaskRecord& a, const TaskRecord& b) { return a.seq < b.seq; });
  return out;
}

Status MemoryTaskJournal::journal(const std::string& task_id, const std::string& step,
                                  JournalPhase phase, const std::string& detail) {
  std::lock_guard lock(mu_);
  journal_.push_back({static_cast<int64_t>(journal_.size()) + 1, task_id, step, phase, "", detail});
  return {};
}

Result<std::vector<JournalEntry>> MemoryTaskJournal::journalOf(const std::string& task_id) {
  std::lock_guard lock(mu_);
  std::vector<JournalEntry> out;
  for (const auto& e : journal_) {
    if (e.task_id == task_id) out.push_back(e);
  }
  return out;
}

}  // namespace qiao
