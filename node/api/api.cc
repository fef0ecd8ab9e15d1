#include "node/api/api.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/crypto.h"
#include "base/files.h"
#include "base/json_input.h"
#include "base/log.h"
#include "network/ipam.h"
#include "node/quotas/quota_service.h"
#include "base/names.h"
#include "node/pki/identity.h"
#include "node/host/baseline.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

const Logger kLog("api");
using nlohmann::json;

constexpr size_t kMaxLabelFilters = 16;
// Audit fields are capped: what a caller sends is kept only as far as it helps a reader.
constexpr size_t kAuditPathMax = 256;
constexpr size_t kAuditIdentityMax = 256;
constexpr const char* kUploadRoute = "/v1/images/{name}/data";

std::string capped(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "...(" + std::to_string(text.size() - max) + " more bytes)";
}

using Handler = ApiResponse (Api::*)(Api::Context&);

struct Route {
  RouteInfo info;
  std::vector<std::string> allowed_query;
};

const std::vector<Route>& routes() {
  static const std::vector<Route> table = {
      {{"GET", "/v1/healthz", "viewer"}, {}},
      {{"GET", "/v1/host", "viewer"}, {}},
      {{"GET", "/v1/host/firmware", "viewer"}, {}},
      {{"GET", "/v1/host/check", "viewer"}, {}},
      {{"GET", "/metrics", "admin"}, {}},
      {{"GET", "/v1/vms", "viewer"}, {"tenant", "state", "label", "limit", "page_token"}},
      {{"POST", "/v1/vms", "operator"}, {"start"}},
      {{"GET", "/v1/vms/{name}", "viewer"}, {"tenant"}},
      {{"DELETE", "/v1/vms/{name}", "operator"}, {"tenant", "force"}},
      {{"POST", "/v1/vms/{name}/actions/{action}", "operator"}, {"tenant"}},
      {{"POST", "/v1/vms/{name}/disks", "operator"}, {"tenant"}},
      {{"DELETE", "/v1/vms/{name}/disks/{volume}", "operator"}, {"tenant"}},
      {{"POST", "/v1/vms/{name}/nics", "operator"}, {"tenant"}},
      {{"POST", "/v1/vms/{name}/resize", "operator"}, {"tenant"}},
      {{"DELETE", "/v1/vms/{name}/nics/{mac}", "operator"}, {"tenant"}},
      {{"GET", "/v1/vms/{name}/console-log", "viewer"}, {"tenant", "tail_bytes"}},
      {{"GET", "/v1/vms/{name}/stats", "viewer"}, {"tenant"}},
      {{"GET", "/v1/volumes", "viewer"}, {"tenant"}},
      {{"POST", "/v1/volumes", "operator"}, {}},
      {{"GET", "/v1/volumes/{name}", "viewer"}, {"tenant"}},
      {{"DELETE", "/v1/volumes/{name}", "operator"}, {"tenant"}},
      {{"POST", "/v1/volumes/{name}/resize", "operator"}, {"tenant"}},
      {{"POST", "/v1/volumes/{name}/copy", "operator"}, {"tenant"}},
      {{"PUT", "/v1/volumes/{name}/limits", "operator"}, {"tenant"}},
      {{"GET", "/v1/networks", "viewer"}, {"tenant"}},
      {{"POST", "/v1/networks", "operator"}, {}},
      {{"GET", "/v1/networks/{name}", "viewer"}, {"tenant"}},
      {{"DELETE", "/v1/networks/{name}", "operator"}, {"tenant"}},
      {{"GET", "/v1/security-groups", "viewer"}, {"tenant"}},
      {{"POST", "/v1/security-groups", "operator"}, {}},
      {{"GET", "/v1/security-groups/{name}", "viewer"}, {"tenant"}},
      {{"PUT", "/v1/security-groups/{name}", "operator"}, {"tenant"}},
      {{"DELETE", "/v1/security-groups/{name}", "operator"}, {"tenant"}},
      {{"GET", "/v1/images", "viewer"}, {"tenant"}},
      {{"POST", "/v1/images", "operator"}, {}},
      {{"GET", "/v1/images/{name}", "viewer"}, {"tenant"}},
      {{"DELETE", "/v1/images/{name}", "operator"}, {"tenant"}},
      {{"PUT", "/v1/images/{name}/data", "operator"}, {"tenant"}},
      {{"GET", "/v1/tasks", "viewer"}, {"tenant", "state", "target", "limit", "page_token"}},
      {{"GET", "/v1/tasks/{id}", "viewer"}, {}},
      {{"POST", "/v1/tasks/{id}/cancel", "operator"}, {}},
      {{"GET", "/v1/events", "viewer"}, {"tenant", "type"}},
      {{"GET", "/v1/quotas", "viewer"}, {"tenant"}},
      {{"GET", "/v1/quotas/{tenant}", "viewer"}, {}},
      {{"PUT", "/v1/quotas/{tenant}", "admin"}, {}},
  };
  return table;
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// Matches "/v1/vms/{name}" against a path; fills the {params}.
bool matchPattern(const std::string& pattern, const std::vector<std::string>& parts,
                  std::map<std::string, std::string>* params) {
  auto want = splitPath(pattern);
  if (want.size() != parts.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}') {
      if (parts[i].empty()) return false;
      found[want[i].substr(1, want[i].size() - 2)] = parts[i];
    } else if (want[i] != parts[i]) {
      return false;
    }
  }
  *params = std::move(found);
  return true;
}

int roleRank(std::string_view role) {
  if (role == "admin") return 3;
  if (role == "operator") return 2;
  if (role == "viewer") return 1;
  return 0;
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
                          const std::string& details_json = {}) {
  return errorResponse(Error{code, "api", message, details_json});
}

// 202 with the task, and where to follow it.
ApiResponse taskAccepted(const TaskRecord& task) {
  ApiResponse response = jsonResponse(202, taskToJson(task));
  response.headers.emplace_back("Location", "/v1/tasks/" + task.id);
  return response;
}

bool isMutating(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

Result<bool> parseBool(std::string_view name, std::string_view value) {
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return makeError(ErrorCode::kInvalidArgument, "api",
                   "query parameter " + std::string(name) + " must be true or false, not " +
                       quoteForMessage(value));
}

Result<int64_t> parseInt(std::string_view name, std::string_view value, int64_t min,
                         int64_t max) {
  int64_t out = 0;
  bool ok = !value.empty() && value.size() <= 18;
  for (char c : value) {
    if (c < '0' || c > '9') ok = false;
    else if (ok) out = out * 10 + (c - '0');
  }
  if (!ok || out < min || out > max) {
    return makeError(ErrorCode::kInvalidArgument, "api",
                     "query parameter " + std::string(name) + " must be an integer from " +
                         std::to_string(min) + " to " + std::to_string(max) + ", not " +
                         quoteForMessage(value));
  }
  return out;
}

}  // namespace

