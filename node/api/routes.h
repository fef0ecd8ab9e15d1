// The node API's route modules: each owns the routes of one resource and registers them in
// the RouteTable with the services it uses, and no others. The composition root
// (node_services.cc) calls them; a cluster module adds its routes the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "cluster/placement.h"
#include "firmware/descriptor.h"
#include "node/api/router.h"
#include "node/host/host.h"
#include "node/vm/spec.h"
#include "node/volumes/volume_service.h"

namespace qiao {

class ClusterMember;
class ClusterCrl;
class Store;
class TaskEngine;
class VmService;
class Hypervisor;
class ImageService;
class NetworkService;
class QuotaService;
class Metrics;
class Slots;
struct ImageRecord;
struct RequestContext;

// GET /v1/healthz, /v1/host, /v1/host/firmware, /v1/host/check: what this host is.
struct HostRouteFacts {
  std::string cluster;
  HostFacts host;
  std::string accelerator;  // "kvm" | "tcg"
  std::string accelerator_reason;
  std::string version;
  FirmwareCatalog firmware;   // read at start from QEMU's descriptor directories
  std::string baseline_file;  // the cluster's host baseline (host.baseline_file)
};
void addHostRoutes(RouteTable& routes, VmService& vms, Hypervisor& hypervisor,
                   HostRouteFacts facts);

// GET /v1/hosts, /v1/hosts/{name}, /v1/cluster: the cluster's hosts and its leader; the open
// enrollment routes GET /v1/cluster/ca and POST /v1/cluster/join (no client certificate); POST
// /v1/cluster/tokens (join tokens) and DELETE /v1/hosts/{name} (remove a host: its VMs first,
// then its certificate revoked through `crl`, its Ceph user deleted, its record removed).
// `member` and `crl` are null on a standalone host, which answers with itself alone.
struct ClusterRouteFacts {
  std::string cluster, hostname, arch;
  int cores = 0;
  int64_t memory_mib = 0;
  std::string pki_dir;  // ca.crt: the CA pin of join tokens; ca.key signs joiners' CSRs
  // The join (POST /v1/cluster/join): the baseline a joiner's host check is judged against,
  // the ceph.conf whose monitors it is told, the pools its Ceph user may use.
  std::string baseline_file;
  std::string ceph_conf;
  std::vector<std::string> rbd_pools;
  std::string cluster_pool = "qiao-cluster";
  // Records a joined node's binding (role admin, bound to its certificate's serial, as `qiaod
  // pki issue --kind node` does) in the cluster's bindings; unset: none is recorded.
  std::function<Status(const std::string& identity, const std::string& serial)> bind_node;
};
void addClusterRoutes(RouteTable& routes, ClusterMember* member, ClusterCrl* crl,
                      ClusterRouteFacts facts);

// GET /metrics (Prometheus).
void addMetricsRoutes(RouteTable& routes, Store& store, VmService& vms, Metrics& metrics);

// Where a cluster member's VM calls are answered: a VM's by its host, a new VM's by the host
// the leader places it on. Empty on a standalone node: everything is answered here.
struct VmRouting {
  std::string self;  // this host's name
  // A new VM's host: {host, true} when this member decided it (it leads); {the leader's host,
  // false} when the leader must (the call goes there).
  std::function<Result<std::pair<std::string, bool>>(const PlacementRequest&)> place;
};

// /v1/vms and their actions, disks, NICs, size, console log and figures.
void addVmRoutes(RouteTable& routes, Store& store, VmService& vms, QuotaService& quotas,
                 SpecLimits limits, int64_t console_log_max_bytes, VmRouting routing = {});

// /v1/volumes.
void addVolumeRoutes(RouteTable& routes, Store& store, VolumeService& volumes, QuotaService& quotas,
                     VolumeLimits limits);

// /v1/networks and /v1/security-groups; `networks` is null on a node without Open vSwitch
// (reads answer from the store, changes are refused).
void addNetworkRoutes(RouteTable& routes, Store& store, NetworkService* networks,
                      QuotaService& quotas);
void addGroupRoutes(RouteTable& routes, Store& store, NetworkService* networks);

// /v1/images, without the upload of their data.
void addImageRoutes(RouteTable& routes, Store& store, ImageService& images, QuotaService& quotas);

// PUT /v1/images/{name}/data: streamed to a file, admitted before the body is read only with
// room on the upload directory's filesystem above reserve_bytes and a free slot of the
// tenant's (its uploads quota; per_tenant for public images).
struct UploadLimits {
  std::string dir;
  int64_t reserve_bytes = int64_t{2} << 30;
  int per_tenant = 2;
};
void addUploadRoutes(RouteTable& routes, Store& store, ImageService& images, QuotaService& quotas,
                     std::shared_ptr<Slots> uploads, UploadLimits limits);

// /v1/tasks.
// How a cluster member's routes reach the other members (unset on a standalone node).
struct ClusterCalls {
  std::function<std::vector<std::string>()> others;  // the other members, by name
  std::function<ApiResponse(const std::string& host, const RequestContext& ctx)> forward;
};

// /v1/tasks. A task is its host's (the journal is): on a member, GET and cancel of a task this
// host does not have ask the other members in turn.
void addTaskRoutes(RouteTable& routes, Store& store, TaskEngine& tasks, ClusterCalls cluster = {});

// GET /v1/events: streams capped in all, per identity, and how many of all only admins may
// open.
struct StreamLimits {
  int total = 64;
  int per_identity = 4;
  int admin_reserve = 8;
};
void addEventRoutes(RouteTable& routes, StreamLimits limits);

// /v1/quotas; `uploads` are the uploads in progress that the usage reports.
void addQuotaRoutes(RouteTable& routes, QuotaService& quotas, std::shared_ptr<Slots> uploads);

// Shared by the images and uploads modules: the image of the path's {name} the caller may
// see (and, with to_change, change).
Result<ImageRecord> resolveImage(Store& store, RequestContext& ctx, bool to_change);
// Shared by the networks and groups modules: the answer to a change on a node without
// networks.
Error noNetworks();

}  // namespace qiao
