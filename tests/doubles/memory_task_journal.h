// MemoryTaskJournal: the TaskJournal in memory, for tests of the TaskEngine without a store.
// It keeps what the store's tasks repository keeps (tasks in the order recorded, the busy check
// on (tenant, target), the journal of steps), but no time stamps.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "node/state/task_journal.h"

namespace qiao {

class MemoryTaskJournal final : public TaskJournal {
 public:
  Status createIfIdle(const TaskRecord& task) override;
  Status update(const std::string& id, TaskState state, int progress, const std::string& message,
                const std::string& error_json) override;
  Status bumpAttempts(const std::string& id) override;
  Result<TaskRecord> get(const std::string& id) override;
  Result<std::vector<TaskRecord>> list(const TaskFilter& filter,
                                       std::string* next_page_token) override;
  Result<std::vector<TaskRecord>> unfinished() override;
  Status journal(const std::string& task_id, const std::string& step, JournalPhase phase,
                 const std::string& detail) override;
  Result<std::vector<JournalEntry>> journalOf(const std::string& task_id) override;

  // Records a task as it is, without the busy check (a task a previous run left).
  void put(const TaskRecord& task);

 private:
  std::mutex mu_;
  std::map<std::string, TaskRecord> tasks_;  // by id
  std::vector<JournalEntry> journal_;
  int64_t next_seq_ = 1;
};

}  // namespace qiao
