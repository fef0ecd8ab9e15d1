// The uploads module: PUT /v1/images/{name}/data. The server streams its body to a file
// (streams_body); before a byte of it is read, the admission checks that the image takes
// data, that the tenant has an upload slot free (held by the request until it ends) and that
// the disk has room.
#include <algorithm>
#include <memory>
#include <utility>

#include "base/files.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/api/slots.h"
#include "node/images/image_service.h"

namespace qiao {
namespace {

class UploadRoutes {
 public:
  UploadRoutes(Store& store, ImageService& images, QuotaService& quotas,
               std::shared_ptr<Slots> uploads, UploadLimits limits)
      : store_(store),
        images_(images),
        quotas_(quotas),
        uploads_(std::move(uploads)),
        limits_(std::move(limits)) {}

  std::optional<ApiResponse> admit(RequestContext& ctx, ApiRequest& request) {
    auto image = resolveImage(store_, ctx, true);
    if (!image) return errorResponse(image.error());
    if (image->state != ImageState::kPending) {
      return errorResponse(ErrorCode::kConflict,
                           "image " + ctx.params.at("name") + " is " + toString(image->state) +
                               "; data is taken only once, by an image created without "
                               "source_path");
    }
    if (!limits_.dir.empty()) {
      const int64_t need = std::max<int64_t>(request.declared_length, 0);
      auto room = freeBytes(limits_.dir);
      if (room && *room - need < limits_.reserve_bytes) {
        return errorResponse(ErrorCode::kInsufficientStorage,
                             "no room for the upload: " + std::to_string(*room >> 20) +
                                 " MiB are free in " + limits_.dir + ", the upload declares " +
                                 std::to_string(need >> 20) + " MiB, and " +
                                 std::to_string(limits_.reserve_bytes >> 20) +
                                 " MiB must stay free (images.upload_reserve_mib)");
      }
    }
    // One slot of the tenant's, held as long as the request lives.
    const std::string tenant = image->tenant;
    int64_t most = limits_.per_tenant;
    if (!tenant.empty()) {
      auto quota = quotas_.limits(tenant);
      if (!quota) return errorResponse(quota.error());
      most = quota->at("uploads");
    }
    Slots::Counts counts;
    request.admission = uploads_->take(
        tenant, [&](Slots::Counts c) { return most < 0 || c.mine < most; }, &counts);
    if (!request.admission) {
      ApiResponse busy = errorResponse(
          ErrorCode::kResourceExhausted,
          (tenant.empty() ? std::string("public images have ") : "tenant " + tenant + " has ") +
              std::to_string(counts.mine) + " uploads in progress, the most allowed " +
              "(its uploads quota, by default images.max_parallel_uploads); try again when one "
              "has ended");
      busy.headers.emplace_back("Retry-After", "10");
      return busy;
    }
    return std::nullopt;
  }

  ApiResponse upload(RequestContext& ctx) {
    if (ctx.request.upload_file.empty()) {
      return errorResponse(ErrorCode::kInternal, "the upload was not received as a stream");
    }
    auto image = resolveImage(store_, ctx, true);
    if (!image) return errorResponse(image.error());
    auto task = images_.upload(*image, ctx.request.upload_file, ctx.request.upload_bytes,
                               ctx.request.upload_sha256, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

 private:
  Store& store_;
  ImageService& images_;
  QuotaService& quotas_;
  std::shared_ptr<Slots> uploads_;  // by tenant ("" for public images)
  UploadLimits limits_;
};

}  // namespace

void addUploadRoutes(RouteTable& routes, Store& store, ImageService& images, QuotaService& quotas,
                     std::shared_ptr<Slots> uploads, UploadLimits limits) {
  auto m =
      std::make_shared<UploadRoutes>(store, images, quotas, std::move(uploads), std::move(limits));
  routes.add({{"PUT", "/v1/images/{name}/data", "operator", {"tenant"}, /*streams_body=*/true},
              handlerOf(m, &UploadRoutes::upload),
              [m](RequestContext& ctx, ApiRequest& request) { return m->admit(ctx, request); }});
}

}  // namespace qiao
