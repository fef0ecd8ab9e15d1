// TaskJournal: what the TaskEngine needs of durable storage: task records and the journal of
// their steps. The store's tasks repository is the real one; a test gives the engine an
// in-memory one.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class TaskJournal {
 public:
  virtual ~TaskJournal() = default;

  // Records a task: kConflict when another task for the same (tenant, target) is queued or
  // running.
  virtual Status createIfIdle(const TaskRecord& task) = 0;
  // kNotFound for no such task.
  virtual Status update(const std::string& id, TaskState state, int progress,
                        const std::string& message, const std::string& error_json = "") = 0;
  virtual Status bumpAttempts(const std::string& id) = 0;
  virtual Result<TaskRecord> get(const std::string& id) = 0;
  // Newest first.
  virtual Result<std::vector<TaskRecord>> list(const TaskFilter& filter,
                                               std::string* next_page_token) = 0;
  // Queued or running, oldest first.
  virtual Result<std::vector<TaskRecord>> unfinished() = 0;

  // The journal of task steps (JournalPhase: begin, done, failed, undo-begin, undone; and
  // cancel-requested, a mark of step "cancel" that opens and closes nothing).
  virtual Status journal(const std::string& task_id, const std::string& step, JournalPhase phase,
                         const std::string& detail = "") = 0;
  virtual Result<std::vector<JournalEntry>> journalOf(const std::string& task_id) = 0;
};

}  // namespace qiao
