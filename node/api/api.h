// Api: the node API's routes, identity and authorization, audit, and handlers. It turns an
// ApiRequest into an ApiResponse and never blocks the io thread: the server calls handle() on
// its handler threads. Every request needs a client identity bound to a role; every object
// of a tenant the caller may not see answers 404, never its data; every mutating call, allowed
// or not, every refusal of a caller's identity or role, and everything the server could not
// read go to the hash-chained audit log (strangers' refusals as per-address summaries).
#pragma once

#include <chrono>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/event_bus.h"
#include "firmware/descriptor.h"
#include "node/api/http.h"
#include "node/api/refusal_log.h"
#include "node/api/slots.h"
#include "node/quotas/quota_service.h"
#include "node/api/metrics.h"
#include "node/host/host.h"
#include "node/state/store.h"
#include "node/vm/hypervisor.h"
#include "node/vm/spec.h"
#include "node/vm/vm_service.h"
#include "node/images/image_service.h"
#include "node/networks/network_service.h"
#include "node/volumes/volume_service.h"

namespace qiao {

struct RouteInfo {
  std::string method;
  std::string pattern;  // "/v1/vms/{name}/actions/{action}"
  std::string min_role; // "viewer" | "operator" | "admin"
};

// Every route the API serves (docs/api/openapi.yaml must list exactly these).
const std::vector<RouteInfo>& routeTable();

struct ApiDeps {
  Store& store;
  TaskEngine& tasks;
  VmService& vms;
  Hypervisor& hypervisor;
  EventBus& events;
  Metrics& metrics;
  std::string cluster;
  HostFacts host;
  std::string accelerator;         // "kvm" | "tcg"
  std::string accelerator_reason;
  std::string version;
  SpecLimits limits;
  int64_t console_log_max_bytes = 2 << 20;
  FirmwareCatalog firmware;  // read at start from QEMU's descriptor directories
  VolumeService& volumes;
  VolumeLimits volume_limits;
  ImageService& images;
  NetworkService* networks = nullptr;  // null on a node without networks
  std::string baseline_file;           // the cluster's host baseline (host.baseline_file)
  // Image uploads: admitted only with room on upload_dir's filesystem above reserve_bytes,
  // and at most per_tenant at once in a tenant.
  struct Uploads {
    std::string dir;
    int64_t reserve_bytes = int64_t{2} << 30;
    int per_tenant = 2;
  } uploads;
  // Strangers' refusals: one entry in full, then a count, per address and interval.
  int audit_summary_interval_s = 60;
  // Tenants' quotas; null on a node that keeps none (then nothing is checked).
  QuotaService* quotas = nullptr;
  // Event streams (GET /v1/events): in all, per identity, and how many of all only admins
  // may open.
  struct Streams {
    int total = 64;
    int per_identity = 4;
    int admin_reserve = 8;
  } streams;
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ApiResponse handle(const ApiRequest& request);
  // The request line and headers, before the body is read (AdmitHandler): the route, the
  // caller, its role and the query are checked as handle() would, and an upload also the
  // image, the tenant's uploads in progress and the room left on disk. A refusal is counted
  // and audited here.
  std::optional<ApiResponse> admit(ApiRequest& request);
  // Writes the audit log's summaries of strangers' refusals whose interval has ended (all of
  // them with `all`, at shutdown).
  void flushAudit(bool all);
  // Whether the identity is an admin of this node's cluster (the connection caps' reserve).
  bool isAdmin(const std::string& identity_uri, const std::string& serial);

  struct Caller;
  struct Context;

 private:

