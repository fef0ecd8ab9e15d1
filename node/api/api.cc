#include "node/api/api.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/crypto.h"
#include "base/log.h"
#include "base/names.h"
#include "node/api/metrics.h"
#include "node/api/route_context.h"
#include "node/pki/identity.h"
#include "node/state/store.h"

namespace qiao {
namespace {

const Logger kLog("api");
using nlohmann::json;

constexpr size_t kMaxLabelFilters = 16;
// Audit fields are capped: what a caller sends is kept only as far as it helps a reader.
constexpr size_t kAuditPathMax = 256;
constexpr size_t kAuditIdentityMax = 256;

std::string capped(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "...(" + std::to_string(text.size() - max) + " more bytes)";
}

bool isMutating(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

}  // namespace

Api::Api(ApiOptions options, RouteTable routes)
    : options_(std::move(options)),
      routes_(std::move(routes)),
      strangers_(std::chrono::seconds(options_.audit_summary_interval_s), 1024) {}

ApiResponse Api::handle(const ApiRequest& request) {
  auto started = std::chrono::steady_clock::now();
  RequestContext ctx{request, std::nullopt, nullptr, {}, {}, {}};
  ApiResponse response;
  if (request.transport_error) {
    // What the server could not read is answered here, so that it is counted and audited.
    response = errorResponse(*request.transport_error);
    if (request.transport_error->code == ErrorCode::kUnavailable) {
      response.headers.emplace_back("Retry-After", "5");
    }
    if (auto caller = authenticate(request)) ctx.caller = std::move(*caller);
  } else if (auto refused = authorize(ctx)) {
    response = std::move(*refused);
  } else if (auto host = locate(ctx); !host) {
    response = errorResponse(host.error());
  } else if (*host) {
    response = options_.forward(**host, ctx);
    ctx.audit_target += " (on host " + **host + ")";
  } else {
    response = ctx.route->handler(ctx);
  }
  finish(ctx, response, started);
  return response;
}

Result<std::optional<std::string>> Api::locate(RequestContext& ctx) {
  if (!options_.forward || !ctx.route->locate) return std::optional<std::string>{};
  return ctx.route->locate(ctx);
}

bool Api::streamsBody(const std::string& method, const std::string& path) const {
  return routes_.streamsBody(method, path);
}

std::optional<ApiResponse> Api::admit(ApiRequest& request) {
  auto started = std::chrono::steady_clock::now();
  RequestContext ctx{request, std::nullopt, nullptr, {}, {}, {}};
  std::optional<ApiResponse> refused = authorize(ctx);
  if (!refused && ctx.route->admit) refused = ctx.route->admit(ctx, request);
  if (refused) finish(ctx, *refused, started);
  return refused;
}

void Api::finish(const RequestContext& ctx, const ApiResponse& response,
                 std::chrono::steady_clock::time_point started) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  options_.metrics.observeRequest(ctx.request.method,
                                  ctx.route ? ctx.route->info.pattern : "unmatched",
                                  response.status, seconds);
  // Every change, allowed or refused; every refusal of who the caller is or what it may do;
  // everything the server could not read. Allowed reads are counted in the metrics only.
  if (isMutating(ctx.request.method) || response.status == 401 || response.status == 403 ||
      ctx.request.transport_error) {
    audit(ctx, response.status);
  }
}

void Api::audit(const RequestContext& ctx, int status) {
  const auto now = std::chrono::steady_clock::now();
  if (!ctx.caller) {
    // Nobody this node knows: one entry per source address and interval, the rest counted.
    const std::string source = sourceAddress(ctx.request.remote);
    if (!strangers_.record(source, status, now)) {
      writeSummaries(now, false);
      return;
    }
  }
  AuditEntry entry;
  // A forwarded call is the caller's, as the member it came through vouched.
  entry.identity =
      capped(ctx.caller && !ctx.caller->via.empty() ? ctx.caller->uri + " via " + ctx.caller->via
                                                    : ctx.request.peer_identity_uri,
             kAuditIdentityMax);
  entry.method = capped(ctx.request.method.empty() ? "-" : ctx.request.method, 16);
  entry.path = capped(ctx.request.target, kAuditPathMax);
  entry.tenant = capped(ctx.audit_tenant, 63);
  entry.target = capped(ctx.audit_target, 128);
  entry.status = status;
  entry.request_digest = sha256Hex(ctx.request.body);
  appendAudit(std::move(entry));
  writeSummaries(now, false);
}

void Api::writeSummaries(std::chrono::steady_clock::time_point now, bool all) {
  for (const auto& s : strangers_.due(now, all)) {
    AuditEntry entry;
    entry.method = "SUMMARY";
    entry.path = std::to_string(s.count) + " more refused calls (first status " +
                 std::to_string(s.first_status) + ") from " + s.source + " in " +
                 std::to_string(s.seconds) + " s after the entry before";
    entry.target = s.source;
    entry.status = s.first_status;
    entry.request_digest = sha256Hex("");
    appendAudit(std::move(entry));
  }
}

bool Api::isAdmin(const std::string& identity_uri, const std::string& serial) {
  ApiRequest request;
  request.peer_identity_uri = identity_uri;
  request.peer_serial = serial;
  auto caller = authenticate(request);
  return caller && caller->isAdmin();
}

void Api::flushAudit(bool all) { writeSummaries(std::chrono::steady_clock::now(), all); }

void Api::appendAudit(AuditEntry entry) {
  if (auto appended = options_.store.audit().append(entry); !appended) {
    kLog.error("cannot append to the audit log", {{"error", appended.error().describe()}});
  }
}

Result<Caller> Api::authenticate(const ApiRequest& request) {
  if (request.peer_identity_uri.empty()) {
    std::string why = request.peer_error.empty() ? "" : " (" + request.peer_error + ")";
    return makeError(
        ErrorCode::kUnauthenticated, "api",
        "a client certificate of this cluster with a qiao:// identity is required" + why);
  }
  auto identity = parseIdentityUri(request.peer_identity_uri);
  if (!identity) {
    return makeError(ErrorCode::kUnauthenticated, "api",
                     "the client certificate's identity is not valid: " + identity.error().message);
  }
  if (identity->cluster != options_.cluster) {
    return makeError(ErrorCode::kPermissionDenied, "api",
                     "identity " + identity->uri() + " belongs to cluster " + identity->cluster +
                         "; this node is in cluster " + options_.cluster);
  }
  if (!request.on_behalf_of.empty()) return authenticateForwarded(request, *identity);
  auto binding = options_.store.bindings().get(identity->uri());
  if (!binding) {
    if (binding.error().code == ErrorCode::kNotFound) {
      return makeError(ErrorCode::kPermissionDenied, "api",
                       "identity " + identity->uri() +
                           " has no role on this node; an admin grants one with "
                           "`qiaod pki issue`");
    }
    return std::unexpected(binding.error());
  }
  // Bound to one certificate: an older one of the same identity (superseded, and revoked in
  // the CRL too) is not it.
  if (!binding->serial.empty() && request.peer_serial != binding->serial) {
    return makeError(ErrorCode::kUnauthenticated, "api",
                     "the certificate of " + identity->uri() +
                         " is not its current one (it was re-issued): use the newest");
  }
  Caller caller;
  caller.uri = identity->uri();
  caller.role = binding->role;
  if (!caller.isAdmin()) caller.tenants = binding->tenants;
  return caller;
}

Result<Caller> Api::authenticateForwarded(const ApiRequest& request, const Identity& node) {
  if (node.kind != IdentityKind::kNode) {
    return makeError(ErrorCode::kPermissionDenied, "api",
                     "only a node of the cluster may send " + std::string(kOnBehalfOfHeader) +
                         "; " + node.uri() + " is not one");
  }
  auto identity = parseIdentityUri(request.on_behalf_of);
  if (!identity || identity->cluster != options_.cluster || identity->kind == IdentityKind::kNode) {
    return makeError(ErrorCode::kPermissionDenied, "api",
                     "node " + node.uri() + " forwarded a call for " +
                         quoteForMessage(request.on_behalf_of) +
                         ", which is not a user identity of this cluster");
  }
  // The forwarding member checked the caller's certificate (its serial included); the role is
  // read here again, from the same cluster-wide binding.
  auto binding = options_.store.bindings().get(identity->uri());
  if (!binding) {
    if (binding.error().code == ErrorCode::kNotFound) {
      return makeError(ErrorCode::kPermissionDenied, "api",
                       "identity " + identity->uri() + " has no role on this node");
    }
    return std::unexpected(binding.error());
  }
  Caller caller;
  caller.uri = identity->uri();
  caller.role = binding->role;
  caller.via = node.uri();
  if (!caller.isAdmin()) caller.tenants = binding->tenants;
  return caller;
}

std::optional<ApiResponse> Api::authorize(RequestContext& ctx) {
  const ApiRequest& request = ctx.request;
  // Route first, so that a 404 for an unknown path does not depend on who asks.
  RouteTable::Match match = routes_.match(request.method, request.path);
  ctx.route = match.route;
  ctx.params = std::move(match.params);
  if (!match.path_known) {
    return errorResponse(ErrorCode::kNotFound, "no such route: " + quoteForMessage(request.path));
  }
  if (ctx.route == nullptr) {
    std::string allow;
    for (const auto& m : match.allowed_methods) allow += (allow.empty() ? "" : ", ") + m;
    ApiResponse response =
        jsonResponse(405, {{"error",
                            {{"code", "method_not_allowed"},
                             {"message", "method " + request.method + " is not allowed on " +
                                             request.path + "; allowed: " + allow},
                             {"details", json::object()}}}});
    response.headers.emplace_back("Allow", allow);
    return response;
  }

  if (ctx.route->info.open) {
    // No identity is asked for, and none is taken: a certificate sent anyway changes nothing.
    if (!request.query.empty()) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "unknown query parameter " +
                               quoteForMessage(request.query.begin()->first) + " for " +
                               ctx.route->info.pattern + " (it takes none)");
    }
    return std::nullopt;
  }
  auto caller = authenticate(request);
  if (!caller) return errorResponse(caller.error());
  ctx.caller = std::move(*caller);
  if (roleRank(ctx.caller->role) < roleRank(ctx.route->info.min_role)) {
    return errorResponse(ErrorCode::kPermissionDenied,
                         "role " + ctx.caller->role + " may not " + request.method + " " +
                             ctx.route->info.pattern + " (needs " + ctx.route->info.min_role + ")");
  }
  for (const auto& [key, value] : request.query) {
    const auto& allowed = ctx.route->info.allowed_query;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return errorResponse(
          ErrorCode::kInvalidArgument,
          "unknown query parameter " + quoteForMessage(key) + " for " + ctx.route->info.pattern);
    }
    if (key != "label" && request.query.count(key) > 1) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "query parameter " + quoteForMessage(key) + " given more than once");
    }
    if (key == "label" && request.query.count(key) > kMaxLabelFilters) {
      return errorResponse(
          ErrorCode::kInvalidArgument,
          "at most " + std::to_string(kMaxLabelFilters) + " label filters may be given");
    }
  }
  for (const auto& [key, value] : ctx.params) {
    if (key == "name") {
      if (auto ok = checkDnsLabel("vm name", value); !ok) return errorResponse(ok.error());
      ctx.audit_target = value;
    }
  }

  return std::nullopt;
}

}  // namespace qiao
