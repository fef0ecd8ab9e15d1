// The volumes module: /v1/volumes, their size, copies and I/O limits.
#include <memory>
#include <utility>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

using nlohmann::json;

class VolumeRoutes {
 public:
  VolumeRoutes(Store& store, VolumeService& volumes, QuotaService& quotas, VolumeLimits limits)
      : store_(store), volumes_(volumes), quotas_(quotas), limits_(std::move(limits)) {}

  ApiResponse list(RequestContext& ctx) {
    std::vector<std::string> tenants;
    if (auto early = ctx.listScope(&tenants)) return *early;
    auto found = store_.volumes().list(tenants);
    if (!found) return errorResponse(found.error());
    json items = json::array();
    for (const auto& v : *found) items.push_back(volumeToJson(v));
    return listResponse(std::move(items));
  }

  ApiResponse create(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto spec = parseVolumeSpec(ctx.request.body, limits_);
    if (!spec) return errorResponse(spec.error());
    ctx.audit_target = spec->name;
    auto tenant = ctx.tenantToCreateIn(spec->tenant, "volumes");
    if (!tenant) return errorResponse(tenant.error());
    spec->tenant = *tenant;
    auto quota = withinQuota(quotas_, *tenant, {{"volume_gib", spec->size_gib}});
    if (!quota) return errorResponse(quota.error());
    auto task = volumes_.create(*spec, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse get(RequestContext& ctx) {
    auto volume = resolve(ctx, false);
    if (!volume) return errorResponse(volume.error());
    return jsonResponse(200, volumeToJson(*volume));
  }

  ApiResponse remove(RequestContext& ctx) {
    auto volume = resolve(ctx, true);
    if (!volume) return errorResponse(volume.error());
    auto task = volumes_.remove(*volume, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse resize(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto size = parseResize(ctx.request.body, limits_);
    if (!size) return errorResponse(size.error());
    auto volume = resolve(ctx, true);
    if (!volume) return errorResponse(volume.error());
    auto quota =
        withinQuota(quotas_, volume->tenant, {{"volume_gib", *size - gibOf(volume->size_bytes)}});
    if (!quota) return errorResponse(quota.error());
    auto task = volumes_.resize(*volume, *size, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse copy(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto request = parseCopy(ctx.request.body, limits_);
    if (!request) return errorResponse(request.error());
    auto volume = resolve(ctx, true);
    if (!volume) return errorResponse(volume.error());
    auto quota = withinQuota(quotas_, volume->tenant, {{"volume_gib", gibOf(volume->size_bytes)}});
    if (!quota) return errorResponse(quota.error());
    auto task = volumes_.copy(*volume, *request, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse setLimits(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto qos = parseQosBody(ctx.request.body);
    if (!qos) return errorResponse(qos.error());
    auto volume = resolve(ctx, true);
    if (!volume) return errorResponse(volume.error());
    auto task = volumes_.setLimits(*volume, *qos, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

 private:
  Result<VolumeRecord> resolve(RequestContext& ctx, bool to_change) {
    return ctx.resolveByName<VolumeRecord>(
        "volume", "volumes", to_change,
        [this](const std::vector<std::string>& tenants, const std::string& name) {
          return store_.volumes().list(tenants, name);
        });
  }

  Store& store_;
  VolumeService& volumes_;
  QuotaService& quotas_;
  VolumeLimits limits_;
};

}  // namespace

void addVolumeRoutes(RouteTable& routes, Store& store, VolumeService& volumes, QuotaService& quotas,
                     VolumeLimits limits) {
  auto m = std::make_shared<VolumeRoutes>(store, volumes, quotas, std::move(limits));
  routes.add({{"GET", "/v1/volumes", "viewer", {"tenant"}}, handlerOf(m, &VolumeRoutes::list)});
  routes.add({{"POST", "/v1/volumes", "operator", {}}, handlerOf(m, &VolumeRoutes::create)});
  routes.add(
      {{"GET", "/v1/volumes/{name}", "viewer", {"tenant"}}, handlerOf(m, &VolumeRoutes::get)});
  routes.add({{"DELETE", "/v1/volumes/{name}", "operator", {"tenant"}},
              handlerOf(m, &VolumeRoutes::remove)});
  routes.add({{"POST", "/v1/volumes/{name}/resize", "operator", {"tenant"}},
              handlerOf(m, &VolumeRoutes::resize)});
  routes.add({{"POST", "/v1/volumes/{name}/copy", "operator", {"tenant"}},
              handlerOf(m, &VolumeRoutes::copy)});
  routes.add({{"PUT", "/v1/volumes/{name}/limits", "operator", {"tenant"}},
              handlerOf(m, &VolumeRoutes::setLimits)});
}

}  // namespace qiao
