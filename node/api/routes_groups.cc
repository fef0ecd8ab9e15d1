// The security groups module: /v1/security-groups and their rules.
#include <memory>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/networks/network_service.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

using nlohmann::json;

class GroupRoutes {
 public:
  GroupRoutes(Store& store, NetworkService* networks) : store_(store), networks_(networks) {}

  ApiResponse list(RequestContext& ctx) {
    std::vector<std::string> tenants;
    if (auto early = ctx.listScope(&tenants)) return *early;
    auto found = store_.groups().list(tenants);
    if (!found) return errorResponse(found.error());
    json items = json::array();
    for (const auto& g : *found) items.push_back(securityGroupToJson(g));
    return listResponse(std::move(items));
  }

  ApiResponse create(RequestContext& ctx) {
    if (networks_ == nullptr) return errorResponse(noNetworks());
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto spec = parseSecurityGroupSpec(ctx.request.body, /*rules_only=*/false);
    if (!spec) return errorResponse(spec.error());
    ctx.audit_target = spec->name;
    auto tenant = ctx.tenantToCreateIn(spec->tenant, "security groups");
    if (!tenant) return errorResponse(tenant.error());
    spec->tenant = *tenant;
    auto group = networks_->createGroup(*spec);
    if (!group) return errorResponse(group.error());
    return jsonResponse(201, securityGroupToJson(*group));
  }

  ApiResponse get(RequestContext& ctx) {
    auto group = resolve(ctx, false);
    if (!group) return errorResponse(group.error());
    return jsonResponse(200, securityGroupToJson(*group));
  }

  ApiResponse replace(RequestContext& ctx) {
    if (networks_ == nullptr) return errorResponse(noNetworks());
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto spec = parseSecurityGroupSpec(ctx.request.body, /*rules_only=*/true);
    if (!spec) return errorResponse(spec.error());
    auto group = resolve(ctx, true);
    if (!group) return errorResponse(group.error());
    auto replaced = networks_->replaceRules(*group, spec->rules);
    if (!replaced) return errorResponse(replaced.error());
    return jsonResponse(200, securityGroupToJson(*replaced));
  }

  ApiResponse remove(RequestContext& ctx) {
    if (networks_ == nullptr) return errorResponse(noNetworks());
    auto group = resolve(ctx, true);
    if (!group) return errorResponse(group.error());
    if (auto deleted = networks_->deleteGroup(*group); !deleted) {
      return errorResponse(deleted.error());
    }
    return jsonResponse(200, {{"name", group->name}, {"tenant", group->tenant}, {"deleted", true}});
  }

 private:
  Result<SecurityGroupRecord> resolve(RequestContext& ctx, bool to_change) {
    return ctx.resolveByName<SecurityGroupRecord>(
        "security group", "security groups", to_change,
        [this](const std::vector<std::string>& tenants, const std::string& name) {
          return store_.groups().list(tenants, name);
        });
  }

  Store& store_;
  NetworkService* networks_;
};

}  // namespace

void addGroupRoutes(RouteTable& routes, Store& store, NetworkService* networks) {
  auto m = std::make_shared<GroupRoutes>(store, networks);
  routes.add(
      {{"GET", "/v1/security-groups", "viewer", {"tenant"}}, handlerOf(m, &GroupRoutes::list)});
  routes.add({{"POST", "/v1/security-groups", "operator", {}}, handlerOf(m, &GroupRoutes::create)});
  routes.add({{"GET", "/v1/security-groups/{name}", "viewer", {"tenant"}},
              handlerOf(m, &GroupRoutes::get)});
  routes.add({{"PUT", "/v1/security-groups/{name}", "operator", {"tenant"}},
              handlerOf(m, &GroupRoutes::replace)});
  routes.add({{"DELETE", "/v1/security-groups/{name}", "operator", {"tenant"}},
              handlerOf(m, &GroupRoutes::remove)});
}

}  // namespace qiao
