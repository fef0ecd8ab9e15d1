#include "node/api/route_context.h"

#include "base/names.h"
#include "node/state/record_json.h"

namespace qiao {

using nlohmann::json;

std::optional<std::string> RequestContext::query(const std::string& key) const {
  auto it = request.query.find(key);
  if (it == request.query.end()) return std::nullopt;
  return it->second;
}

Result<std::vector<std::string>> RequestContext::visibleTenants() const {
  auto wanted = query("tenant");
  if (wanted) {
    if (auto ok = checkDnsLabel("tenant", *wanted); !ok) return std::unexpected(ok.error());
    if (!caller->canSee(*wanted)) return std::vector<std::string>{};  // sees nothing
    return std::vector<std::string>{*wanted};
  }
  return caller->isAdmin() ? std::vector<std::string>{} : caller->tenants;
}

bool RequestContext::seesNothing(const std::vector<std::string>& tenants) const {
  return tenants.empty() && !(caller->isAdmin() && !query("tenant"));
}

Status RequestContext::readPaging(int* limit, std::string* page_token) const {
  if (auto value = query("limit")) {
    auto n = parseInt("limit", *value, 1, 1000);
    if (!n) return std::unexpected(n.error());
    *limit = static_cast<int>(*n);
  }
  if (auto token = query("page_token")) *page_token = *token;
  return {};
}

std::optional<ApiResponse> RequestContext::listScope(std::vector<std::string>* tenants) const {
  auto visible = visibleTenants();
  if (!visible) return errorResponse(visible.error());
  if (seesNothing(*visible)) return listResponse(json::array());
  *tenants = std::move(*visible);
  return std::nullopt;
}

Result<std::string> RequestContext::tenantToCreateIn(const std::string& requested,
                                                     const std::string& kind) {
  std::string tenant = requested;
  if (tenant.empty()) {
    if (caller->tenants.size() != 1) {
      return makeError(ErrorCode::kInvalidArgument, "api",
                       "the spec must name its tenant (this identity may act in " +
                           std::string(caller->isAdmin() ? "every tenant" : "several tenants") +
                           ")");
    }
    tenant = caller->tenants.front();
  }
  audit_tenant = tenant;
  if (!caller->canMutate(tenant)) {
    return makeError(
        ErrorCode::kPermissionDenied, "api",
        "identity " + caller->uri + " may not create " + kind + " in tenant " + tenant);
  }
  return tenant;
}

Status RequestContext::mayChange(const std::string& tenant, const std::string& kind) const {
  if (caller->canMutate(tenant)) return {};
  return makeError(ErrorCode::kPermissionDenied, "api",
                   "identity " + caller->uri + " may not change " + kind + " in tenant " + tenant);
}

Status RequestContext::checkJsonBody() const {
  // "application/json", with parameters (; charset=utf-8) or none; not application/jsonx.
  const auto& ct = request.content_type;
  const std::string_view media = std::string_view(ct).substr(0, ct.find(';'));
  auto trimmed = media.substr(0, media.find_last_not_of(" \t") + 1);
  if (!ct.empty() && trimmed != "application/json") {
    return makeError(ErrorCode::kInvalidArgument, "api",
                     "Content-Type must be application/json, not " + quoteForMessage(ct));
  }
  return {};
}

Error RequestContext::notFound(const std::string& kind, const std::string& name) {
  return Error{ErrorCode::kNotFound, "api", "no " + kind + " named " + name};
}

Error RequestContext::ambiguous(const std::string& kind, const std::string& name,
                                const std::vector<std::string>& tenants) {
  std::string list;
  for (const auto& t : tenants) list += (list.empty() ? "" : ", ") + t;
  return Error{
      ErrorCode::kConflict, "api",
      "ambiguous: " + kind + " " + name + " exists in tenants " + list + "; pass ?tenant="};
}

ApiResponse jsonResponse(int status, const json& body) {
  ApiResponse response;
  response.status = status;
  response.body = dumpJson(body);
  return response;
}

ApiResponse errorResponse(const Error& error) {
  ApiResponse response;
  response.status = httpStatus(error.code);
  response.body = errorBody(error);
  return response;
}

ApiResponse errorResponse(ErrorCode code, const std::string& message,
                          const std::string& details_json) {
  return errorResponse(Error{code, "api", message, details_json});
}

ApiResponse taskAccepted(const TaskRecord& task) {
  ApiResponse response = jsonResponse(202, taskToJson(task));
  response.headers.emplace_back("Location", "/v1/tasks/" + task.id);
  return response;
}

ApiResponse listResponse(json items, const std::string& next_page_token) {
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", next_page_token}});
}

Result<bool> parseBool(std::string_view name, std::string_view value) {
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return makeError(ErrorCode::kInvalidArgument, "api",
                   "query parameter " + std::string(name) + " must be true or false, not " +
                       quoteForMessage(value));
}

Result<int64_t> parseInt(std::string_view name, std::string_view value, int64_t min, int64_t max) {
  int64_t out = 0;
  bool ok = !value.empty() && value.size() <= 18;
  for (char c : value) {
    if (c < '0' || c > '9') {
      ok = false;
    } else if (ok) {
      out = out * 10 + (c - '0');
    }
  }
  if (!ok || out < min || out > max) {
    return makeError(ErrorCode::kInvalidArgument, "api",
                     "query parameter " + std::string(name) + " must be an integer from " +
                         std::to_string(min) + " to " + std::to_string(max) + ", not " +
                         quoteForMessage(value));
  }
  return out;
}

Result<std::unique_lock<std::mutex>> withinQuota(QuotaService& quotas, const std::string& tenant,
                                                 const QuotaFigures& delta) {
  if (tenant.empty()) return std::unique_lock<std::mutex>();
  auto guard = quotas.guard();
  if (auto ok = quotas.check(tenant, delta); !ok) return std::unexpected(ok.error());
  return guard;
}

}  // namespace qiao