const std::vector<RouteInfo>& routeTable() {
  static const std::vector<RouteInfo> infos = [] {
    std::vector<RouteInfo> out;
    for (const auto& r : routes()) out.push_back(r.info);
    return out;
  }();
  return infos;
}

struct Api::Caller {
  std::string uri;
  std::string role;
  std::vector<std::string> tenants;  // empty for admins: every tenant

  bool isAdmin() const { return role == "admin"; }
  bool canSee(const std::string& tenant) const {
    return isAdmin() || std::find(tenants.begin(), tenants.end(), tenant) != tenants.end();
  }
  bool canMutate(const std::string& tenant) const {
    return roleRank(role) >= roleRank("operator") && canSee(tenant);
  }
};

struct Api::Context {
  const ApiRequest& request;
  std::optional<Caller> caller;
  const Route* route = nullptr;
  std::map<std::string, std::string> params;
  std::string audit_tenant;
  std::string audit_target;

  std::optional<std::string> query(const std::string& key) const {
    auto it = request.query.find(key);
    if (it == request.query.end()) return std::nullopt;
    return it->second;
  }
  // The tenants this request may look at, narrowed by ?tenant= when given.
  Result<std::vector<std::string>> visibleTenants() const {
    auto wanted = query("tenant");
    if (wanted) {
      if (auto ok = checkDnsLabel("tenant", *wanted); !ok) return std::unexpected(ok.error());
      if (!caller->canSee(*wanted)) return std::vector<std::string>{};  // sees nothing
      return std::vector<std::string>{*wanted};
    }
    return caller->isAdmin() ? std::vector<std::string>{} : caller->tenants;
  }
  // visibleTenants() gives an empty list both for "every tenant" (an admin with no ?tenant=)
  // and for "none"; this tells them apart.
  bool seesNothing(const std::vector<std::string>& tenants) const {
    return tenants.empty() && !(caller->isAdmin() && !query("tenant"));
  }
  // ?limit= and ?page_token= of the list routes.
  Status readPaging(int* limit, std::string* page_token) const {
    if (auto value = query("limit")) {
      auto n = parseInt("limit", *value, 1, 1000);
      if (!n) return std::unexpected(n.error());
      *limit = static_cast<int>(*n);
    }
    if (auto token = query("page_token")) *page_token = *token;
    return {};
  }
};

Api::Api(ApiDeps deps)
    : deps_(std::move(deps)),
      strangers_(std::chrono::seconds(deps_.audit_summary_interval_s), 1024) {}

ApiResponse Api::handle(const ApiRequest& request) {
  auto started = std::chrono::steady_clock::now();
  Context ctx{request, std::nullopt, nullptr, {}, {}, {}};
  ApiResponse response;
  if (request.transport_error) {
    // What the server could not read is answered here, so that it is counted and audited.
    response = errorResponse(*request.transport_error);
    if (request.transport_error->code == ErrorCode::kUnavailable) {
      response.headers.emplace_back("Retry-After", "5");
    }
    if (auto caller = authenticate(request)) ctx.caller = std::move(*caller);
  } else {
    response = dispatch(ctx);
  }
  finish(ctx, response, started);
  return response;
}

std::optional<ApiResponse> Api::admit(ApiRequest& request) {
  auto started = std::chrono::steady_clock::now();
  Context ctx{request, std::nullopt, nullptr, {}, {}, {}};
  std::optional<ApiResponse> refused = authorize(ctx);
  if (!refused && ctx.route->info.pattern == kUploadRoute) refused = admitUpload(ctx, request);
  if (refused) finish(ctx, *refused, started);
  return refused;
}

void Api::finish(const Context& ctx, const ApiResponse& response,
                 std::chrono::steady_clock::time_point started) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  deps_.metrics.observeRequest(ctx.request.method,
                               ctx.route ? ctx.route->info.pattern : "unmatched",
                               response.status, seconds);
  // Every change, allowed or refused; every refusal of who the caller is or what it may do;
  // everything the server could not read. Allowed reads are counted in the metrics only.
  if (isMutating(ctx.request.method) || response.status == 401 || response.status == 403 ||
      ctx.request.transport_error) {
    audit(ctx, response.status);
  }
}

void Api::audit(const Context& ctx, int status) {
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
  entry.identity = capped(ctx.request.peer_identity_uri, kAuditIdentityMax);
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
  if (auto appended = deps_.store.appendAudit(entry); !appended) {
    kLog.error("cannot append to the audit log", {{"error", appended.error().describe()}});
  }
}

Result<Api::Caller> Api::authenticate(const ApiRequest& request) {
  if (request.peer_identity_uri.empty()) {
    std::string why = request.peer_error.empty() ? "" : " (" + request.peer_error + ")";
    return makeError(ErrorCode::kUnauthenticated, "api",
                     "a client certificate of this cluster with a qiao:// identity is required" +
                         why);
  }
  auto identity = parseIdentityUri(request.peer_identity_uri);
  if (!identity) {
    return makeError(ErrorCode::kUnauthenticated, "api",
                     "the client certificate's identity is not valid: " +
                         identity.error().message);
  }
  if (identity->cluster != deps_.cluster) {
    return makeError(ErrorCode::kPermissionDenied, "api",
                     "identity " + identity->uri() + " belongs to cluster " + identity->cluster +
                         "; this node is in cluster " + deps_.cluster);
  }
  auto binding = deps_.store.getBinding(identity->uri());
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

std::optional<ApiResponse> Api::authorize(Context& ctx) {
  const ApiRequest& request = ctx.request;
  // Route first, so that a 404 for an unknown path does not depend on who asks.
  auto parts = splitPath(request.path);
  bool path_known = false;
  std::set<std::string> allowed_methods;
  for (const auto& route : routes()) {
    std::map<std::string, std::string> params;
    if (!matchPattern(route.info.pattern, parts, &params)) continue;
    path_known = true;
    allowed_methods.insert(route.info.method);
    if (route.info.method == request.method) {
      ctx.route = &route;
      ctx.params = std::move(params);
      break;
    }
  }
  if (!path_known) {
    return errorResponse(ErrorCode::kNotFound, "no such route: " + quoteForMessage(request.path));
  }
  if (ctx.route == nullptr) {
    std::string allow;
    for (const auto& m : allowed_methods) allow += (allow.empty() ? "" : ", ") + m;
    ApiResponse response = jsonResponse(
        405, {{"error",
               {{"code", "method_not_allowed"},
                {"message", "method " + request.method + " is not allowed on " + request.path +
                                "; allowed: " + allow},
                {"details", json::object()}}}});
    response.headers.emplace_back("Allow", allow);
    return response;
  }

  auto caller = authenticate(request);
  if (!caller) return errorResponse(caller.error());
  ctx.caller = std::move(*caller);
  if (roleRank(ctx.caller->role) < roleRank(ctx.route->info.min_role)) {
    return errorResponse(ErrorCode::kPermissionDenied,
                         "role " + ctx.caller->role + " may not " + request.method + " " +
                             ctx.route->info.pattern + " (needs " + ctx.route->info.min_role +
                             ")");
  }
  for (const auto& [key, value] : request.query) {
    const auto& allowed = ctx.route->allowed_query;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "unknown query parameter " + quoteForMessage(key) + " for " +
                               ctx.route->info.pattern);
    }
    if (key != "label" && request.query.count(key) > 1) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "query parameter " + quoteForMessage(key) + " given more than once");
    }
    if (key == "label" && request.query.count(key) > kMaxLabelFilters) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "at most " + std::to_string(kMaxLabelFilters) +
                               " label filters may be given");
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

