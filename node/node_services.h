// NodeServices: the composition root. Every service of the node is built here from the
// configuration, in dependency order, each given what it uses in its constructor; start()
// brings them up (networks, then the VMs' reconciliation, then the resumption of every
// family's unfinished tasks, once every family exists) and stop() takes them down in reverse.
// main.cc is argument handling, logging, signals and the HTTPS server around it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/config.h"
#include "base/error.h"
#include "base/failpoint.h"
#include "base/log.h"
#include "network/fabric.h"
#include "node/audit/audit_service.h"
#include "node/host/host.h"

namespace qiao {

class Api;
class RadosCluster;
class Store;
class TaskEngine;
class VmService;
class VolumeService;
class ImageService;
class NetworkService;
class Switch;
class FlowInstaller;
template <typename E>
class Broadcaster;
struct Event;
using EventBus = Broadcaster<Event>;

// What the node gets from outside the process, replaceable (null: the real one from the
// configuration).
struct NodeParts {
  std::unique_ptr<class Hypervisor> hypervisor;
  std::unique_ptr<class VolumeDriver> volume_driver;
  // With volume_driver: the Ceph client a cluster member uses (MemoryCeph's, say).
  std::shared_ptr<class RadosCluster> rados;
  std::optional<HostFacts> host;  // this machine's (readHostFacts) when not given
  // The node's failpoints; null: QIAO_FAILPOINT's, and a hit kills the process.
  std::unique_ptr<Failpoints> failpoints;
  // Where the node's lines go (the caller keeps it alive longer than the node); null: the
  // process's sink, unnamed. A test with two nodes gives each a named one (base/log.h).
  LogSink* log = nullptr;
  // Open vSwitch as the tenant networks use it - its database, its flow tables and the host's
  // tap devices - instead of the real one of network.mode (unit tests: in-memory doubles).
  // Not owned: like OVS itself they outlive the node, and a node built anew finds them as the
  // last one left them. Given, the node has networks.
  struct Ovs {
    Switch* ovsdb = nullptr;
    FlowInstaller* flows = nullptr;
    TapOps taps;
  };
  std::optional<Ovs> ovs;
};

class NodeServices {
 public:
  // Fails with what the operator must fix (no PKI, a store that cannot be opened, an
  // accelerator that cannot be had, a bad syslog destination, an unreadable Ceph key).
  static Result<std::unique_ptr<NodeServices>> build(const Config& config, NodeParts parts = {});
  ~NodeServices();  // stop()
  NodeServices(const NodeServices&) = delete;
  NodeServices& operator=(const NodeServices&) = delete;

  void start();
  // Blocks until the VM service's queue and the task workers are idle (tests).
  void waitIdle();
  // The reverse of start and build: the VM service's events and control queue, the task
  // workers, the storage daemons' and the guests' QMP monitors, networks, the audit upkeep,
  // the hypervisor's connection. Idempotent.
  void stop();

  Api& api();
  Store& store();
  Failpoints& failpoints();
  EventBus& events();
  const std::string& cluster() const;
  const std::string& uploadDir() const;  // where image uploads are streamed to
  // The services as built, for the unit tests that drive one of them (tests/unit/node/
  // service_fixture.h).
  TaskEngine& tasks();
  VmService& vms();
  VolumeService& volumes();
  ImageService& images();
  NetworkService* networks();  // null on a node without networks

 private:
  struct Parts;
  NodeServices();
  std::unique_ptr<Parts> p_;
};

// The database file of a configuration: <state.dir>/qiao.db.
std::string dbPath(const Config& config);
// For a command that changes identities in the store (`qiaod pki issue`) on a cluster member:
// connects to Ceph as the member does and makes the store's bindings the cluster's, so that the
// change is the cluster's (and survives the daemon's next refresh of its cache). Nothing on a
// standalone node. The returned client must outlive the store's use.
Result<std::shared_ptr<RadosCluster>> shareIdentities(Store& store, const Config& config);
// The audit log's upkeep as configured: where segments go, and the syslog destination.
AuditServiceOptions auditOptions(const Config& config);

}  // namespace qiao
