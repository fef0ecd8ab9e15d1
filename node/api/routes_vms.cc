// The VMs module: /v1/vms, their actions, disks, NICs, size, console log and figures.
#include <algorithm>
#include <memory>
#include <utility>

#include "base/names.h"
#include "network/ipam.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/images/image_service.h"
#include "node/state/record_json.h"
#include "node/vm/vm_service.h"

namespace qiao {
namespace {

using nlohmann::json;

class VmRoutes {
 public:
  VmRoutes(Store& store, VmService& vms, QuotaService& quotas, SpecLimits limits,
           int64_t console_log_max_bytes, VmRouting routing)
      : store_(store),
        vms_(vms),
        quotas_(quotas),
        limits_(std::move(limits)),
        console_log_max_bytes_(console_log_max_bytes),
        routing_(std::move(routing)) {}

  // A call on one VM: answered by its host.
  Result<std::optional<std::string>> locateVm(RequestContext& ctx) {
    auto vm = resolve(ctx);
    if (!vm || vm->host.empty() || vm->host == routing_.self) return std::optional<std::string>{};
    if (!ctx.caller->via.empty()) {
      // Forwarded here by a member whose view of the VM is older than ours: not passed on
      // again (two members that disagree must not send a call back and forth).
      return makeError(ErrorCode::kConflict, "cluster",
                       "vm " + vm->name + " is on host " + vm->host + ", not on " + routing_.self +
                           ": send the call again");
    }
    return std::optional<std::string>{vm->host};
  }

  // A new VM: answered by the host the body names (admins), else by the one the leader
  // places it on; a member that does not lead sends it to the leader, which places it and
  // sends it on with the host named.
  Result<std::optional<std::string>> locateNew(RequestContext& ctx) {
    auto body = takeHost(ctx.request.body);
    if (!body) return std::optional<std::string>{};  // the handler refuses it
    const auto& [host, rest] = *body;
    if (!host.empty()) {
      if (host == routing_.self) return std::optional<std::string>{};
      if (!ctx.caller->via.empty()) {
        return makeError(ErrorCode::kConflict, "cluster",
                         "this call for host " + host + " was forwarded to " + routing_.self);
      }
      if (!ctx.caller->isAdmin()) return std::optional<std::string>{};  // the handler refuses
      return std::optional<std::string>{host};
    }
    SpecLimits parse_limits = limits_;
    parse_limits.check_boot_files = false;
    auto spec = parseVmSpec(rest, parse_limits);
    if (!spec) return std::optional<std::string>{};
    PlacementRequest request;
    request.arch = spec->arch;
    request.vcpus = std::max(spec->vcpus, spec->max_vcpus);
    request.memory_mib = std::max(spec->memory_mib, spec->max_memory_mib);
    auto placed = routing_.place(request);
    if (!placed) return std::unexpected(placed.error());
    const auto& [target, decided] = *placed;
    if (!decided) {
      if (!ctx.caller->via.empty()) {
        return makeError(ErrorCode::kUnavailable, "cluster",
                         "the leadership is changing hands; send the call again");
      }
      return std::optional<std::string>{target};
    }
    if (target == routing_.self) return std::optional<std::string>{};
    auto forwarded = json::parse(ctx.request.body);
    forwarded["host"] = target;
    ctx.forward_body = forwarded.dump();
    return std::optional<std::string>{target};
  }

  ApiResponse list(RequestContext& ctx) {
    VmFilter filter;
    if (auto early = ctx.listScope(&filter.tenants)) return *early;
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
    auto page = store_.vms().list(filter);
    if (!page) return errorResponse(page.error());
    json items = json::array();
    for (const auto& vm : page->items) items.push_back(vmToJson(vm));
    return listResponse(std::move(items), page->next_page_token);
  }

