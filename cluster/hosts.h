// The cluster's hosts: one record per host in the "hosts" table (what it is: arch, capacity,
// site, labels, the endpoint its API answers on, the state an admin or the join flow gave it)
// and a lease on its own host object (whether it is alive: it still reaches Ceph). A host's
// state as shown is the stored one, except that a ready host whose lease has lapsed is
// unreachable. docs/operators/cluster.md "Hosts and their states".
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/enum_names.h"
#include "base/error.h"
#include "cluster/cluster_pool.h"
#include "cluster/record_table.h"
#include "storage/rados_cluster.h"

namespace qiao {

// joining: enrolled, not yet checked and running; ready: takes VMs; unreachable: its lease
// lapsed (shown, never stored); maintenance: an admin drains it; fenced: cut off from Ceph by
// the leader (the HA issue); removed: gone from the cluster.
enum class HostState { kJoining, kReady, kUnreachable, kMaintenance, kFenced, kRemoved };

template <>
struct EnumNames<HostState> {
  static constexpr std::array<std::pair<HostState, std::string_view>, 6> kNames{{
      {HostState::kJoining, "joining"},
      {HostState::kReady, "ready"},
      {HostState::kUnreachable, "unreachable"},
      {HostState::kMaintenance, "maintenance"},
      {HostState::kFenced, "fenced"},
      {HostState::kRemoved, "removed"},
  }};
};

struct HostRecord {
  std::string name;
  HostState state = HostState::kJoining;
  std::string arch;  // "x86_64" | "aarch64"
  int vcpus = 0;
  int64_t memory_mib = 0;
  std::string site;
  std::map<std::string, std::string> labels;
  std::string endpoint;  // "https://ADDRESS:PORT" of its API
  std::string joined_at;
  // Its address on the underlay network (network.tunnel_ip; "" = none): the other members
  // tunnel their vxlan and geneve networks to it. Absent from records of older qiaods.
  std::string tunnel_ip;
};

std::string hostToJson(const HostRecord& host);
// kInternal naming the field when the stored text is not a host record.
Result<HostRecord> hostFromJson(const std::string& text);

// A host as the cluster sees it now.
struct HostStatus {
  HostRecord record;
  HostState state = HostState::kJoining;  // the stored state, or unreachable
  bool lease_held = false;
  std::string lease_holder;           // the Ceph client address holding it
  std::optional<double> lease_age_s;  // seconds since its last renewal
};

class Membership {
 public:
  Membership(RadosCluster& rados, ClusterPool pool, Clock& clock);

  // Adds this host's record, or refreshes what it says of itself (arch, capacity, endpoint,
  // site, labels, tunnel address) keeping its state. kConflict when the host was removed: it must
  // be enrolled again.
  Result<HostRecord> registerSelf(const HostRecord& self);
  // The host lease's object and lock name (cluster/lease.h holds it).
  RadosObject leaseObject(const std::string& host) const { return pool_.hostLease(host); }
  static constexpr char kLeaseName[] = "lease";
  // Writes the time of a successful renewal next to the lease (for the lease age).
  Status noteRenewal(const std::string& host);

  Result<std::vector<HostStatus>> list();
  // kNotFound when no such host.
  Result<HostStatus> get(const std::string& name);
  // Sets a stored state (maintenance, ready, fenced, removed). `epoch`: the leader's. With
  // `only_from`, kConflict unless the host is in that state now.
  Status setState(const std::string& name, HostState state, std::optional<uint64_t> epoch,
                  std::optional<HostState> only_from = std::nullopt);

  RecordTable& table() { return table_; }

 private:
  Result<HostStatus> statusOf(HostRecord record);

  RadosCluster& rados_;
  const ClusterPool pool_;
  Clock& clock_;
  RecordTable table_;
};

}  // namespace qiao
