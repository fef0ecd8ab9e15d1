// What every route module shares: the request as a handler sees it (RequestContext: the
// caller and its tenants, the path's parameters, what the audit entry will name), the answers
// (JSON, errors mapped to their HTTP status, 202 with a task), the JSON body check, query
// parsing, tenant scoping and the quota check. Written once here, used by routes_*.cc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "node/api/http.h"
#include "node/api/router.h"
#include "node/quotas/quota_service.h"
#include "node/state/store.h"

namespace qiao {

// Who calls: the identity and the role its binding gives, in which tenants.
struct Caller {
  std::string uri;
  std::string role;
  std::vector<std::string> tenants;  // empty for admins: every tenant
  // The node of the cluster that forwarded the call for this identity ("" when it came
  // directly): that member checked the caller's certificate and role first.
  std::string via;

  bool isAdmin() const { return role == "admin"; }
  bool canSee(const std::string& tenant) const {
    return isAdmin() || std::find(tenants.begin(), tenants.end(), tenant) != tenants.end();
  }
  bool canMutate(const std::string& tenant) const {
    return roleRank(role) >= roleRank("operator") && canSee(tenant);
  }
};

// One request on its way through the Api: a handler runs only once route and caller are set.
struct RequestContext {
  const ApiRequest& request;
  std::optional<Caller> caller;
  const Route* route = nullptr;
  std::map<std::string, std::string> params;
  // What the audit entry names: the tenant and the object the request concerns.
  std::string audit_tenant;
  std::string audit_target;
  // Set by a route's locate: the body to forward instead of the one received.
  std::optional<std::string> forward_body;

  std::optional<std::string> query(const std::string& key) const;
  // The tenants this request may look at, narrowed by ?tenant= when given.
  Result<std::vector<std::string>> visibleTenants() const;
  // visibleTenants() gives an empty list both for "every tenant" (an admin with no ?tenant=)
  // and for "none"; this tells them apart.
  bool seesNothing(const std::vector<std::string>& tenants) const;
  // ?limit= and ?page_token= of the list routes.
  Status readPaging(int* limit, std::string* page_token) const;
  // The tenants a list route covers; an answer to send at once (an error, or an empty page
  // for a caller who sees nothing) instead when there is one.
  std::optional<ApiResponse> listScope(std::vector<std::string>* tenants) const;
  // The tenant a new object goes to: the one requested, or the caller's only tenant; the
  // caller must be allowed to create `kind` there.
  Result<std::string> tenantToCreateIn(const std::string& requested, const std::string& kind);
  // The caller may change objects of `kind` in `tenant`.
  Status mayChange(const std::string& tenant, const std::string& kind) const;
  // The body, when there is one, is declared application/json.
  Status checkJsonBody() const;

  // The object of `kind` that the path's {name} names, among those `find(tenants, name)`
  // gives in the tenants the caller may see; with to_change, one the caller may change
  // (`kinds` names them in the refusal).
  template <typename Record, typename Find>
  Result<Record> resolveByName(const std::string& kind, const std::string& kinds, bool to_change,
                               Find find) {
    const std::string& name = params.at("name");
    audit_target = name;
    auto tenants = visibleTenants();
    if (!tenants) return std::unexpected(tenants.error());
    if (seesNothing(*tenants)) return std::unexpected(notFound(kind, name));
    auto record = pickOne<Record>(kind, name, find(*tenants, name));
    if (!record || !to_change) return record;
    if (auto allowed = mayChange(record->tenant, kinds); !allowed) {
      return std::unexpected(allowed.error());
    }
    return record;
  }

  // The one object of `kind` named `name` among those found in the caller's tenants.
  template <typename Record>
  Result<Record> pickOne(const std::string& kind, const std::string& name,
                         Result<std::vector<Record>> found) {
    if (!found) return std::unexpected(found.error());
    if (found->empty()) return std::unexpected(notFound(kind, name));
    if (found->size() > 1) return std::unexpected(ambiguous(kind, name, tenantsOf(*found)));
    audit_tenant = found->front().tenant;
    return found->front();
  }

 private:
  template <typename Record>
  static std::vector<std::string> tenantsOf(const std::vector<Record>& found) {
    std::vector<std::string> out;
    for (const auto& r : found) out.push_back(r.tenant);
    return out;
  }
  static Error notFound(const std::string& kind, const std::string& name);
  static Error ambiguous(const std::string& kind, const std::string& name,
                         const std::vector<std::string>& tenants);
};

ApiResponse jsonResponse(int status, const nlohmann::json& body);
// The error's status and the one error body {"error": {"code", "message", "details"}}.
ApiResponse errorResponse(const Error& error);
ApiResponse errorResponse(ErrorCode code, const std::string& message,
                          const std::string& details_json = {});
// 202 with the task, and where to follow it.
ApiResponse taskAccepted(const TaskRecord& task);
// A page of a list route ({"items", "next_page_token"}).
ApiResponse listResponse(nlohmann::json items, const std::string& next_page_token = "");

// Query parameter values.
Result<bool> parseBool(std::string_view name, std::string_view value);
Result<int64_t> parseInt(std::string_view name, std::string_view value, int64_t min, int64_t max);

// The tenant's quotas allow `delta` on top of what it has: the returned lock (the quotas'
// guard) is held until the caller has recorded the change. No check for public objects ("").
Result<std::unique_lock<std::mutex>> withinQuota(QuotaService& quotas, const std::string& tenant,
                                                 const QuotaFigures& delta);

// A handler that calls a member of a module the route table keeps alive.
template <typename Module>
RouteHandler handlerOf(std::shared_ptr<Module> module,
                       ApiResponse (Module::*member)(RequestContext&)) {
  return [module = std::move(module), member](RequestContext& ctx) {
    return ((*module).*member)(ctx);
  };
}

}  // namespace qiao