  ApiResponse create(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    bool start = true;
    if (auto value = ctx.query("start")) {
      auto parsed = parseBool("start", *value);
      if (!parsed) return errorResponse(parsed.error());
      start = *parsed;
    }
    // Host paths are checked only after the caller is known to be an admin, so that nobody
    // else can probe the host's files through the difference between a 400 and a 403.
    auto body = takeHost(ctx.request.body);
    if (!body) return errorResponse(body.error());
    const auto& [host, rest] = *body;
    if (!host.empty()) {
      // Choosing the host is the leader's (which forwards with it named) or an admin's.
      if (!ctx.caller->isAdmin() && ctx.caller->via.empty()) {
        return errorResponse(ErrorCode::kPermissionDenied,
                             "host (where the VM runs) may be chosen by admins only");
      }
      if (host != routing_.self) {
        return errorResponse(ErrorCode::kNotFound,
                             "no host " + quoteForMessage(host) + " to create the VM on");
      }
    }
    SpecLimits parse_limits = limits_;
    parse_limits.check_boot_files = false;
    auto spec = parseVmSpec(rest, parse_limits);
    if (!spec) return errorResponse(spec.error());
    ctx.audit_target = spec->name;
    auto tenant = ctx.tenantToCreateIn(spec->tenant, "vms");
    if (!tenant) return errorResponse(tenant.error());
    spec->tenant = *tenant;
    if (spec->boot && !ctx.caller->isAdmin()) {
      return errorResponse(
          ErrorCode::kPermissionDenied,
          "boot (a direct kernel boot from host paths) is allowed for admins only");
    }
    if (auto valid = validateVmSpec(*spec, limits_); !valid) return errorResponse(valid.error());
    int64_t disk_gib = 0;
    for (const auto& disk : spec->disks) {
      if (disk.image.empty()) continue;  // a volume the tenant has counts already
      int64_t image_gib = 0;
      if (auto image = findImageFor(store_, spec->tenant, disk.image)) {
        image_gib = gibOf(image->virtual_size);  // 0 while it is being imported
      }
      disk_gib += std::max<int64_t>(disk.size_gib, image_gib);
    }
    auto quota = withinQuota(quotas_, spec->tenant,
                             {{"vms", 1},
                              {"vcpus", std::max(spec->vcpus, spec->max_vcpus)},
                              {"memory_mib", std::max(spec->memory_mib, spec->max_memory_mib)},
                              {"volume_gib", disk_gib}});
    if (!quota) return errorResponse(quota.error());
    auto task = vms_.createVm(std::move(*spec), start, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse get(RequestContext& ctx) {
    auto vm = resolve(ctx);
    if (!vm) return errorResponse(vm.error());
    json out = vmToJson(*vm);
    // The NICs as plugged: their addresses and MACs (chosen by Qiao when the spec left them).
    auto ports = store_.ports().ofVm(vm->uuid);
    if (!ports) return errorResponse(ports.error());
    out["ports"] = json::array();
    for (const auto& p : *ports) out["ports"].push_back(portToJson(p));
    return jsonResponse(200, out);
  }

  ApiResponse remove(RequestContext& ctx) {
    bool force = false;
    if (auto value = ctx.query("force")) {
      auto parsed = parseBool("force", *value);
      if (!parsed) return errorResponse(parsed.error());
      force = *parsed;
    }
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.deleteVm(*vm, force, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse action(RequestContext& ctx) {
    const std::string& action = ctx.params.at("action");
    if (!VmService::isAction(action)) {
      return errorResponse(ErrorCode::kNotFound,
                           "no such action " + quoteForMessage(action) +
                               "; actions: start, stop, force-stop, reboot, pause, resume");
    }
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.action(*vm, action, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse addDisk(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    SpecLimits limits = limits_;
    limits.check_boot_files = false;
    auto disk = parseDiskSpec(ctx.request.body, limits);
    if (!disk) return errorResponse(disk.error());
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    int64_t disk_gib = 0;
    if (!disk->image.empty()) {
      auto image = findImageFor(store_, vm->tenant, disk->image);
      disk_gib = std::max<int64_t>(disk->size_gib, image ? gibOf(image->virtual_size) : 0);
    }
    auto quota = withinQuota(quotas_, vm->tenant, {{"volume_gib", disk_gib}});
    if (!quota) return errorResponse(quota.error());
    auto task = vms_.addDisk(*vm, std::move(*disk), ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse removeDisk(RequestContext& ctx) {
    const std::string& volume = ctx.params.at("volume");
    if (auto ok = checkDnsLabel("volume", volume); !ok) return errorResponse(ok.error());
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.removeDisk(*vm, volume, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse stats(RequestContext& ctx) {
    auto vm = resolve(ctx);
    if (!vm) return errorResponse(vm.error());
    auto stats = vms_.stats(*vm);
    if (!stats) return errorResponse(stats.error());
    return jsonResponse(200, *stats);
  }

  ApiResponse addNic(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto nic = parseNicSpec(ctx.request.body);
    if (!nic) return errorResponse(nic.error());
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.addNic(*vm, std::move(*nic), ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse resize(RequestContext& ctx) {
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    auto resize = parseVmResize(ctx.request.body, limits_);
    if (!resize) return errorResponse(resize.error());
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.resize(*vm, resize->vcpus, resize->memory_mib, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse removeNic(RequestContext& ctx) {
    auto mac = parseMac(ctx.params.at("mac"), "mac");
    if (!mac) return errorResponse(mac.error());
    auto vm = resolve(ctx, true);
    if (!vm) return errorResponse(vm.error());
    auto task = vms_.removeNic(*vm, *mac, ctx.caller->uri);
    if (!task) return errorResponse(task.error());
    return taskAccepted(*task);
  }

  ApiResponse consoleLog(RequestContext& ctx) {
    int64_t tail = 65536;
    if (auto value = ctx.query("tail_bytes")) {
      auto parsed = parseInt("tail_bytes", *value, 1, console_log_max_bytes_);
      if (!parsed) return errorResponse(parsed.error());
      tail = *parsed;
    }
    auto vm = resolve(ctx);
    if (!vm) return errorResponse(vm.error());
    auto text = vms_.consoleLog(*vm, static_cast<size_t>(tail));
    if (!text) return errorResponse(text.error());
    ApiResponse response;
    response.content_type = "text/plain; charset=utf-8";
    response.body = std::move(*text);
    return response;
  }

 private:
  // The VM of the path's {name}; with to_change, one the caller may change.
  Result<VmRecord> resolve(RequestContext& ctx, bool to_change = false) {
    return ctx.resolveByName<VmRecord>(
        "vm", "vms", to_change,
        [this](const std::vector<std::string>& tenants, const std::string& name) {
          return store_.vms().findByName(name, tenants);
        });
  }

  // The body without its "host" (a DNS label, or "" when absent), which the VM's spec does
  // not have: it says where the VM is made, not what it is.
  static Result<std::pair<std::string, std::string>> takeHost(const std::string& text) {
    auto doc = json::parse(text, nullptr, false);
    if (!doc.is_object() || !doc.contains("host")) return std::pair{std::string(), text};
    if (!doc["host"].is_string()) {
      return makeError(ErrorCode::kInvalidArgument, "api", "host must be a string");
    }
    std::string host = doc["host"].get<std::string>();
    if (auto ok = checkDnsLabel("host", host); !ok) return std::unexpected(ok.error());
    doc.erase("host");
    return std::pair{std::move(host), doc.dump()};
  }

  Store& store_;
  VmService& vms_;
  QuotaService& quotas_;
  SpecLimits limits_;
  int64_t console_log_max_bytes_;
  VmRouting routing_;
};

}  // namespace

void addVmRoutes(RouteTable& routes, Store& store, VmService& vms, QuotaService& quotas,
                 SpecLimits limits, int64_t console_log_max_bytes, VmRouting routing) {
  const bool clustered = static_cast<bool>(routing.place);
  auto m = std::make_shared<VmRoutes>(store, vms, quotas, std::move(limits), console_log_max_bytes,
                                      std::move(routing));
  // On a member every call on one VM goes to its host, a new VM to where it is placed.
  auto onItsHost = [&](RouteInfo info, RouteHandler handler) {
    Route route{std::move(info), std::move(handler)};
    if (clustered) route.locate = [m](RequestContext& ctx) { return m->locateVm(ctx); };
    routes.add(std::move(route));
  };
  const std::vector<std::string> by_name = {"tenant"};
  routes.add({{"GET", "/v1/vms", "viewer", {"tenant", "state", "label", "limit", "page_token"}},
              handlerOf(m, &VmRoutes::list)});
  Route create{{"POST", "/v1/vms", "operator", {"start"}}, handlerOf(m, &VmRoutes::create)};
  if (clustered) create.locate = [m](RequestContext& ctx) { return m->locateNew(ctx); };
  routes.add(std::move(create));
  onItsHost({"GET", "/v1/vms/{name}", "viewer", by_name}, handlerOf(m, &VmRoutes::get));
  onItsHost({"DELETE", "/v1/vms/{name}", "operator", {"tenant", "force"}},
            handlerOf(m, &VmRoutes::remove));
  onItsHost({"POST", "/v1/vms/{name}/actions/{action}", "operator", by_name},
            handlerOf(m, &VmRoutes::action));
  onItsHost({"POST", "/v1/vms/{name}/disks", "operator", by_name},
            handlerOf(m, &VmRoutes::addDisk));
  onItsHost({"DELETE", "/v1/vms/{name}/disks/{volume}", "operator", by_name},
            handlerOf(m, &VmRoutes::removeDisk));
  onItsHost({"POST", "/v1/vms/{name}/nics", "operator", by_name}, handlerOf(m, &VmRoutes::addNic));
  onItsHost({"POST", "/v1/vms/{name}/resize", "operator", by_name},
            handlerOf(m, &VmRoutes::resize));
  onItsHost({"DELETE", "/v1/vms/{name}/nics/{mac}", "operator", by_name},
            handlerOf(m, &VmRoutes::removeNic));
  onItsHost({"GET", "/v1/vms/{name}/console-log", "viewer", {"tenant", "tail_bytes"}},
            handlerOf(m, &VmRoutes::consoleLog));
  onItsHost({"GET", "/v1/vms/{name}/stats", "viewer", by_name}, handlerOf(m, &VmRoutes::stats));
}

}  // namespace qiao
