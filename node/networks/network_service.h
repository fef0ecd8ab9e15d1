// NetworkService: the tenant networks of one node and the ports of its VMs' NICs. The API
// validates and records a network with its task; the task's step programs the fabric (DHCP
// server, flows). A VM's NICs are plugged by a step of the VM's own tasks: each NIC gets a
// port (address from the network's IPAM, or the fixed one asked for, checked against the
// subnet and for duplicates; a MAC; a tap; an OpenFlow port number), recorded before the
// fabric plugs it, so a daemon killed half way finds it and finishes. At start, the fabric is
// loaded from the store and its check loop keeps OVS matching it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/event_bus.h"
#include "network/fabric.h"
#include "network/ipam.h"
#include "network/nic.h"
#include "node/networks/network_spec.h"
#include "node/networks/vm_ports.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"

namespace qiao {

// On a cluster member the networks, ports and groups are the cluster's (the store's
// repositories share them): a network is carried by the hosts that need it - the one that made
// it, and each host where a VM gets a NIC on it (its DHCP server and flows there) - and a host
// drops it when the cluster removed it. syncCluster() follows what other members changed.
class NetworkService final : public VmPorts {
 public:
  // `host` is this host's name (its ports are the ones with it).
  NetworkService(Store& store, Fabric& fabric, TaskEngine& tasks, EventBus& events,
                 std::string host = "");

  // Loads the fabric with every ready network this host carries and every port of its VMs,
  // and starts its check loop.
  void start();
  void stop();
  // Brings the fabric in line with the cluster's records as the store has them now: every
  // group, the other hosts' ports (members of groups), the networks the cluster removed.
  Status syncCluster();

  // Networks whose type reaches other hosts (Fabric::reachesOtherHosts) need a segment id that
  // means the same network on every host: a cluster member takes one from the cluster's one
  // allocator (or the one an admin gives); a host alone needs it given by an admin (400
  // without one, 403 for other roles), since other hosts allocate their own.
  Result<TaskRecord> create(const NetworkSpec& spec, const std::string& identity,
                            bool by_admin = true);
  // kConflict naming the VMs while ports are on it.
  Result<TaskRecord> remove(const NetworkRecord& network, const std::string& identity);

  // VmPorts (vm_ports.h says what each does).
  Status checkNics(const std::string& tenant, const std::vector<NicRequest>& nics,
                   bool creating_ok = false) override;
  Result<std::string> awaitedNetworks(const std::string& tenant,
                                      const std::vector<NicRequest>& nics) override;
  Status plugVm(const std::string& tenant, const std::string& vm_uuid, const std::string& vm_name,
                const std::vector<NicRequest>& nics) override;
  Status unplugVm(const std::string& vm_uuid) override;
  Status unplugNic(const PortRecord& port) override;
  Result<std::vector<NicDef>> nicsOf(const std::string& vm_uuid) override;

  // Security groups: each change replaces the flows of every port in the group, in one
  // bundle. The tenant's "default" group (all egress; ingress from its own members) is made
  // when first used.
  Result<SecurityGroupRecord> createGroup(const SecurityGroupSpec& spec);
  Result<SecurityGroupRecord> replaceRules(const SecurityGroupRecord& group,
                                           const std::vector<FlowRule>& rules);
  // kConflict while a port uses it.
  Status deleteGroup(const SecurityGroupRecord& group);

  Fabric& fabric() { return fabric_; }
  static std::string taskTarget(const std::string& name) { return "network/" + name; }
  static NetworkDef defOf(const NetworkRecord& network);

 private:
  Status runTask(TaskEngine::Run& run);
  void giveUp(TaskEngine::Run& run);
  Status runCreate(TaskEngine::Run& run, NetworkRecord network);
  Status runRemove(TaskEngine::Run& run, NetworkRecord network);
  Result<PortRecord> makePort(const NetworkRecord& network, const std::string& vm_uuid,
                              const std::string& vm_name, int64_t nic, const NicRequest& request);
  Status checkNotInUse(const NetworkRecord& network);
  // The tenant's default group in the store (made when missing); ensure also installs it.
  Status storeDefaultGroup(const std::string& tenant);
  Status ensureDefaultGroup(const std::string& tenant);
  // A rule's remote_group names a group of the tenant (itself and "default" always do).
  Status checkRemoteGroups(const std::string& tenant, const std::string& group,
                           const std::vector<FlowRule>& rules);
  // Every group of every tenant to the fabric (kUnavailable: applied when OVS is back).
  Status pushGroups();
  Result<std::vector<FlowGroup>> allGroups();
  void publish(const NetworkRecord& network, std::string_view reason);
  bool isMine(const PortRecord& port) const { return port.host.empty() || port.host == host_; }
  // The network carried here (its DHCP server and flows), for a NIC of a VM of this host.
  Status ensureCarried(NetworkRecord& network);

  Store& store_;
  Fabric& fabric_;
  TaskEngine& tasks_;
  EventBus& events_;
  const std::string host_;
  std::atomic<bool> started_{false};  // syncCluster() waits for start()'s load
  std::mutex create_mutex_;           // subnet-overlap and segment checks are check-then-insert
  std::mutex groups_mutex_;           // pushGroups: read and install as one
};

}  // namespace qiao
