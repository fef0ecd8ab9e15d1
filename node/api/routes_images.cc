// The images module: /v1/images (the upload of their data is the uploads module's).
#include <memory>
#include <optional>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/images/image_service.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

using nlohmann::json;

// The tenants whose images a request covers: the visible ones and the public images ("")
// unless ?tenant= names one; empty = every tenant (an admin); nullopt = none.
Result<std::optional<std::vector<std::string>>> imageScope(RequestContext& ctx) {
  auto tenants = ctx.visibleTenants();
  if (!tenants) return std::unexpected(tenants.error());
  if (ctx.query("tenant")) {
    if (tenants->empty()) return std::optional<std::vector<std::string>>();
    return std::optional(std::move(*tenants));
  }
  if (ctx.caller->isAdmin()) return std::optional(std::vector<std::string>{});  // every tenant
  tenants->push_back("");  // and the public images
  return std::optional(std::move(*tenants));
}

class ImageRoutes {
 public:
  ImageRoutes(Store& store, ImageService& images, QuotaService& quotas)
      : store_(store), images_(images), quotas_(quotas) {}

  ApiResponse list(RequestContext& ctx) {
    auto scope = imageScope(ctx);
    if (!scope) return errorResponse(scope.error());
    json items = json::array();
    if (*scope) {
      auto found = store_.images().list(**scope);
      if (!found) return errorResponse(found.error());
      for (const auto& image : *found) items.push_back(imageToJson(image));
    }
    return listResponse(std::move(items));
  }

  ApiResponse create(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto spec = parseImageSpec(ctx.request.body);
    if (!spec) return errorResponse(spec.error());
    ctx.audit_target = spec->name;
    if ((spec->is_public || !spec->source_path.empty()) && !ctx.caller->isAdmin()) {
      return errorResponse(ErrorCode::kPermissionDenied,
                           spec->is_public
                               ? "public images are made by admins only"
                               : "source_path (a file of this host) is for admins only");
    }
    if (spec->is_public) {
      ctx.audit_tenant = "";
    } else {
      auto tenant = ctx.tenantToCreateIn(spec->tenant, "images");
      if (!tenant) return errorResponse(tenant.error());
      spec->tenant = *tenant;
    }
    auto quota = withinQuota(quotas_, spec->tenant, {{"images", spec->is_public ? 0 : 1}});
    if (!quota) return errorResponse(quota.error());
    TaskRecord task;
    auto image = images_.create(*spec, ctx.caller->uri, ctx.caller->uri, &task);
    if (!image) return errorResponse(image.error());
    if (spec->source_path.empty()) return jsonResponse(201, imageToJson(*image));
    return taskAccepted(task);
  }

  ApiResponse get(RequestContext& ctx) {
    auto image = resolveImage(store_, ctx, false);
    if (!image) return errorResponse(image.error());
    return jsonResponse(200, imageToJson(*image));
  }

  ApiResponse remove(RequestContext& ctx) {
    auto image = resolveImage(store_, ctx, true);
    if (!image) return errorResponse(image.error());
    auto task = images_.remove(*image, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

 private:
  Store& store_;
  ImageService& images_;
  QuotaService& quotas_;
};

}  // namespace

Result<ImageRecord> resolveImage(Store& store, RequestContext& ctx, bool to_change) {
  const std::string& name = ctx.params.at("name");
  ctx.audit_target = name;
  auto scope = imageScope(ctx);
  if (!scope) return std::unexpected(scope.error());
  if (!*scope) return makeError(ErrorCode::kNotFound, "api", "no image named " + name);
  auto found = store.images().list(**scope, name);
  if (!found) return std::unexpected(found.error());
  preferOwnImages(*found);
  auto image = ctx.pickOne<ImageRecord>("image", name, std::move(*found));
  if (!image || !to_change) return image;
  if (image->tenant.empty()) {
    if (!ctx.caller->isAdmin()) {
      return makeError(ErrorCode::kPermissionDenied, "api",
                       "public images are changed by admins only");
    }
  } else if (auto allowed = ctx.mayChange(image->tenant, "images"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return image;
}

void addImageRoutes(RouteTable& routes, Store& store, ImageService& images, QuotaService& quotas) {
  auto m = std::make_shared<ImageRoutes>(store, images, quotas);
  routes.add({{"GET", "/v1/images", "viewer", {"tenant"}}, handlerOf(m, &ImageRoutes::list)});
  routes.add({{"POST", "/v1/images", "operator", {}}, handlerOf(m, &ImageRoutes::create)});
  routes.add({{"GET", "/v1/images/{name}", "viewer", {"tenant"}}, handlerOf(m, &ImageRoutes::get)});
  routes.add({{"DELETE", "/v1/images/{name}", "operator", {"tenant"}},
              handlerOf(m, &ImageRoutes::remove)});
}

}  // namespace qiao