ApiResponse Api::dispatch(Context& ctx) {
  if (auto refused = authorize(ctx)) return *refused;
  static const std::map<std::pair<std::string, std::string>, Handler> handlers = {
      {{"GET", "/v1/healthz"}, &Api::healthz},
      {{"GET", "/v1/host"}, &Api::host},
      {{"GET", "/v1/host/firmware"}, &Api::hostFirmware},
      {{"GET", "/v1/host/check"}, &Api::hostCheck},
      {{"GET", "/metrics"}, &Api::metrics},
      {{"GET", "/v1/vms"}, &Api::listVms},
      {{"POST", "/v1/vms"}, &Api::createVm},
      {{"GET", "/v1/vms/{name}"}, &Api::getVm},
      {{"DELETE", "/v1/vms/{name}"}, &Api::deleteVm},
      {{"POST", "/v1/vms/{name}/actions/{action}"}, &Api::vmAction},
      {{"POST", "/v1/vms/{name}/disks"}, &Api::addVmDisk},
      {{"DELETE", "/v1/vms/{name}/disks/{volume}"}, &Api::removeVmDisk},
      {{"POST", "/v1/vms/{name}/nics"}, &Api::addVmNic},
      {{"POST", "/v1/vms/{name}/resize"}, &Api::resizeVm},
      {{"DELETE", "/v1/vms/{name}/nics/{mac}"}, &Api::removeVmNic},
      {{"GET", "/v1/vms/{name}/console-log"}, &Api::consoleLog},
      {{"GET", "/v1/vms/{name}/stats"}, &Api::vmStats},
      {{"GET", "/v1/volumes"}, &Api::listVolumes},
      {{"POST", "/v1/volumes"}, &Api::createVolume},
      {{"GET", "/v1/volumes/{name}"}, &Api::getVolume},
      {{"DELETE", "/v1/volumes/{name}"}, &Api::deleteVolume},
      {{"POST", "/v1/volumes/{name}/resize"}, &Api::resizeVolume},
      {{"POST", "/v1/volumes/{name}/copy"}, &Api::copyVolume},
      {{"PUT", "/v1/volumes/{name}/limits"}, &Api::setVolumeLimits},
      {{"GET", "/v1/networks"}, &Api::listNetworks},
      {{"POST", "/v1/networks"}, &Api::createNetwork},
      {{"GET", "/v1/networks/{name}"}, &Api::getNetwork},
      {{"DELETE", "/v1/networks/{name}"}, &Api::deleteNetwork},
      {{"GET", "/v1/security-groups"}, &Api::listGroups},
      {{"POST", "/v1/security-groups"}, &Api::createGroup},
      {{"GET", "/v1/security-groups/{name}"}, &Api::getGroup},
      {{"PUT", "/v1/security-groups/{name}"}, &Api::replaceGroup},
      {{"DELETE", "/v1/security-groups/{name}"}, &Api::deleteGroup},
      {{"GET", "/v1/images"}, &Api::listImages},
      {{"POST", "/v1/images"}, &Api::createImage},
      {{"GET", "/v1/images/{name}"}, &Api::getImage},
      {{"DELETE", "/v1/images/{name}"}, &Api::deleteImage},
      {{"PUT", "/v1/images/{name}/data"}, &Api::uploadImage},
      {{"GET", "/v1/tasks"}, &Api::listTasks},
      {{"GET", "/v1/tasks/{id}"}, &Api::getTask},
      {{"POST", "/v1/tasks/{id}/cancel"}, &Api::cancelTask},
      {{"GET", "/v1/quotas"}, &Api::listQuotas},
      {{"GET", "/v1/quotas/{tenant}"}, &Api::getQuota},
      {{"PUT", "/v1/quotas/{tenant}"}, &Api::setQuota},
      {{"GET", "/v1/events"}, &Api::events},
  };
  auto handler = handlers.find({ctx.route->info.method, ctx.route->info.pattern});
  if (handler == handlers.end()) {
    return errorResponse(ErrorCode::kInternal, "route without a handler");
  }
  return (this->*(handler->second))(ctx);
}

ApiResponse Api::healthz(Context&) {
  bool libvirt = deps_.vms.libvirtConnected();
  return jsonResponse(200, {{"status", libvirt ? "ok" : "degraded"},
                            {"libvirt", libvirt ? "connected" : "disconnected"},
                            {"version", deps_.version}});
}

ApiResponse Api::host(Context&) {
  json body = {{"hostname", deps_.host.hostname},
               {"arch", deps_.host.arch},
               {"cpu_model", deps_.host.cpu_model},
               {"cores", deps_.host.cores},
               {"memory_bytes", deps_.host.memory_bytes},
               {"kvm_device", deps_.host.kvm_device},
               {"accelerator", deps_.accelerator},
               {"accelerator_reason", deps_.accelerator_reason},
               {"qiaod_version", deps_.version},
               {"cluster", deps_.cluster},
               {"libvirt_version", nullptr},
               {"qemu_version", nullptr}};
  if (auto info = deps_.hypervisor.info()) {
    body["libvirt_version"] = info->libvirt_version;
    body["qemu_version"] = info->qemu_version;
    body["libvirt_uri"] = info->uri;
  }
  return jsonResponse(200, body);
}

