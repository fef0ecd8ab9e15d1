// The volumes in the store.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;

class VolumeRepository {
 public:
  VolumeRepository(Database& db, TaskRepository& tasks) : db_(db), tasks_(tasks) {}

  // Records the volume and, when given, its task in one transaction: kConflict when (tenant,
  // name) exists.
  Status create(const VolumeRecord& volume, const TaskRecord* task);
  Result<VolumeRecord> get(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant; empty name = every name.
  Result<std::vector<VolumeRecord>> list(const std::vector<std::string>& tenants,
                                         const std::string& name = {});
  // Writes size, state, attachment, limits and last error.
  Status update(const VolumeRecord& volume);
  // Atomically moves a volume from one of `from_states`, attached to `from_vm` ("" = none), to
  // `to_state` attached to `to_vm`: kConflict when it is not (any more) in such a state, so
  // that two tasks never both take, or take and delete, one volume.
  Status transition(const std::string& tenant, const std::string& name,
                    const std::vector<VolumeState>& from_states, const std::string& from_vm,
                    VolumeState to_state, const std::string& to_vm);
  Status remove(const std::string& tenant, const std::string& name);  // idempotent

 private:
  Database& db_;
  TaskRepository& tasks_;
};

}  // namespace qiao
