// The tenant networks and their ports in the store. On a cluster member both are the cluster's
// records (node/state/mirror.h): networks in the RADOS table "networks" (key TENANT/NAME), ports
// in "ports" (key NETWORK-UUID/ADDRESS, so that two hosts never give out one address: the
// cluster's one allocator), a network's segment id claimed in "segments" (key TYPE/ID). What
// only this host means by them stays local: which networks it carries, with their tag in its
// flows and their DHCP server's OpenFlow port (network_here), and the OpenFlow numbers of its
// ports, which it alone gives out. Both number spaces are the host's, so they live side by side.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
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

class NetworkRepository {
 public:
  NetworkRepository(Database& db, TaskRepository& tasks);
  ~NetworkRepository();

  // Makes the networks the cluster's (a member, before its services start): `networks` their
  // table, `segments` the claims of their segment ids. Networks this store kept alone before
  // go into the cluster once, each with its claim (one whose segment another network of the
  // cluster holds stays out, logged). `host` is this host's name.
  void share(std::unique_ptr<RecordTable> networks, std::unique_ptr<RecordTable> segments,
             const std::string& host);
  bool shared() const;
  Replicated& replica();

  // Records the network and, when given, its task, and makes this host carry it (fills
  // local_id and dhcp_ofport). A segment_id of 0 takes the lowest free one in `free_segments`
  // (fills segment_id). kConflict when (tenant, name) exists, or (type, segment_id) is taken.
  Status create(NetworkRecord& network, const TaskRecord* task,
                std::pair<int64_t, int64_t> free_segments = {0, -1});
  // Makes this host carry a network another member made (its first port here): fills local_id
  // and dhcp_ofport, given when it carries it already.
  Status carry(NetworkRecord& network);
  // This host no longer carries the network (idempotent).
  Status drop(const std::string& network_uuid);
  // The uuids of the networks this host carries.
  Result<std::vector<std::string>> carried();
  Result<NetworkRecord> get(const std::string& tenant, const std::string& name);
  Result<std::vector<NetworkRecord>> list(const std::vector<std::string>& tenants,
                                          const std::string& name = {});
  // kNotFound when there is no such network.
  Status setState(const std::string& tenant, const std::string& name, NetworkState state,
                  const std::string& last_error = "");
  // Removes the network and its segment claim, and this host stops carrying it; idempotent.
  // kConflict while ports are on it.
  Status remove(const std::string& tenant, const std::string& name);
  Result<std::vector<int64_t>> segmentsInUse(const std::string& type);

 private:
  // Takes the network's segment in the cluster (a claim that a removed network left is taken
  // over); with 0, the lowest free one of `range`.
  Status claimSegment(NetworkRecord& network, std::pair<int64_t, int64_t> range);
  void releaseSegment(const NetworkRecord& network);
  // The lowest segment ids of `range`, at most `most`, that no network this store knows holds.
  Result<std::vector<int64_t>> freeSegments(const std::string& type,
                                            std::pair<int64_t, int64_t> range, size_t most);
  // carry() with the database locked.
  Status carryLocked(NetworkRecord& network);
  Result<std::vector<NetworkRecord>> select(const std::string& where,
                                            const std::vector<std::string>& args);

  Database& db_;
  TaskRepository& tasks_;
  std::unique_ptr<Mirror<NetworkRecord>> mirror_;
  std::unique_ptr<RecordTable> segments_;
  std::string host_;  // "" alone: every port is this host's
};

class PortRepository {
 public:
  explicit PortRepository(Database& db);
  ~PortRepository();

  // Makes the ports the cluster's; `host` is this host's name (its ports from before, host
  // "", are put in under it).
  void share(std::unique_ptr<RecordTable> table, const std::string& host);
  Replicated& replica();

  // Records a port of a VM of this host (port.host): fills ofport. kNotFound when its network
  // is not there, kConflict naming the address or MAC when taken.
  Status create(PortRecord& port);
  // Every port, ordered by vm and nic.
  Result<std::vector<PortRecord>> all();
  // The ports of one network (by uuid), ordered by vm and nic.
  Result<std::vector<PortRecord>> ofNetwork(const std::string& network_uuid);
  // The ports of one VM (by uuid), ordered by nic.
  Result<std::vector<PortRecord>> ofVm(const std::string& vm_uuid);
  Status remove(const std::string& uuid);  // idempotent
  // A VM's NIC unplugged: its port goes and the VM's later NICs' numbers move up one, so they
  // stay the indexes of the VM's spec. Idempotent, and a run cut short is finished by the next:
  // the VM's ports are numbered 0, 1, ... in their order whether or not the port was there.
  Status removeOfNic(const PortRecord& port);

 private:
  // The ports whose `column` (a column name of this file, never the caller's) is `value`;
  // all of them when column is null.
  Result<std::vector<PortRecord>> select(const char* column, const std::string& value);

  Database& db_;
  std::unique_ptr<Mirror<PortRecord>> mirror_;
  std::string host_;  // "" alone: every port is this host's
};

}  // namespace qiao
