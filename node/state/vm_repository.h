// The VMs in the store.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;

class VmRepository {
 public:
  VmRepository(Database& db, TaskRepository& tasks) : db_(db), tasks_(tasks) {}

  // The VM and the task that makes it, in one transaction: kConflict when (tenant, name)
  // exists.
  Status create(const VmRecord& vm, const TaskRecord& task);
  Result<VmRecord> get(const std::string& tenant, const std::string& name);
  Result<std::vector<VmRecord>> findByName(const std::string& name,
                                           const std::vector<std::string>& tenants);
  Result<VmPage> list(const VmFilter& filter);
  Result<std::vector<VmRecord>> all();
  Status upsert(const VmRecord& vm);
  Status setState(const std::string& tenant, const std::string& name, VmState state,
                  const std::string& last_error = "");
  // Only the spec (a disk or NIC added or removed while the VM lives): never its state.
  Status setSpec(const std::string& tenant, const std::string& name, const std::string& spec_json);
  Status remove(const std::string& tenant, const std::string& name);  // idempotent
  Result<std::map<std::string, int>> countByState();

 private:
  Database& db_;
  TaskRepository& tasks_;
};

}  // namespace qiao