ApiResponse Api::hostCheck(Context&) {
  BaselineFacts facts;
  facts.libvirt_connected = deps_.vms.libvirtConnected();
  if (auto info = deps_.hypervisor.info()) {
    facts.libvirt_version = info->libvirt_version;
    facts.qemu_version = info->qemu_version;
  }
  facts.accelerator = deps_.accelerator;
  facts.accelerator_reason = deps_.accelerator_reason;
  readKernelFacts(facts);
  facts.bios_date = isoDateFromSmbios(readHostFirmware().bios_date);
  std::vector<CheckResult> results;
  auto baseline = loadBaseline(deps_.baseline_file);
  if (baseline) {
    for (const auto& arch : baseline->firmware_archs) {
      FirmwareRequest want{arch, arch == "aarch64" ? "virt" : "q35", "uefi", {}, {"enrolled-keys"}};
      if (selectFirmware(deps_.firmware, want)) facts.uefi_archs.insert(arch);
    }
    results = checkHost(*baseline, facts);
  } else {
    // A baseline that does not parse is a failed check, naming what is wrong in it.
    results = checkHost(Baseline{}, facts);
    results.front() = {"baseline", Verdict::kFail, baseline.error().message};
  }
  json checks = json::array();
  for (const auto& r : results) {
    checks.push_back({{"name", r.name}, {"verdict", verdictName(r.verdict)}, {"detail", r.detail}});
  }
  return jsonResponse(200, {{"baseline_file", deps_.baseline_file},
                            {"checks", std::move(checks)},
                            {"ok", mayTakeGuests(results)}});
}

ApiResponse Api::hostFirmware(Context&) {
  json builds = json::array();
  for (const auto& d : deps_.firmware.descriptors) {
    json targets = json::array();
    for (const auto& t : d.targets) {
      targets.push_back({{"architecture", t.architecture}, {"machines", t.machines}});
    }
    builds.push_back({{"descriptor", d.source},
                      {"description", d.description},
                      {"interfaces", d.interface_types},
                      {"device", d.device},
                      {"executable", d.executable},
                      {"nvram_template", d.nvram_template},
                      {"targets", std::move(targets)},
                      {"features", d.features}});
  }
  HostFirmware host = readHostFirmware();
  return jsonResponse(200, {{"builds", std::move(builds)},
                            {"warnings", deps_.firmware.warnings},
                            {"host",
                             {{"arch", deps_.host.arch},
                              {"cpu_model", deps_.host.cpu_model},
                              {"microcode", host.microcode},
                              {"boot_mode", host.boot_mode},
                              {"secure_boot", host.secure_boot},
                              {"bios_vendor", host.bios_vendor},
                              {"bios_version", host.bios_version},
                              {"bios_date", host.bios_date},
                              {"system_vendor", host.system_vendor},
                              {"product_name", host.product_name},
                              {"device_tree_model", host.device_tree_model}}}});
}

ApiResponse Api::metrics(Context&) {
  std::map<std::string, int> by_state;
  if (auto counts = deps_.store.countVmsByState()) by_state = *counts;
  // One libvirt call for every domain, no QMP (docs/operators/monitoring.md).
  std::vector<VmFigures> vms = deps_.vms.metricsFigures();
  ApiResponse response;
  response.content_type = "text/plain; version=0.0.4";
  response.body = deps_.metrics.render(by_state, vms);
  return response;
}

std::optional<ApiResponse> Api::listScope(Context& ctx, std::vector<std::string>* tenants) {
  auto visible = ctx.visibleTenants();
  if (!visible) return errorResponse(visible.error());
  if (ctx.seesNothing(*visible)) {
    return jsonResponse(200, {{"items", json::array()}, {"next_page_token", ""}});
  }
  *tenants = std::move(*visible);
  return std::nullopt;
}

ApiResponse Api::listVms(Context& ctx) {
  VmFilter filter;
  if (auto early = listScope(ctx, &filter.tenants)) return *early;
  if (auto state = ctx.query("state")) filter.state = *state;
  auto range = ctx.request.query.equal_range("label");
  for (auto it = range.first; it != range.second; ++it) {
    auto eq = it->second.find('=');
    if (eq == std::string::npos || eq == 0) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "label filter must be key=value, not " + quoteForMessage(it->second));
    }
    filter.labels.emplace_back(it->second.substr(0, eq), it->second.substr(eq + 1));
  }
  if (auto paging = ctx.readPaging(&filter.limit, &filter.page_token); !paging) {
    return errorResponse(paging.error());
  }
  auto page = deps_.store.listVms(filter);
  if (!page) return errorResponse(page.error());
  json items = json::array();
  for (const auto& vm : page->items) items.push_back(vmToJson(vm));
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", page->next_page_token}});
}