  // Route, identity, role, query and names: what the request line and headers tell. An
  // answer refuses the request.
  std::optional<ApiResponse> authorize(Context& ctx);
  ApiResponse dispatch(Context& ctx);
  // An upload's admission: the image may take data, the tenant has an upload slot free (held
  // by request.admission until the request ends), the disk has room.
  std::optional<ApiResponse> admitUpload(Context& ctx, ApiRequest& request);
  // Metrics and audit of an answered request.
  void finish(const Context& ctx, const ApiResponse& response,
              std::chrono::steady_clock::time_point started);
  ApiResponse healthz(Context& ctx);
  ApiResponse host(Context& ctx);
  ApiResponse hostFirmware(Context& ctx);
  ApiResponse hostCheck(Context& ctx);
  ApiResponse metrics(Context& ctx);
  ApiResponse listVms(Context& ctx);
  ApiResponse createVm(Context& ctx);
  ApiResponse getVm(Context& ctx);
  ApiResponse deleteVm(Context& ctx);
  ApiResponse vmAction(Context& ctx);
  ApiResponse addVmDisk(Context& ctx);
  ApiResponse removeVmDisk(Context& ctx);
  ApiResponse addVmNic(Context& ctx);
  ApiResponse resizeVm(Context& ctx);
  ApiResponse removeVmNic(Context& ctx);
  ApiResponse consoleLog(Context& ctx);
  ApiResponse vmStats(Context& ctx);
  ApiResponse listVolumes(Context& ctx);
  ApiResponse createVolume(Context& ctx);
  ApiResponse getVolume(Context& ctx);
  ApiResponse deleteVolume(Context& ctx);
  ApiResponse resizeVolume(Context& ctx);
  ApiResponse copyVolume(Context& ctx);
  ApiResponse setVolumeLimits(Context& ctx);
  ApiResponse listNetworks(Context& ctx);
  ApiResponse createNetwork(Context& ctx);
  ApiResponse getNetwork(Context& ctx);
  ApiResponse deleteNetwork(Context& ctx);
  ApiResponse listGroups(Context& ctx);
  ApiResponse createGroup(Context& ctx);
  ApiResponse getGroup(Context& ctx);
  ApiResponse replaceGroup(Context& ctx);
  ApiResponse deleteGroup(Context& ctx);
  ApiResponse listImages(Context& ctx);
  ApiResponse createImage(Context& ctx);
  ApiResponse getImage(Context& ctx);
  ApiResponse deleteImage(Context& ctx);
  ApiResponse uploadImage(Context& ctx);
  ApiResponse listTasks(Context& ctx);
  ApiResponse getTask(Context& ctx);
  ApiResponse cancelTask(Context& ctx);
  Result<TaskRecord> visibleTask(Context& ctx);
  ApiResponse events(Context& ctx);
  ApiResponse listQuotas(Context& ctx);
  ApiResponse getQuota(Context& ctx);
  ApiResponse setQuota(Context& ctx);
  Result<nlohmann::json> quotaOf(const std::string& tenant);
  // The tenant's quotas allow `delta` on top of what it has: the returned lock (the quotas'
  // guard) is held until the caller has recorded the change. No check for public objects
  // ("") or on a node without quotas.
  Result<std::unique_lock<std::mutex>> withinQuota(const std::string& tenant,
                                                   const QuotaFigures& delta);

  Result<Caller> authenticate(const ApiRequest& request);
  // The tenants a list route covers; an answer to send at once (an error, or an empty page
  // for a caller who sees nothing) instead when there is one.
  std::optional<ApiResponse> listScope(Context& ctx, std::vector<std::string>* tenants);
  Result<VmRecord> resolveVm(Context& ctx);
  // resolveVm, and the caller may change it.
  Result<VmRecord> resolveVmToChange(Context& ctx);
  Result<VolumeRecord> resolveVolume(Context& ctx, bool to_change);
  Result<NetworkRecord> resolveNetwork(Context& ctx, bool to_change);
  Result<SecurityGroupRecord> resolveGroup(Context& ctx, bool to_change);
  Result<ImageRecord> resolveImage(Context& ctx, bool to_change);
  // The tenants whose images a request covers: the visible ones and the public images ("")
  // unless ?tenant= names one; empty = every tenant (an admin); nullopt = none.
  Result<std::optional<std::vector<std::string>>> imageScope(Context& ctx);
  // The tenant a new object goes to: the one requested, or the caller's only tenant; the
  // caller must be allowed to create `kind` there.
  Result<std::string> tenantToCreateIn(Context& ctx, const std::string& requested,
                                       const std::string& kind);
  Status mayChange(Context& ctx, const std::string& tenant, const std::string& kind);
  template <typename Record>
  Result<Record> pickOne(Context& ctx, const std::string& kind, const std::string& name,
                         Result<std::vector<Record>> found);
  static Status checkJsonBody(const Context& ctx);
  void audit(const Context& ctx, int status);
  void writeSummaries(std::chrono::steady_clock::time_point now, bool all);
  void appendAudit(AuditEntry entry);

  ApiDeps deps_;
  RefusalLog strangers_;
  Slots uploads_;  // by tenant ("" for public images)
  Slots streams_;  // by identity
};

}  // namespace qiao
