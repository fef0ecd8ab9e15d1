// Api: the node API's routes, identity and authorization, audit, and handlers. It turns an
// ApiRequest into an ApiResponse and never blocks the io thread: the server calls handle() on
// its handler threads. Every request needs a client identity bound to a role; every object
// of a tenant the caller may not see answers 404, never its data; every mutating call, allowed
// or not, goes to the hash-chained audit log.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/event_bus.h"
#include "firmware/descriptor.h"
#include "node/api/http.h"
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
};

class Api {
 public:
  explicit Api(ApiDeps deps);
  ApiResponse handle(const ApiRequest& request);

  struct Caller;
  struct Context;

 private:

  ApiResponse dispatch(Context& ctx);
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

  ApiDeps deps_;
};

}  // namespace qiao