ApiResponse Api::createVm(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  bool start = true;
  if (auto value = ctx.query("start")) {
    auto parsed = parseBool("start", *value);
    if (!parsed) return errorResponse(parsed.error());
    start = *parsed;
  }
  // Host paths are checked only after the caller is known to be an admin, so that nobody
  // else can probe the host's files through the difference between a 400 and a 403.
  SpecLimits parse_limits = deps_.limits;
  parse_limits.check_boot_files = false;
  auto spec = parseVmSpec(ctx.request.body, parse_limits);
  if (!spec) return errorResponse(spec.error());
  ctx.audit_target = spec->name;
  auto tenant = tenantToCreateIn(ctx, spec->tenant, "vms");
  if (!tenant) return errorResponse(tenant.error());
  spec->tenant = *tenant;
  if (spec->boot && !ctx.caller->isAdmin()) {
    return errorResponse(ErrorCode::kPermissionDenied,
                         "boot (a direct kernel boot from host paths) is allowed for admins only");
  }
  if (auto valid = validateVmSpec(*spec, deps_.limits); !valid) return errorResponse(valid.error());
  int64_t disk_gib = 0;
  for (const auto& disk : spec->disks) {
    if (disk.image.empty()) continue;  // a volume the tenant has counts already
    int64_t image_gib = 0;
    if (auto image = findImageFor(deps_.store, spec->tenant, disk.image)) {
      image_gib = gibOf(image->virtual_size);  // 0 while it is being imported
    }
    disk_gib += std::max<int64_t>(disk.size_gib, image_gib);
  }
  auto quota = withinQuota(spec->tenant, {{"vms", 1},
                                          {"vcpus", std::max(spec->vcpus, spec->max_vcpus)},
                                          {"memory_mib",
                                           std::max(spec->memory_mib, spec->max_memory_mib)},
                                          {"volume_gib", disk_gib}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.vms.createVm(std::move(*spec), start, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

Result<std::string> Api::tenantToCreateIn(Context& ctx, const std::string& requested,
                                          const std::string& kind) {
  std::string tenant = requested;
  if (tenant.empty()) {
    if (ctx.caller->tenants.size() != 1) {
      return makeError(ErrorCode::kInvalidArgument, "api",
                       "the spec must name its tenant (this identity may act in " +
                           std::string(ctx.caller->isAdmin() ? "every tenant" : "several tenants") +
                           ")");
    }
    tenant = ctx.caller->tenants.front();
  }
  ctx.audit_tenant = tenant;
  if (!ctx.caller->canMutate(tenant)) {
    return makeError(ErrorCode::kPermissionDenied, "api",
                     "identity " + ctx.caller->uri + " may not create " + kind + " in tenant " +
                         tenant);
  }
  return tenant;
}

// The one object of `kind` named `name` among those found in the caller's tenants.
template <typename Record>
Result<Record> Api::pickOne(Context& ctx, const std::string& kind, const std::string& name,
                            Result<std::vector<Record>> found) {
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return makeError(ErrorCode::kNotFound, "api", "no " + kind + " named " + name);
  if (found->size() > 1) {
    std::string list;
    for (const auto& r : *found) list += (list.empty() ? "" : ", ") + r.tenant;
    return makeError(ErrorCode::kConflict, "api",
                     "ambiguous: " + kind + " " + name + " exists in tenants " + list +
                         "; pass ?tenant=");
  }
  ctx.audit_tenant = found->front().tenant;
  return found->front();
}

Result<VmRecord> Api::resolveVm(Context& ctx) {
  const std::string& name = ctx.params.at("name");
  auto tenants = ctx.visibleTenants();
  if (!tenants) return std::unexpected(tenants.error());
  if (ctx.seesNothing(*tenants)) return makeError(ErrorCode::kNotFound, "api", "no vm named " + name);
  return pickOne<VmRecord>(ctx, "vm", name, deps_.store.findVmsByName(name, *tenants));
}

Status Api::mayChange(Context& ctx, const std::string& tenant, const std::string& kind) {
  if (ctx.caller->canMutate(tenant)) return {};
  return makeError(ErrorCode::kPermissionDenied, "api",
                   "identity " + ctx.caller->uri + " may not change " + kind + " in tenant " +
                       tenant);
}

Result<VmRecord> Api::resolveVmToChange(Context& ctx) {
  auto vm = resolveVm(ctx);
  if (!vm) return vm;
  if (auto allowed = mayChange(ctx, vm->tenant, "vms"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return vm;
}

ApiResponse Api::getVm(Context& ctx) {
  auto vm = resolveVm(ctx);
  if (!vm) return errorResponse(vm.error());
  json out = vmToJson(*vm);
  // The NICs as plugged: their addresses and MACs (chosen by Qiao when the spec left them).
  auto ports = deps_.store.listPorts("vm", vm->uuid);
  if (!ports) return errorResponse(ports.error());
  out["ports"] = json::array();
  for (const auto& p : *ports) out["ports"].push_back(portToJson(p));
  return jsonResponse(200, out);
}

ApiResponse Api::deleteVm(Context& ctx) {
  bool force = false;
  if (auto value = ctx.query("force")) {
    auto parsed = parseBool("force", *value);
    if (!parsed) return errorResponse(parsed.error());
    force = *parsed;
  }
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.deleteVm(*vm, force, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::vmAction(Context& ctx) {
  const std::string& action = ctx.params.at("action");
  if (!VmService::isAction(action)) {
    return errorResponse(ErrorCode::kNotFound,
                         "no such action " + quoteForMessage(action) +
                             "; actions: start, stop, force-stop, reboot, pause, resume");
  }
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.action(*vm, action, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::addVmDisk(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  SpecLimits limits = deps_.limits;
  limits.check_boot_files = false;
  auto disk = parseDiskSpec(ctx.request.body, limits);
  if (!disk) return errorResponse(disk.error());
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  int64_t disk_gib = 0;
  if (!disk->image.empty()) {
    auto image = findImageFor(deps_.store, vm->tenant, disk->image);
    disk_gib = std::max<int64_t>(disk->size_gib, image ? gibOf(image->virtual_size) : 0);
  }
  auto quota = withinQuota(vm->tenant, {{"volume_gib", disk_gib}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.vms.addDisk(*vm, std::move(*disk), ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::removeVmDisk(Context& ctx) {
  const std::string& volume = ctx.params.at("volume");
  if (auto ok = checkDnsLabel("volume", volume); !ok) return errorResponse(ok.error());
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.removeDisk(*vm, volume, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::vmStats(Context& ctx) {
  auto vm = resolveVm(ctx);
  if (!vm) return errorResponse(vm.error());
  auto stats = deps_.vms.stats(*vm);
  if (!stats) return errorResponse(stats.error());
  return jsonResponse(200, *stats);
}

ApiResponse Api::addVmNic(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto nic = parseNicSpec(ctx.request.body);
  if (!nic) return errorResponse(nic.error());
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.addNic(*vm, std::move(*nic), ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::resizeVm(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto resize = parseVmResize(ctx.request.body, deps_.limits);
  if (!resize) return errorResponse(resize.error());
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.resize(*vm, resize->vcpus, resize->memory_mib, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::removeVmNic(Context& ctx) {
  auto mac = parseMac(ctx.params.at("mac"), "mac");
  if (!mac) return errorResponse(mac.error());
  auto vm = resolveVmToChange(ctx);
  if (!vm) return errorResponse(vm.error());
  auto task = deps_.vms.removeNic(*vm, *mac, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::consoleLog(Context& ctx) {
  int64_t tail = 65536;
  if (auto value = ctx.query("tail_bytes")) {
    auto parsed = parseInt("tail_bytes", *value, 1, deps_.console_log_max_bytes);
    if (!parsed) return errorResponse(parsed.error());
    tail = *parsed;
  }
  auto vm = resolveVm(ctx);
  if (!vm) return errorResponse(vm.error());
  auto text = deps_.vms.consoleLog(*vm, static_cast<size_t>(tail));
  if (!text) return errorResponse(text.error());
  ApiResponse response;
  response.content_type = "text/plain; charset=utf-8";
  response.body = std::move(*text);
  return response;
}

Status Api::checkJsonBody(const Context& ctx) {
  // "application/json", with parameters (; charset=utf-8) or none; not application/jsonx.
  const auto& ct = ctx.request.content_type;
  const std::string_view media = std::string_view(ct).substr(0, ct.find(';'));
  auto trimmed = media.substr(0, media.find_last_not_of(" \t") + 1);
  if (!ct.empty() && trimmed != "application/json") {
    return makeError(ErrorCode::kInvalidArgument, "api",
                     "Content-Type must be application/json, not " + quoteForMessage(ct));
  }
  return {};
}

ApiResponse Api::listVolumes(Context& ctx) {
  std::vector<std::string> tenants;
  if (auto early = listScope(ctx, &tenants)) return *early;
  auto found = deps_.store.listVolumes(tenants);
  if (!found) return errorResponse(found.error());
  json items = json::array();
  for (const auto& v : *found) items.push_back(volumeToJson(v));
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", ""}});
}

ApiResponse Api::createVolume(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto spec = parseVolumeSpec(ctx.request.body, deps_.volume_limits);
  if (!spec) return errorResponse(spec.error());
  ctx.audit_target = spec->name;
  auto tenant = tenantToCreateIn(ctx, spec->tenant, "volumes");
  if (!tenant) return errorResponse(tenant.error());
  spec->tenant = *tenant;
  auto quota = withinQuota(*tenant, {{"volume_gib", spec->size_gib}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.volumes.create(*spec, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

Result<VolumeRecord> Api::resolveVolume(Context& ctx, bool to_change) {
  const std::string& name = ctx.params.at("name");
  ctx.audit_target = name;
  auto tenants = ctx.visibleTenants();
  if (!tenants) return std::unexpected(tenants.error());
  if (ctx.seesNothing(*tenants)) {
    return makeError(ErrorCode::kNotFound, "api", "no volume named " + name);
  }
  auto volume = pickOne<VolumeRecord>(ctx, "volume", name,
                                      deps_.store.listVolumes(*tenants, name));
  if (!volume || !to_change) return volume;
  if (auto allowed = mayChange(ctx, volume->tenant, "volumes"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return volume;
}

ApiResponse Api::getVolume(Context& ctx) {
  auto volume = resolveVolume(ctx, false);
  if (!volume) return errorResponse(volume.error());
  return jsonResponse(200, volumeToJson(*volume));
}

ApiResponse Api::deleteVolume(Context& ctx) {
  auto volume = resolveVolume(ctx, true);
  if (!volume) return errorResponse(volume.error());
  auto task = deps_.volumes.remove(*volume, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

namespace {

Error noNetworks() {
  return Error{ErrorCode::kUnavailable, "api", "this node has no networks (Open vSwitch)"};
}

}  // namespace

ApiResponse Api::listNetworks(Context& ctx) {
  std::vector<std::string> tenants;
  if (auto early = listScope(ctx, &tenants)) return *early;
  auto found = deps_.store.listNetworks(tenants);
  if (!found) return errorResponse(found.error());
  json items = json::array();
  for (const auto& n : *found) items.push_back(networkToJson(n));
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", ""}});
}

ApiResponse Api::createNetwork(Context& ctx) {
  if (deps_.networks == nullptr) return errorResponse(noNetworks());
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto spec = parseNetworkSpec(ctx.request.body);
  if (!spec) return errorResponse(spec.error());
  ctx.audit_target = spec->name;
  auto tenant = tenantToCreateIn(ctx, spec->tenant, "networks");
  if (!tenant) return errorResponse(tenant.error());
  spec->tenant = *tenant;
  auto quota = withinQuota(*tenant, {{"networks", 1}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.networks->create(*spec, ctx.caller->uri, ctx.caller->isAdmin());
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

Result<NetworkRecord> Api::resolveNetwork(Context& ctx, bool to_change) {
  const std::string& name = ctx.params.at("name");
  ctx.audit_target = name;
  auto tenants = ctx.visibleTenants();
  if (!tenants) return std::unexpected(tenants.error());
  if (ctx.seesNothing(*tenants)) {
    return makeError(ErrorCode::kNotFound, "api", "no network named " + name);
  }
  auto network = pickOne<NetworkRecord>(ctx, "network", name,
                                        deps_.store.listNetworks(*tenants, name));
  if (!network || !to_change) return network;
  if (auto allowed = mayChange(ctx, network->tenant, "networks"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return network;
}

ApiResponse Api::getNetwork(Context& ctx) {
  auto network = resolveNetwork(ctx, false);
  if (!network) return errorResponse(network.error());
  json out = networkToJson(*network);
  auto ports = deps_.store.listPorts("network", network->uuid);
  if (!ports) return errorResponse(ports.error());
  out["ports"] = json::array();
  for (const auto& p : *ports) out["ports"].push_back(portToJson(p));
  return jsonResponse(200, out);
}

ApiResponse Api::deleteNetwork(Context& ctx) {
  if (deps_.networks == nullptr) return errorResponse(noNetworks());
  auto network = resolveNetwork(ctx, true);
  if (!network) return errorResponse(network.error());
  auto task = deps_.networks->remove(*network, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::listGroups(Context& ctx) {
  std::vector<std::string> tenants;
  if (auto early = listScope(ctx, &tenants)) return *early;
  auto found = deps_.store.listSecurityGroups(tenants);
  if (!found) return errorResponse(found.error());
  json items = json::array();
  for (const auto& g : *found) items.push_back(securityGroupToJson(g));
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", ""}});
}

ApiResponse Api::createGroup(Context& ctx) {
  if (deps_.networks == nullptr) return errorResponse(noNetworks());
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto spec = parseSecurityGroupSpec(ctx.request.body, /*rules_only=*/false);
  if (!spec) return errorResponse(spec.error());
  ctx.audit_target = spec->name;
  auto tenant = tenantToCreateIn(ctx, spec->tenant, "security groups");
  if (!tenant) return errorResponse(tenant.error());
  spec->tenant = *tenant;
  auto group = deps_.networks->createGroup(*spec);
  if (!group) return errorResponse(group.error());
  return jsonResponse(201, securityGroupToJson(*group));
}

Result<SecurityGroupRecord> Api::resolveGroup(Context& ctx, bool to_change) {
  const std::string& name = ctx.params.at("name");
  ctx.audit_target = name;
  auto tenants = ctx.visibleTenants();
  if (!tenants) return std::unexpected(tenants.error());
  if (ctx.seesNothing(*tenants)) {
    return makeError(ErrorCode::kNotFound, "api", "no security group named " + name);
  }
  auto group = pickOne<SecurityGroupRecord>(ctx, "security group", name,
                                            deps_.store.listSecurityGroups(*tenants, name));
  if (!group || !to_change) return group;
  if (auto allowed = mayChange(ctx, group->tenant, "security groups"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return group;
}

ApiResponse Api::getGroup(Context& ctx) {
  auto group = resolveGroup(ctx, false);
  if (!group) return errorResponse(group.error());
  return jsonResponse(200, securityGroupToJson(*group));
}

ApiResponse Api::replaceGroup(Context& ctx) {
  if (deps_.networks == nullptr) return errorResponse(noNetworks());
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto spec = parseSecurityGroupSpec(ctx.request.body, /*rules_only=*/true);
  if (!spec) return errorResponse(spec.error());
  auto group = resolveGroup(ctx, true);
  if (!group) return errorResponse(group.error());
  auto replaced = deps_.networks->replaceRules(*group, spec->rules);
  if (!replaced) return errorResponse(replaced.error());
  return jsonResponse(200, securityGroupToJson(*replaced));
}

ApiResponse Api::deleteGroup(Context& ctx) {
  if (deps_.networks == nullptr) return errorResponse(noNetworks());
  auto group = resolveGroup(ctx, true);
  if (!group) return errorResponse(group.error());
  if (auto deleted = deps_.networks->deleteGroup(*group); !deleted) {
    return errorResponse(deleted.error());
  }
  return jsonResponse(200, {{"name", group->name}, {"tenant", group->tenant}, {"deleted", true}});
}

ApiResponse Api::resizeVolume(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto size = parseResize(ctx.request.body, deps_.volume_limits);
  if (!size) return errorResponse(size.error());
  auto volume = resolveVolume(ctx, true);
  if (!volume) return errorResponse(volume.error());
  auto quota = withinQuota(volume->tenant, {{"volume_gib", *size - gibOf(volume->size_bytes)}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.volumes.resize(*volume, *size, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::copyVolume(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto request = parseCopy(ctx.request.body, deps_.volume_limits);
  if (!request) return errorResponse(request.error());
  auto volume = resolveVolume(ctx, true);
  if (!volume) return errorResponse(volume.error());
  auto quota = withinQuota(volume->tenant, {{"volume_gib", gibOf(volume->size_bytes)}});
  if (!quota) return errorResponse(quota.error());
  auto task = deps_.volumes.copy(*volume, *request, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::setVolumeLimits(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto qos = parseQosBody(ctx.request.body);
  if (!qos) return errorResponse(qos.error());
  auto volume = resolveVolume(ctx, true);
  if (!volume) return errorResponse(volume.error());
  auto task = deps_.volumes.setLimits(*volume, *qos, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

Result<std::optional<std::vector<std::string>>> Api::imageScope(Context& ctx) {
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

ApiResponse Api::listImages(Context& ctx) {
  auto scope = imageScope(ctx);
  if (!scope) return errorResponse(scope.error());
  json items = json::array();
  if (*scope) {
    auto found = deps_.store.listImages(**scope);
    if (!found) return errorResponse(found.error());
    for (const auto& image : *found) items.push_back(imageToJson(image));
  }
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", ""}});
}

Result<ImageRecord> Api::resolveImage(Context& ctx, bool to_change) {
  const std::string& name = ctx.params.at("name");
  ctx.audit_target = name;
  auto scope = imageScope(ctx);
  if (!scope) return std::unexpected(scope.error());
  if (!*scope) return makeError(ErrorCode::kNotFound, "api", "no image named " + name);
  auto found = deps_.store.listImages(**scope, name);
  if (!found) return std::unexpected(found.error());
  preferOwnImages(*found);
  auto image = pickOne<ImageRecord>(ctx, "image", name, std::move(*found));
  if (!image || !to_change) return image;
  if (image->tenant.empty()) {
    if (!ctx.caller->isAdmin()) {
      return makeError(ErrorCode::kPermissionDenied, "api",
                       "public images are changed by admins only");
    }
  } else if (auto allowed = mayChange(ctx, image->tenant, "images"); !allowed) {
    return std::unexpected(allowed.error());
  }
  return image;
}

std::optional<ApiResponse> Api::admitUpload(Context& ctx, ApiRequest& request) {
  auto image = resolveImage(ctx, true);
  if (!image) return errorResponse(image.error());
  if (image->state != "pending") {
    return errorResponse(ErrorCode::kConflict,
                         "image " + ctx.params.at("name") + " is " + image->state +
                             "; data is taken only once, by an image created without "
                             "source_path");
  }
  const auto& limits = deps_.uploads;
  if (!limits.dir.empty()) {
    const int64_t need = std::max<int64_t>(request.declared_length, 0);
    auto room = freeBytes(limits.dir);
    if (room && *room - need < limits.reserve_bytes) {
      return errorResponse(
          ErrorCode::kInsufficientStorage,
          "no room for the upload: " + std::to_string(*room >> 20) + " MiB are free in " +
              limits.dir + ", the upload declares " + std::to_string(need >> 20) +
              " MiB, and " + std::to_string(limits.reserve_bytes >> 20) +
              " MiB must stay free (images.upload_reserve_mib)");
    }
  }
  // One slot of the tenant's, held as long as the request lives.
  const std::string tenant = image->tenant;
  int64_t most = limits.per_tenant;
  if (deps_.quotas != nullptr && !tenant.empty()) {
    auto quota = deps_.quotas->limits(tenant);
    if (!quota) return errorResponse(quota.error());
    most = quota->at("uploads");
  }
  Slots::Counts counts;
  request.admission = uploads_.take(
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

Result<std::unique_lock<std::mutex>> Api::withinQuota(const std::string& tenant,
                                                      const QuotaFigures& delta) {
  if (deps_.quotas == nullptr || tenant.empty()) return std::unique_lock<std::mutex>();
  auto guard = deps_.quotas->guard();
  if (auto ok = deps_.quotas->check(tenant, delta); !ok) return std::unexpected(ok.error());
  return guard;
}

Result<json> Api::quotaOf(const std::string& tenant) {
  auto limits = deps_.quotas->limits(tenant);
  if (!limits) return std::unexpected(limits.error());
  auto usage = deps_.quotas->usage(tenant);
  if (!usage) return std::unexpected(usage.error());
  (*usage)["uploads"] = uploads_.held(tenant);
  return json{{"tenant", tenant}, {"limits", *limits}, {"usage", *usage}};
}

ApiResponse Api::listQuotas(Context& ctx) {
  if (deps_.quotas == nullptr) return jsonResponse(200, {{"items", json::array()}, {"next_page_token", ""}});
  std::vector<std::string> tenants;
  if (auto early = listScope(ctx, &tenants)) return *early;
  if (tenants.empty()) {  // an admin without ?tenant=: the tenants whose quotas were set
    auto set = deps_.quotas->tenantsWithQuotas();
    if (!set) return errorResponse(set.error());
    tenants = *set;
  }
  json items = json::array();
  for (const auto& t : tenants) {
    auto quota = quotaOf(t);
    if (!quota) return errorResponse(quota.error());
    items.push_back(std::move(*quota));
  }
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", ""}});
}

ApiResponse Api::getQuota(Context& ctx) {
  const std::string& tenant = ctx.params.at("tenant");
  if (auto ok = checkDnsLabel("tenant", tenant); !ok) return errorResponse(ok.error());
  if (!ctx.caller->canSee(tenant) || deps_.quotas == nullptr) {
    return errorResponse(ErrorCode::kNotFound, "no quotas for tenant " + tenant);
  }
  auto quota = quotaOf(tenant);
  if (!quota) return errorResponse(quota.error());
  return jsonResponse(200, *quota);
}

ApiResponse Api::setQuota(Context& ctx) {
  const std::string& tenant = ctx.params.at("tenant");
  if (auto ok = checkDnsLabel("tenant", tenant); !ok) return errorResponse(ok.error());
  ctx.audit_tenant = tenant;
  if (deps_.quotas == nullptr) return errorResponse(ErrorCode::kNotFound, "this node keeps no quotas");
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto changes = parseJsonObject(ctx.request.body, 4, "quota");
  if (!changes) return errorResponse(changes.error());
  if (auto set = deps_.quotas->set(tenant, *changes); !set) return errorResponse(set.error());
  auto quota = quotaOf(tenant);
  if (!quota) return errorResponse(quota.error());
  return jsonResponse(200, *quota);
}

ApiResponse Api::createImage(Context& ctx) {
  if (auto body = checkJsonBody(ctx); !body) return errorResponse(body.error());
  auto spec = parseImageSpec(ctx.request.body);
  if (!spec) return errorResponse(spec.error());
  ctx.audit_target = spec->name;
  if ((spec->is_public || !spec->source_path.empty()) && !ctx.caller->isAdmin()) {
    return errorResponse(ErrorCode::kPermissionDenied,
                         spec->is_public ? "public images are made by admins only"
                                         : "source_path (a file of this host) is for admins only");
  }
  if (spec->is_public) {
    ctx.audit_tenant = "";
  } else {
    auto tenant = tenantToCreateIn(ctx, spec->tenant, "images");
    if (!tenant) return errorResponse(tenant.error());
    spec->tenant = *tenant;
  }
  auto quota = withinQuota(spec->tenant, {{"images", spec->is_public ? 0 : 1}});
  if (!quota) return errorResponse(quota.error());
  TaskRecord task;
  auto image = deps_.images.create(*spec, ctx.caller->uri, ctx.caller->uri, &task);
  if (!image) return errorResponse(image.error());
  if (spec->source_path.empty()) return jsonResponse(201, imageToJson(*image));
  return taskAccepted(task);
}

ApiResponse Api::getImage(Context& ctx) {
  auto image = resolveImage(ctx, false);
  if (!image) return errorResponse(image.error());
  return jsonResponse(200, imageToJson(*image));
}

ApiResponse Api::deleteImage(Context& ctx) {
  auto image = resolveImage(ctx, true);
  if (!image) return errorResponse(image.error());
  auto task = deps_.images.remove(*image, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::uploadImage(Context& ctx) {
  if (ctx.request.upload_file.empty()) {
    return errorResponse(ErrorCode::kInternal, "the upload was not received as a stream");
  }
  auto image = resolveImage(ctx, true);
  if (!image) return errorResponse(image.error());
  auto task = deps_.images.upload(*image, ctx.request.upload_file, ctx.request.upload_bytes,
                                  ctx.request.upload_sha256, ctx.caller->uri);
  if (!task) return errorResponse(task.error());
  return taskAccepted(*task);
}

ApiResponse Api::listTasks(Context& ctx) {
  TaskFilter filter;
  if (auto early = listScope(ctx, &filter.tenants)) return *early;
  if (auto state = ctx.query("state")) filter.state = *state;
  if (auto target = ctx.query("target")) filter.target = *target;
  if (auto paging = ctx.readPaging(&filter.limit, &filter.page_token); !paging) {
    return errorResponse(paging.error());
  }
  std::string next;
  auto tasks = deps_.store.listTasks(filter, &next);
  if (!tasks) return errorResponse(tasks.error());
  json items = json::array();
  for (const auto& t : *tasks) items.push_back(taskToJson(t));
  return jsonResponse(200, {{"items", std::move(items)}, {"next_page_token", next}});
}

// The task of the path's {id}, when the caller may see it (404 otherwise, as for no task).
Result<TaskRecord> Api::visibleTask(Context& ctx) {
  const std::string& id = ctx.params.at("id");
  auto task = deps_.store.getTask(id);
  if (!task || !ctx.caller->canSee(task->tenant)) {
    if (task || task.error().code == ErrorCode::kNotFound) {
      return makeError(ErrorCode::kNotFound, "api", "no task " + quoteForMessage(id));
    }
    return task;
  }
  return task;
}

ApiResponse Api::getTask(Context& ctx) {
  auto task = visibleTask(ctx);
  if (!task) return errorResponse(task.error());
  return jsonResponse(200, taskToJson(*task));
}

ApiResponse Api::cancelTask(Context& ctx) {
  auto task = visibleTask(ctx);
  if (!task) return errorResponse(task.error());
  if (!ctx.caller->canMutate(task->tenant)) {
    return errorResponse(ErrorCode::kPermissionDenied,
                         "cancelling a task of tenant " + task->tenant + " needs an operator of it");
  }
  auto cancelled = deps_.tasks.cancel(task->id, ctx.caller->uri);
  if (!cancelled) return errorResponse(cancelled.error());
  return jsonResponse(202, taskToJson(*cancelled));
}

ApiResponse Api::events(Context& ctx) {
  auto tenants = ctx.visibleTenants();
  if (!tenants) return errorResponse(tenants.error());
  std::optional<std::string> type = ctx.query("type");
  if (type && *type != "vm" && *type != "task") {
    return errorResponse(ErrorCode::kInvalidArgument, "type must be vm or task");
  }
  bool all = ctx.caller->isAdmin() && !ctx.query("tenant");
  std::set<std::string> visible(tenants->begin(), tenants->end());
  // Streams are capped per identity and in all, admins keeping a reserve of their own: one
  // client holding streams cannot lock the others out.
  const std::string who = ctx.caller->uri;
  const auto& limits = deps_.streams;
  const int others_may = limits.total - (ctx.caller->isAdmin() ? 0 : limits.admin_reserve);
  Slots::Counts counts;
  ApiResponse response;
  response.hold = streams_.take(
      who, [&](Slots::Counts c) { return c.mine < limits.per_identity && c.total < others_may; },
      &counts);
  if (!response.hold) {
    ApiResponse busy = errorResponse(
        ErrorCode::kUnavailable,
        counts.mine >= limits.per_identity
            ? "identity " + who + " has " + std::to_string(counts.mine) +
                  " event streams open, the most one identity may (api.max_event_streams_"
                  "per_identity); close one first"
            : "the node serves " + std::to_string(counts.total) +
                  " event streams, the most it serves (api.max_event_streams); try again later");
    busy.headers.emplace_back("Retry-After", "30");
    return busy;
  }
  response.content_type = "text/event-stream";
  response.event_filter = [all, visible, type](const Event& event) {
    if (type && event.type != *type) return false;
    return all || visible.contains(event.tenant);
  };
  return response;
}

}  // namespace qiao
