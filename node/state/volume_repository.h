// The volumes in the store.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;
class RecordTable;
class Replicated;
template <typename R>
class Mirror;

// A cluster member's volumes are the cluster's (the RADOS table "volumes", key
// "<tenant>/<name>"; node/state/mirror.h): a member's backend is RBD, so every member reaches a
// volume's data and a volume names no host. Its tasks stay with the member that runs them.
class VolumeRepository {
 public:
  VolumeRepository(Database& db, TaskRepository& tasks);
  ~VolumeRepository();

  // Makes the volumes those of the cluster's table; a store shared for the first time puts its
  // own in it (node/state/mirror.h).
  void share(std::unique_ptr<RecordTable> table);
  Replicated& replica();

  // Records the volume and, when given, its task in one transaction: kConflict when (tenant,
  // name) exists.
  Status create(const VolumeRecord& volume, const TaskRecord* task);
  Result<VolumeRecord> get(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant; empty name = every name.
  Result<std::vector<VolumeRecord>> list(const std::vector<std::string>& tenants,
                                         const std::string& name = {});
  // Writes size, state, attachment, limits and last error.
  Status update(const VolumeRecord& volume);
  // Makes `edit` to the volume as it is (on a member, the cluster's record: what another member
  // changed meanwhile is kept) and returns what it became; kNotFound when there is none. `edit`
  // may run more than once and only looks at its argument.
  Result<VolumeRecord> modify(const std::string& tenant, const std::string& name,
                              const std::function<void(VolumeRecord&)>& edit);
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
  std::unique_ptr<Mirror<VolumeRecord>> mirror_;
};

}  // namespace qiao
