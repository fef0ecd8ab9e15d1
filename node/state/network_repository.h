// The tenant networks and their ports in the store. Both take numbers from one host-wide
// space (OpenFlow ports), so they live side by side.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;

class NetworkRepository {
 public:
  NetworkRepository(Database& db, TaskRepository& tasks) : db_(db), tasks_(tasks) {}

  // Fills local_id and dhcp_ofport and records the network and, when given, its task in one
  // transaction: kConflict when (tenant, name), or (type, segment_id), exists.
  Status create(NetworkRecord& network, const TaskRecord* task);
  Result<NetworkRecord> get(const std::string& tenant, const std::string& name);
  Result<std::vector<NetworkRecord>> list(const std::vector<std::string>& tenants,
                                          const std::string& name = {});
  // kNotFound when there is no such network.
  Status setState(const std::string& tenant, const std::string& name, NetworkState state,
                  const std::string& last_error = "");
  // Idempotent; a network that still has ports stays.
  Status remove(const std::string& tenant, const std::string& name);
  Result<std::vector<int64_t>> segmentsInUse(const std::string& type);

 private:
  Database& db_;
  TaskRepository& tasks_;
};

class PortRepository {
 public:
  explicit PortRepository(Database& db) : db_(db) {}

  // Fills ofport: kNotFound when its network is not there, kConflict naming the address or MAC
  // when taken.
  Status create(PortRecord& port);
  // Every port, ordered by vm and nic.
  Result<std::vector<PortRecord>> all();
  // The ports of one network (by uuid), ordered by vm and nic.
  Result<std::vector<PortRecord>> ofNetwork(const std::string& network_uuid);
  // The ports of one VM (by uuid), ordered by nic.
  Result<std::vector<PortRecord>> ofVm(const std::string& vm_uuid);
  Status remove(const std::string& uuid);  // idempotent
  // A VM's NIC unplugged: its port goes and the VM's later NICs' numbers move up one, so they
  // stay the indexes of the VM's spec. Idempotent: a port already gone changes nothing.
  Status removeOfNic(const std::string& port_uuid);

 private:
  // The ports whose `column` (a column name of this file, never the caller's) is `value`;
  // all of them when column is null.
  Result<std::vector<PortRecord>> select(const char* column, const std::string& value);

  Database& db_;
};

}  // namespace qiao
