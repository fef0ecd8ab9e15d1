#include "node/node_services.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/clock.h"
#include "base/crypto.h"
#include "base/event_bus.h"
#include "base/files.h"
#include "base/log.h"
#include "base/names.h"
#include "cluster/cluster_member.h"
#include "cluster/placement.h"
#include "cluster/record_table.h"
#include "firmware/descriptor.h"
#include "network/dhcp.h"
#include "network/fabric.h"
#include "network/flows.h"
#include "network/switch.h"
#include "node/api/api.h"
#include "node/api/metrics.h"
#include "node/api/routes.h"
#include "node/api/slots.h"
#include "node/forwarder.h"
#include "node/host/host.h"
#include "node/images/image_service.h"
#include "node/networks/network_service.h"
#include "node/networks/tunnel_peers.h"
#include "node/pki/cluster_crl.h"
#include "node/pki/pki.h"
#include "node/quotas/quota_service.h"
#include "node/state/replicator.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "node/vm/guest_monitors.h"
#include "node/vm/hypervisor.h"
#include "node/vm/qmp/libvirt_qmp_channel.h"
#include "node/vm/vm_service.h"
#include "node/volumes/volume_service.h"
#include "storage/rados_cluster.h"
#include "storage/volume_driver.h"

namespace qiao {
namespace {

const Logger kLog("qiaod");

// The volume backend the config asks for; with backend auto, Ceph when its conf exists.
// With Ceph, `ceph` is set to the process's one Ceph client, which the driver uses.
Result<std::unique_ptr<VolumeDriver>> makeVolumeDriver(const Config::Storage& storage,
                                                       const std::string& state_dir,
                                                       std::shared_ptr<LibradosCluster>* ceph) {
  bool rbd = storage.backend == "rbd" ||
             (storage.backend == "auto" && std::filesystem::exists(storage.ceph_conf));
  if (!rbd) return makeLocalDriver(storage.local_dir);
  RbdOptions options;
  options.conf = storage.ceph_conf;
  options.user = storage.ceph_user;
  options.keyring = storage.ceph_keyring;
  options.pool = storage.ceph_pool;
  options.op_timeout_s = storage.ceph_timeout_s;
  options.instance_file = state_dir + "/ceph-client";
  options.cluster = std::make_shared<LibradosCluster>(CephClientOptions{
      options.conf, options.user, options.keyring, options.op_timeout_s, options.instance_file});
  *ceph = options.cluster;
  return makeRbdDriver(options);
}

// This host's name in the cluster and in the VMs it holds: cluster.host, else the machine's.
std::string hostNameOf(const Config& config, const HostFacts& host) {
  return config.cluster.host.empty() ? host.hostname : config.cluster.host;
}

// Where the leader puts a new VM (cluster/placement.h): the hosts as membership sees them, loaded
// with the VMs the cluster's records put on them. A member that does not lead names the leader.
Result<std::pair<std::string, bool>> placeVm(ClusterMember& member, Store& store,
                                             const PlacementPolicy& policy,
                                             const PlacementRequest& request) {
  if (!member.leaderEpoch()) {
    auto leader = member.leader().current();
    if (!leader) return std::unexpected(leader.error());
    if (leader->member.empty()) {
      return makeError(ErrorCode::kUnavailable, "cluster",
                       "the cluster has no leader yet to place the VM; try again in a few seconds");
    }
    return std::pair{leader->member, false};
  }
  auto hosts = member.membership().list();
  if (!hosts) return std::unexpected(hosts.error());
  auto vms = store.vms().all();
  if (!vms) return std::unexpected(vms.error());
  std::map<std::string, HostLoad> loads;
  for (const auto& h : *hosts) {
    HostLoad& load = loads[h.record.name];
    load.name = h.record.name;
    load.arch = h.record.arch;
    load.ready = h.state == HostState::kReady && h.lease_held;
    load.vcpus = h.record.vcpus;
    load.memory_mib = h.record.memory_mib;
  }
  for (const auto& vm : *vms) {
    auto it = loads.find(vm.host);
    if (it == loads.end()) continue;
    auto spec = nlohmann::json::parse(vm.spec_json, nullptr, false);
    if (!spec.is_object()) continue;
    it->second.used_vcpus += std::max(spec.value("vcpus", 1), spec.value("max_vcpus", 0));
    it->second.used_memory_mib +=
        std::max(spec.value("memory_mib", int64_t{0}), spec.value("max_memory_mib", int64_t{0}));
  }
  std::vector<HostLoad> list;
  for (auto& [name, load] : loads) list.push_back(std::move(load));
  auto host = firstFit(std::move(list), request, policy);
  if (!host) return std::unexpected(host.error());
  return std::pair{*host, true};
}

// This host as a member of the cluster: its name, what it is, and where its API answers.
Result<ClusterMemberOptions> memberOptions(const Config& config, const HostFacts& host) {
  auto invalid = [](const std::string& message) {
    return makeError(ErrorCode::kInvalidArgument, "config", message);
  };
  ClusterMemberOptions o;
  o.pool.pool = config.cluster.pool;
  o.self.name = hostNameOf(config, host);
  if (!isDnsLabel(o.self.name)) {
    return invalid("this machine's host name \"" + o.self.name +
                   "\" is not a DNS label: set cluster.host");
  }
  o.self.arch = host.arch;
  o.self.vcpus = host.cores;
  o.self.memory_mib = host.memory_bytes >> 20;
  o.self.site = config.cluster.site;
  for (const auto& label : config.cluster.labels) {
    const auto eq = label.find('=');
    o.self.labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  o.self.endpoint = config.cluster.endpoint;
  o.self.tunnel_ip = config.network.tunnel_ip;
  if (o.self.endpoint.empty()) {
    const std::string& listen = config.api.listen.front();
    if (listen.ends_with(":0")) {
      return invalid("cluster.endpoint must be set when api.listen's first port is 0");
    }
    o.self.endpoint = "https://" + listen;
  }
  o.timing = LeaseTiming::forDuration(std::chrono::seconds(config.cluster.lease_s));
  if (auto ok = o.timing.validate(); !ok) return std::unexpected(ok.error());
  o.cookie = randomHex(8);
  return o;
}

// The cephx key of storage.ceph_user in a root-only file of the state directory, for QEMU's
// secret object (RBD disks): the key never appears on a command line.
Result<std::string> writeCephKeyFile(const Config& config) {
  std::string keyring = config.storage.ceph_keyring;
  if (keyring.empty()) keyring = "/etc/ceph/ceph.client." + config.storage.ceph_user + ".keyring";
  auto key = readCephKey(keyring, config.storage.ceph_user);
  if (!key) return std::unexpected(key.error());
  const std::string dir = config.state.dir + "/ceph";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  ::chmod(dir.c_str(), 0700);
  const std::string path = dir + "/client." + config.storage.ceph_user + ".key";
  if (auto written = writeFileAtomic(path, *key, 0600); !written) {
    return std::unexpected(written.error());
  }
  return path;
}

VmServiceOptions vmOptions(const Config& config, const std::string& cluster, const HostFacts& host,
                           const AccelProbe& probe, const AccelChoice& accel) {
  VmServiceOptions o;
  o.cluster = cluster;
  o.host = hostNameOf(config, host);
  o.console_dir = config.state.dir + "/console";
  o.nvram_dir = config.state.dir + "/nvram";
  o.seed_dir = config.state.dir + "/seeds";
  o.firmware = loadFirmwareDescriptors(defaultFirmwareDirs());
  for (const auto& warning : o.firmware.warnings) {
    kLog.warn("firmware descriptor skipped", {{"warning", warning}});
  }
  o.host_accelerator = accel.accelerator;
  o.kvm_usable = probe.kvm_usable;
  o.kvm_reason = probe.reason;
  o.machine_x86_64 = config.vm.machine_x86_64;
  o.machine_aarch64 = config.vm.machine_aarch64;
  o.cpu_model_aarch64_tcg = config.vm.cpu_model_aarch64_tcg;
  o.shutdown_timeout_s = config.vm.shutdown_timeout_s;
  o.dependency_timeout_s = config.vm.dependency_timeout_s;
  o.console_log_max_bytes = config.vm.console_log_max_bytes;
  return o;
}

}  // namespace

Result<std::shared_ptr<RadosCluster>> shareIdentities(Store& store, const Config& config) {
  if (config.cluster.mode != "member") return std::shared_ptr<RadosCluster>{};
  const auto& storage = config.storage;
  // No instance file: this short-lived client must not blocklist the daemon's.
  auto rados = std::make_shared<LibradosCluster>(CephClientOptions{
      storage.ceph_conf, storage.ceph_user, storage.ceph_keyring, storage.ceph_timeout_s, ""});
  if (auto connected = rados->ping(); !connected) {
    Error e = connected.error();
    e.message = "a cluster member changes identities in the cluster, whose Ceph it cannot reach: " +
                e.message;
    return std::unexpected(e);
  }
  ClusterPool pool;
  pool.pool = config.cluster.pool;
  store.bindings().share(std::make_unique<RecordTable>(*rados, pool.table("bindings")));
  return std::shared_ptr<RadosCluster>(std::move(rados));
}

std::string dbPath(const Config& config) { return config.state.dir + "/qiao.db"; }

AuditServiceOptions auditOptions(const Config& config) {
  AuditServiceOptions options;
  options.export_dir =
      config.audit.export_dir.empty() ? config.state.dir + "/audit" : config.audit.export_dir;
  options.segment_entries = config.audit.segment_entries;
  options.rotate_check = std::chrono::seconds(config.audit.rotate_check_s);
  if (!config.audit.syslog.empty()) {
    ShipperOptions ship;
    ship.destination = config.audit.syslog;
    ship.ca_file = config.audit.syslog_ca_file;
    const PkiPaths pki{config.pki.dir};
    ship.cert_file =
        config.audit.syslog_cert_file.empty() ? pki.nodeCert() : config.audit.syslog_cert_file;
    ship.key_file =
        config.audit.syslog_key_file.empty() ? pki.nodeKey() : config.audit.syslog_key_file;
    ship.confirm = std::chrono::seconds(config.audit.syslog_confirm_s);
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    ship.hostname = host;
    options.syslog = ship;
  }
  return options;
}

// Members in construction order: destroyed in reverse, each before what it uses.
struct NodeServices::Parts {
  LogSink* log = &LogSink::process();
  std::unique_ptr<Failpoints> failpoints;
  std::string cluster;
  std::unique_ptr<Store> store;
  HostFacts host;
  AccelProbe probe;
  AccelChoice accel;
  std::unique_ptr<Hypervisor> hypervisor;
  EventBus events;
  std::unique_ptr<TaskEngine> tasks;
  std::unique_ptr<VolumeDriver> volume_driver;
  // Connects to Ceph in the background (it may come up after qiaod): that also fences the
  // Ceph client of a previous qiaod that died, before any task touches a volume it held.
  std::jthread storage_warmup;
  // Every running VM's kept monitor on one libvirt connection and a few workers.
  std::unique_ptr<LibvirtQmpConnection> monitors;
  std::unique_ptr<GuestMonitors> guests;
  VmServiceOptions vm_options;
  std::unique_ptr<VolumeService> volumes;
  VolumeLimits volume_limits;
  ImageServiceOptions image_options;
  std::unique_ptr<ImageService> images;
  std::unique_ptr<Switch> ovs;
  std::unique_ptr<FlowInstaller> flows;
  std::unique_ptr<DhcpServers> dhcp;
  std::unique_ptr<Fabric> fabric;
  std::unique_ptr<NetworkService> networks;
  NoNetworks no_networks;  // the VMs' ports when networks are off
  std::unique_ptr<VmService> vms;
  Metrics metrics;
  SpecLimits limits;
  std::unique_ptr<QuotaService> quotas;
  std::unique_ptr<AuditService> audit;
  std::unique_ptr<Api> api;
  // The process's Ceph client (with the rbd backend), shared by the volume driver and the
  // cluster member.
  std::shared_ptr<RadosCluster> rados;
  std::unique_ptr<ClusterMember> member;  // cluster.mode member
  std::unique_ptr<Forwarder> forwarder;   // a member's calls to the other members
  // A member's cache of the cluster's records (the store's mirrored kinds) kept current.
  std::unique_ptr<Replicator> replicator;
  std::unique_ptr<TunnelPeers> tunnel_peers;  // a member's, with networks and a tunnel_ip
  std::unique_ptr<ClusterCrl> crl;            // cluster.mode member
  bool started = false;
  bool stopped = false;
};

NodeServices::NodeServices() : p_(std::make_unique<Parts>()) {}

NodeServices::~NodeServices() { stop(); }

Api& NodeServices::api() { return *p_->api; }
Store& NodeServices::store() { return *p_->store; }
Failpoints& NodeServices::failpoints() { return *p_->failpoints; }
EventBus& NodeServices::events() { return p_->events; }
const std::string& NodeServices::cluster() const { return p_->cluster; }
const std::string& NodeServices::uploadDir() const { return p_->image_options.work_dir; }
TaskEngine& NodeServices::tasks() { return *p_->tasks; }
VmService& NodeServices::vms() { return *p_->vms; }
VolumeService& NodeServices::volumes() { return *p_->volumes; }
ImageService& NodeServices::images() { return *p_->images; }
NetworkService* NodeServices::networks() { return p_->networks.get(); }

Result<std::unique_ptr<NodeServices>> NodeServices::build(const Config& config, NodeParts parts) {
  std::unique_ptr<NodeServices> node(new NodeServices());
  Parts& p = *node->p_;
  if (parts.log != nullptr) p.log = parts.log;
  // The threads the services start keep the node's sink (base/log.h).
  LogScope log_scope(*p.log);
  p.failpoints = parts.failpoints ? std::move(parts.failpoints)
                                  : std::make_unique<Failpoints>(Failpoints::fromEnvironment());

  auto cluster = readClusterName(config.pki.dir);
  if (!cluster) {
    Error e = cluster.error();
    e.message += " (run `qiaod pki init --cluster NAME --dir " + config.pki.dir + "` first)";
    return std::unexpected(e);
  }
  p.cluster = *cluster;
  std::error_code ec;
  std::filesystem::create_directories(config.state.dir, ec);
  auto store = Store::open(dbPath(config));
  if (!store) return std::unexpected(store.error());
  p.store = std::move(*store);

  p.host = parts.host ? *parts.host : readHostFacts();
  if (config.vm.accelerator != "tcg") {
    p.probe = probeKvm(p.host.arch, 15000, config.vm.kvm_probe_kernel);
  } else {
    p.probe.reason = "not probed: vm.accelerator is tcg";
  }
  auto accel = chooseAccelerator(config.vm.accelerator, p.probe);
  if (!accel) return std::unexpected(accel.error());
  p.accel = *accel;
  kLog.info("accelerator chosen",
            {{"accelerator", p.accel.accelerator}, {"reason", p.accel.reason}});

  LibvirtOptions libvirt_options;
  libvirt_options.uri = config.libvirt.uri;
  libvirt_options.keepalive_interval_s = config.libvirt.keepalive_interval_s;
  p.hypervisor =
      parts.hypervisor ? std::move(parts.hypervisor) : makeLibvirtHypervisor(libvirt_options);
  p.tasks = std::make_unique<TaskEngine>(p.store->tasks(), p.events,
                                         static_cast<size_t>(config.libvirt.workers),
                                         /*max_attempts=*/3, *p.failpoints);

  if (parts.volume_driver) {
    p.volume_driver = std::move(parts.volume_driver);
    p.rados = std::move(parts.rados);
  } else {
    std::shared_ptr<LibradosCluster> ceph;
    auto driver = makeVolumeDriver(config.storage, config.state.dir, &ceph);
    p.rados = std::move(ceph);
    if (!driver) return std::unexpected(driver.error());
    p.volume_driver = std::move(*driver);
  }
  const bool rbd = p.volume_driver->backend() == "rbd";
  kLog.info("volumes", {{"backend", std::string(p.volume_driver->backend())},
                        {"location", p.volume_driver->location()}});
  p.storage_warmup = std::jthread(withLogScope([driver = p.volume_driver.get()] {
    if (auto ping = driver->ping(); !ping) {
      kLog.warn("volume backend not reachable yet", {{"error", ping.error().describe()}});
    }
  }));

  // A guest's QMP monitor through libvirt, for what libvirt has no API for (Qiao's RBD disks).
  LibvirtQmpConnectionOptions monitor_options;
  monitor_options.uri = libvirt_options.uri;
  p.monitors = std::make_unique<LibvirtQmpConnection>(std::move(monitor_options));
  p.guests = std::make_unique<GuestMonitors>(
      *p.store, *p.hypervisor,
      [monitors =
           p.monitors.get()](const std::string& domain) -> Result<std::shared_ptr<QmpChannel>> {
        return std::shared_ptr<QmpChannel>(monitors->channel(domain));
      });
  p.vm_options = vmOptions(config, p.cluster, p.host, p.probe, p.accel);
  if (rbd) {
    auto key_file = writeCephKeyFile(config);
    if (!key_file) return std::unexpected(key_file.error());
    p.vm_options.ceph_key_file = *key_file;
  }
  StorageDaemonOptions daemons;
  daemons.dir = config.state.dir + "/jobs";
  daemons.ceph_key_file = p.vm_options.ceph_key_file;
  p.volumes = std::make_unique<VolumeService>(*p.store, *p.volume_driver, *p.tasks, p.events,
                                              *p.guests, std::move(daemons));
  p.volume_limits.max_size_gib = config.storage.max_volume_gib;
  if (rbd) {
    p.volume_limits.pool = config.storage.ceph_pool;
    p.volume_limits.other_pools = config.storage.ceph_other_pools;
  }
  p.image_options.work_dir = config.state.dir + "/images";
  p.image_options.probe.max_virtual_size = config.images.max_virtual_gib << 30;
  p.image_options.convert.cpu_seconds = config.images.convert_cpu_seconds;
  p.image_options.convert.memory_bytes = config.images.convert_memory_mib << 20;
  p.image_options.ceph_key_file = p.vm_options.ceph_key_file;
  p.images = std::make_unique<ImageService>(p.image_options, *p.store, *p.volume_driver, *p.tasks,
                                            p.events);

  // Tenant networks, when Open vSwitch is here (or required). OVS may start after qiaod: the
  // fabric's check loop programs it once it answers.
  const bool with_networks =
      parts.ovs || config.network.mode == "ovs" ||
      (config.network.mode == "auto" && std::filesystem::exists(config.network.ovsdb_socket));
  if (with_networks) {
    FabricOptions fabric_options;
    Switch* ovsdb = nullptr;
    FlowInstaller* flows = nullptr;
    if (parts.ovs) {
      ovsdb = parts.ovs->ovsdb;
      flows = parts.ovs->flows;
      fabric_options.taps = parts.ovs->taps;
    } else {
      SwitchOptions switch_options;
      switch_options.socket = config.network.ovsdb_socket;
      switch_options.timeout_ms = config.network.ovs_timeout_ms;
      p.ovs = makeOvsdbSwitch(switch_options);
      OfctlOptions ofctl_options;
      ofctl_options.timeout_ms = config.network.ovs_timeout_ms;
      p.flows = makeOfctlInstaller(ofctl_options);
      ovsdb = p.ovs.get();
      flows = p.flows.get();
    }
    p.dhcp = std::make_unique<DhcpServers>(config.network.run_dir);
    fabric_options.bridge = config.network.bridge;
    fabric_options.datapath_type = config.network.datapath_type;
    fabric_options.check_interval_ms = config.network.check_interval_ms;
    fabric_options.vlan_uplink = config.network.vlan_uplink;
    fabric_options.vlan_bridge = config.network.vlan_bridge;
    fabric_options.tunnel_ip = config.network.tunnel_ip;
    fabric_options.tunnel_peers = config.network.tunnel_peers;
    // A member's peers are the other members (TunnelPeers, below).
    fabric_options.dynamic_tunnel_peers =
        config.cluster.mode == "member" && !config.network.tunnel_ip.empty();
    p.fabric = std::make_unique<Fabric>(fabric_options, *ovsdb, *flows, *p.dhcp);
    p.networks = std::make_unique<NetworkService>(*p.store, *p.fabric, *p.tasks, p.events,
                                                  p.vm_options.host);
  }
  kLog.info("networks", {{"mode", with_networks ? "ovs" : "off"},
                         {"bridge", config.network.bridge},
                         {"tunnel_peers", std::to_string(config.network.tunnel_peers.size())}});
  p.vms = std::make_unique<VmService>(
      p.vm_options, *p.store, *p.hypervisor, p.events, *p.tasks, *p.guests, *p.volumes,
      p.networks ? static_cast<VmPorts&>(*p.networks) : static_cast<VmPorts&>(p.no_networks));

  p.limits.host_arch = p.host.arch;
  p.limits.max_vcpus = config.vm.max_vcpus;
  p.limits.max_memory_mib = config.vm.max_memory_mib;
  p.limits.host_cores = p.host.cores;
  p.limits.host_memory_mib = p.host.memory_bytes >> 20;
  p.limits.cpu_overcommit_percent = config.vm.cpu_overcommit_percent;
  p.limits.memory_overcommit_percent = config.vm.memory_overcommit_percent;
  p.quotas = std::make_unique<QuotaService>(
      *p.store, QuotaFigures{{"vms", config.quota.vms},
                             {"vcpus", config.quota.vcpus},
                             {"memory_mib", config.quota.memory_mib},
                             {"volume_gib", config.quota.volume_gib},
                             {"images", config.quota.images},
                             {"networks", config.quota.networks},
                             {"uploads", config.images.max_parallel_uploads}});
  auto audit = AuditService::create(*p.store, auditOptions(config));
  if (!audit) return std::unexpected(audit.error());
  p.audit = std::move(*audit);
  if (config.cluster.mode == "member") {
    if (!p.rados) {
      return makeError(ErrorCode::kInvalidArgument, "config",
                       "cluster.mode member needs Ceph (storage.backend rbd, or auto with "
                       "storage.ceph_conf present)");
    }
    auto options = memberOptions(config, p.host);
    if (!options) return std::unexpected(options.error());
    ClusterCrlOptions crl{options->pool, config.pki.dir, options->self.name,
                          Identity{p.cluster, IdentityKind::kNode, options->self.name}.uri()};
    const ClusterPool pool = options->pool;
    p.member = std::make_unique<ClusterMember>(*p.rados, std::move(*options), systemClock());
    p.crl = std::make_unique<ClusterCrl>(*p.rados, std::move(crl), systemClock());
    // The cluster's records: written through to RADOS, read from the store's cache.
    const std::string& self = p.member->self().name;
    auto table = [&](std::string_view kind) {
      return std::make_unique<RecordTable>(*p.rados, pool.table(kind));
    };
    p.store->vms().share(table("vms"), self);
    p.store->bindings().share(table("bindings"));
    p.store->networks().share(table("networks"), table("segments"), self);
    p.store->ports().share(table("ports"), self);
    p.store->groups().share(table("groups"));
    p.store->volumes().share(table("volumes"));
    p.store->images().share(table("images"));
    p.store->quotas().share(table("quotas"));
    std::vector<Replicated*> kinds{&p.store->vms().replica(),      &p.store->bindings().replica(),
                                   &p.store->networks().replica(), &p.store->ports().replica(),
                                   &p.store->groups().replica(),   &p.store->volumes().replica(),
                                   &p.store->images().replica(),   &p.store->quotas().replica()};
    if (p.networks) {
      // What other members change in them reaches this host's flows.
      for (Replicated* kind : {kinds[2], kinds[3], kinds[4]}) {
        kind->onChange([networks = p.networks.get()] {
          if (auto synced = networks->syncCluster(); !synced) {
            kLog.warn("networks follow the cluster at the next change",
                      {{"error", synced.error().describe()}});
          }
        });
      }
    }
    p.replicator = std::make_unique<Replicator>(*p.rados, std::move(kinds), systemClock());
    const PkiPaths pki{config.pki.dir};
    p.forwarder = std::make_unique<Forwarder>(
        p.member->membership(), ForwarderOptions{pki.caCert(), pki.nodeCert(), pki.nodeKey()});
    kLog.info("cluster member", {{"host", p.member->self().name},
                                 {"pool", config.cluster.pool},
                                 {"lease_s", std::to_string(config.cluster.lease_s)}});
    if (p.fabric && !config.network.tunnel_ip.empty()) {
      p.tunnel_peers = std::make_unique<TunnelPeers>(
          *p.rados, p.member->membership().table(), *p.fabric,
          TunnelPeersOptions{p.member->self().name, config.network.tunnel_ip});
    }
  }
  // Each module registers its routes with the services it uses; the Api serves the table.
  RouteTable routes;
  {
    ClusterRouteFacts cluster_facts{p.cluster,
                                    p.host.hostname,
                                    p.host.arch,
                                    p.host.cores,
                                    static_cast<int64_t>(p.host.memory_bytes >> 20),
                                    config.pki.dir};
    cluster_facts.baseline_file = config.host.baseline_file;
    cluster_facts.ceph_conf = config.storage.ceph_conf;
    cluster_facts.rbd_pools.push_back(config.storage.ceph_pool);
    for (const auto& pool : config.storage.ceph_other_pools) {
      cluster_facts.rbd_pools.push_back(pool);
    }
    cluster_facts.cluster_pool = config.cluster.pool;
    cluster_facts.bind_node = [store = p.store.get()](const std::string& identity,
                                                      const std::string& serial) {
      Binding binding;
      binding.identity = identity;
      binding.role = "admin";
      binding.serial = serial;
      return store->bindings().put(binding);
    };
    addClusterRoutes(routes, p.member.get(), p.crl.get(), std::move(cluster_facts));
  }
  addHostRoutes(routes, *p.vms, *p.hypervisor,
                {p.cluster, p.host, p.accel.accelerator, p.accel.reason, QIAO_VERSION,
                 p.vm_options.firmware, config.host.baseline_file});
  addMetricsRoutes(routes, *p.store, *p.vms, p.metrics);
  VmRouting vm_routing;
  vm_routing.self = hostNameOf(config, p.host);
  if (p.member) {
    const PlacementPolicy policy{config.vm.cpu_overcommit_percent,
                                 config.vm.memory_overcommit_percent};
    vm_routing.place = [member = p.member.get(), store = p.store.get(),
                        policy](const PlacementRequest& request) {
      return placeVm(*member, *store, policy, request);
    };
  }
  addVmRoutes(routes, *p.store, *p.vms, *p.quotas, p.limits, config.vm.console_log_max_bytes,
              std::move(vm_routing));
  addVolumeRoutes(routes, *p.store, *p.volumes, *p.quotas, p.volume_limits);
  addNetworkRoutes(routes, *p.store, p.networks.get(), *p.quotas);
  addGroupRoutes(routes, *p.store, p.networks.get());
  addImageRoutes(routes, *p.store, *p.images, *p.quotas);
  // Uploads in progress: held by the uploads module, reported by the quotas module.
  auto uploads = std::make_shared<Slots>();
  addUploadRoutes(routes, *p.store, *p.images, *p.quotas, uploads,
                  {p.image_options.work_dir, config.images.upload_reserve_mib << 20,
                   config.images.max_parallel_uploads});
  ClusterCalls cluster_calls;
  if (p.forwarder) {
    // The hosts table alone (one read; their leases are the forwarder's to check).
    cluster_calls.others = [member = p.member.get()] {
      std::vector<std::string> names;
      if (auto hosts = member->membership().table().readAll()) {
        for (const auto& [name, text] : hosts->entries) {
          auto record = hostFromJson(text);
          if (record && name != member->self().name && record->state != HostState::kRemoved) {
            names.push_back(name);
          }
        }
      }
      return names;
    };
    cluster_calls.forward = [forwarder = p.forwarder.get()](const std::string& host,
                                                            const RequestContext& ctx) {
      return forwarder->forward(host, ctx);
    };
  }
  addTaskRoutes(routes, *p.store, *p.tasks, cluster_calls);
  addEventRoutes(routes, {config.api.max_event_streams, config.api.max_event_streams_per_identity,
                          config.api.admin_reserved_event_streams});
  addQuotaRoutes(routes, *p.quotas, uploads);
  ApiOptions api_options{*p.store, p.metrics, p.cluster, config.api.audit_summary_interval_s};
  api_options.forward = cluster_calls.forward;
  p.api = std::make_unique<Api>(std::move(api_options), std::move(routes));
  return node;
}

void NodeServices::start() {
  Parts& p = *p_;
  if (p.started) return;
  p.started = true;
  LogScope log_scope(*p.log);
  if (p.member) {
    p.member->start();
    // The cache first: the VMs' reconciliation below must see the cluster's records.
    if (auto synced = p.replicator->syncNow(); !synced) {
      kLog.warn("starting with the cached cluster records", {{"error", synced.error().message}});
    }
    p.replicator->start();
  }
  if (p.crl) p.crl->start();
  p.images->sweep();
  if (p.networks) p.networks->start();
  if (p.tunnel_peers) p.tunnel_peers->start();
  // Every family of tasks exists now: they are resumed once the VMs are reconciled.
  p.vms->start([tasks = p.tasks.get()] {
    tasks->resumeUnfinished();
    // What an operator (and bench_host_scale) takes as "up": VMs known, tasks going again.
    kLog.info("ready: the VMs are reconciled with libvirt and unfinished tasks resumed");
  });
  p.audit->start();
}

void NodeServices::waitIdle() { p_->vms->waitIdle(); }

void NodeServices::stop() {
  Parts& p = *p_;
  if (p.stopped) return;
  p.stopped = true;
  LogScope log_scope(*p.log);
  if (p.api) p.api->flushAudit(true);
  // The leadership is handed over first; the host lease lapses by itself (cluster_member.h).
  if (p.member) p.member->stop();
  if (p.replicator) p.replicator->stop();
  if (p.tunnel_peers) p.tunnel_peers->stop();
  if (p.crl) p.crl->stop();
  if (p.vms) p.vms->stop();
  if (p.tasks) p.tasks->stop();
  if (p.volumes) p.volumes->stop();
  if (p.guests) p.guests->stop();
  if (p.monitors) p.monitors->stop();
  if (p.networks) p.networks->stop();
  if (p.audit) p.audit->stop();
  if (p.hypervisor) p.hypervisor->stop();
}

}  // namespace qiao
