// The VMs in the store.
#pragma once

#include <map>
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

// A cluster member's VMs are the cluster's (the RADOS table "vms", key "<tenant>/<name>", the
// record's columns as JSON; node/state/mirror.h): share() makes this repository write through to
// it and read its SQLite cache. A VM's host is the member whose hypervisor holds it.
class VmRepository {
 public:
  VmRepository(Database& db, TaskRepository& tasks);
  ~VmRepository();

  // Makes the VMs those of the cluster's table (a member, before its services start); `host`
  // is this host's name: its VMs that the table lacks (it ran alone before) are put in it.
  void share(std::unique_ptr<RecordTable> table, const std::string& host);
  // What the Replicator keeps current.
  Replicated& replica();

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
  std::unique_ptr<Mirror<VmRecord>> mirror_;
};

}  // namespace qiao
