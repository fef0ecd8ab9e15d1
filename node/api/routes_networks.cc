// The networks module: /v1/networks and their ports.
#include <memory>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/networks/network_service.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

using nlohmann::json;

class NetworkRoutes {
 public:
  NetworkRoutes(Store& store, NetworkService* networks, QuotaService& quotas)
      : store_(store), networks_(networks), quotas_(quotas) {}

  ApiResponse list(RequestContext& ctx) {
    std::vector<std::string> tenants;
    if (auto early = ctx.listScope(&tenants)) return *early;
    auto found = store_.networks().list(tenants);
    if (!found) return errorResponse(found.error());
    json items = json::array();
    for (const auto& n : *found) items.push_back(networkToJson(n));
    return listResponse(std::move(items));
  }

  ApiResponse create(RequestContext& ctx) {
    if (networks_ == nullptr) return errorResponse(noNetworks());
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto spec = parseNetworkSpec(ctx.request.body);
    if (!spec) return errorResponse(spec.error());
    ctx.audit_target = spec->name;
    auto tenant = ctx.tenantToCreateIn(spec->tenant, "networks");
    if (!tenant) return errorResponse(tenant.error());
    spec->tenant = *tenant;
    auto quota = withinQuota(quotas_, *tenant, {{"networks", 1}});
    if (!quota) return errorResponse(quota.error());
    auto task = networks_->create(*spec, ctx.caller->uri, ctx.caller->isAdmin());
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse get(RequestContext& ctx) {
    auto network = resolve(ctx, false);
    if (!network) return errorResponse(network.error());
    json out = networkToJson(*network);
    auto ports = store_.ports().ofNetwork(network->uuid);
    if (!ports) return errorResponse(ports.error());
    out["ports"] = json::array();
    for (const auto& p : *ports) out["ports"].push_back(portToJson(p));
    return jsonResponse(200, out);
  }

  ApiResponse remove(RequestContext& ctx) {
    if (networks_ == nullptr) return errorResponse(noNetworks());
    auto network = resolve(ctx, true);
    if (!network) return errorResponse(network.error());
    auto task = networks_->remove(*network, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

 private:
  Result<NetworkRecord> resolve(RequestContext& ctx, bool to_change) {
    return ctx.resolveByName<NetworkRecord>(
        "network", "networks", to_change,
        [this](const std::vector<std::string>& tenants, const std::string& name) {
          return store_.networks().list(tenants, name);
        });
  }

  Store& store_;
  NetworkService* networks_;
  QuotaService& quotas_;
};

}  // namespace

Error noNetworks() {
  return Error{ErrorCode::kUnavailable, "api", "this node has no networks (Open vSwitch)"};
}

void addNetworkRoutes(RouteTable& routes, Store& store, NetworkService* networks,
                      QuotaService& quotas) {
  auto m = std::make_shared<NetworkRoutes>(store, networks, quotas);
  routes.add({{"GET", "/v1/networks", "viewer", {"tenant"}}, handlerOf(m, &NetworkRoutes::list)});
  routes.add({{"POST", "/v1/networks", "operator", {}}, handlerOf(m, &NetworkRoutes::create)});
  routes.add(
      {{"GET", "/v1/networks/{name}", "viewer", {"tenant"}}, handlerOf(m, &NetworkRoutes::get)});
  routes.add({{"DELETE", "/v1/networks/{name}", "operator", {"tenant"}},
              handlerOf(m, &NetworkRoutes::remove)});
}

}  // namespace qiao
