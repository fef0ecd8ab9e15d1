// The tasks and the journal of their steps, in the store; the TaskEngine's TaskJournal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"
#include "node/state/task_journal.h"

namespace qiao {

class Database;

class TaskRepository final : public TaskJournal {
 public:
  explicit TaskRepository(Database& db) : db_(db) {}

  Status create(const TaskRecord& task);
  Status createIfIdle(const TaskRecord& task) override;
  Status update(const std::string& id, TaskState state, int progress, const std::string& message,
                const std::string& error_json = "") override;
  Status bumpAttempts(const std::string& id) override;
  Result<TaskRecord> get(const std::string& id) override;
  Result<std::vector<TaskRecord>> list(const TaskFilter& filter,
                                       std::string* next_page_token) override;
  Result<std::vector<TaskRecord>> unfinished() override;

  Status journal(const std::string& task_id, const std::string& step, JournalPhase phase,
                 const std::string& detail = "") override;
  Result<std::vector<JournalEntry>> journalOf(const std::string& task_id) override;
  struct JournalReport {
    bool ok = true;
    std::string first_problem;
    int64_t tasks_checked = 0;
  };
  // Every step of a finished task was closed (done, failed, undone); unfinished tasks may have
  // one open step.
  Result<JournalReport> verifyJournal();

  // Records a task inside a transaction of another repository (an object and the task that
  // makes it, together); the caller holds the database's mutex.
  Status insertLocked(const TaskRecord& task);

 private:
  Database& db_;
};

}  // namespace qiao
