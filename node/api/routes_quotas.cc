// The quotas module: /v1/quotas, what each tenant may have and what it uses.
#include <memory>
#include <utility>

#include "base/names.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/api/slots.h"
#include "node/quotas/quota_spec.h"

namespace qiao {
namespace {

using nlohmann::json;

class QuotaRoutes {
 public:
  QuotaRoutes(QuotaService& quotas, std::shared_ptr<Slots> uploads)
      : quotas_(quotas), uploads_(std::move(uploads)) {}

  ApiResponse list(RequestContext& ctx) {
    std::vector<std::string> tenants;
    if (auto early = ctx.listScope(&tenants)) return *early;
    if (tenants.empty()) {  // an admin without ?tenant=: the tenants whose quotas were set
      auto set = quotas_.tenantsWithQuotas();
      if (!set) return errorResponse(set.error());
      tenants = *set;
    }
    json items = json::array();
    for (const auto& t : tenants) {
      auto quota = quotaOf(t);
      if (!quota) return errorResponse(quota.error());
      items.push_back(std::move(*quota));
    }
    return listResponse(std::move(items));
  }

  ApiResponse get(RequestContext& ctx) {
    const std::string& tenant = ctx.params.at("tenant");
    if (auto ok = checkDnsLabel("tenant", tenant); !ok) return errorResponse(ok.error());
    if (!ctx.caller->canSee(tenant)) {
      return errorResponse(ErrorCode::kNotFound, "no quotas for tenant " + tenant);
    }
    auto quota = quotaOf(tenant);
    if (!quota) return errorResponse(quota.error());
    return jsonResponse(200, *quota);
  }

  ApiResponse set(RequestContext& ctx) {
    const std::string& tenant = ctx.params.at("tenant");
    if (auto ok = checkDnsLabel("tenant", tenant); !ok) return errorResponse(ok.error());
    ctx.audit_tenant = tenant;
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto changes = parseQuotaChanges(ctx.request.body);
    if (!changes) return errorResponse(changes.error());
    if (auto set = quotas_.set(tenant, *changes); !set) return errorResponse(set.error());
    auto quota = quotaOf(tenant);
    if (!quota) return errorResponse(quota.error());
    return jsonResponse(200, *quota);
  }

 private:
  Result<json> quotaOf(const std::string& tenant) {
    auto limits = quotas_.limits(tenant);
    if (!limits) return std::unexpected(limits.error());
    auto usage = quotas_.usage(tenant);
    if (!usage) return std::unexpected(usage.error());
    (*usage)["uploads"] = uploads_->held(tenant);
    return json{{"tenant", tenant}, {"limits", *limits}, {"usage", *usage}};
  }

  QuotaService& quotas_;
  std::shared_ptr<Slots> uploads_;
};

}  // namespace

void addQuotaRoutes(RouteTable& routes, QuotaService& quotas, std::shared_ptr<Slots> uploads) {
  auto m = std::make_shared<QuotaRoutes>(quotas, std::move(uploads));
  routes.add({{"GET", "/v1/quotas", "viewer", {"tenant"}}, handlerOf(m, &QuotaRoutes::list)});
  routes.add({{"GET", "/v1/quotas/{tenant}", "viewer", {}}, handlerOf(m, &QuotaRoutes::get)});
  routes.add({{"PUT", "/v1/quotas/{tenant}", "admin", {}}, handlerOf(m, &QuotaRoutes::set)});
}

}  // namespace qiao
