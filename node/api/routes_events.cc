// The events module: GET /v1/events, a stream of server-sent events of what the caller may
// see. Streams are capped per identity and in all, admins keeping a reserve of their own: one
// client holding streams cannot lock the others out.
#include <memory>
#include <set>

#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/api/slots.h"

namespace qiao {
namespace {

class EventRoutes {
 public:
  explicit EventRoutes(StreamLimits limits) : limits_(limits) {}

  ApiResponse events(RequestContext& ctx) {
    auto tenants = ctx.visibleTenants();
    if (!tenants) return errorResponse(tenants.error());
    std::optional<std::string> type = ctx.query("type");
    if (type && *type != "vm" && *type != "task") {
      return errorResponse(ErrorCode::kInvalidArgument, "type must be vm or task");
    }
    bool all = ctx.caller->isAdmin() && !ctx.query("tenant");
    std::set<std::string> visible(tenants->begin(), tenants->end());
    const std::string who = ctx.caller->uri;
    const int others_may = limits_.total - (ctx.caller->isAdmin() ? 0 : limits_.admin_reserve);
    Slots::Counts counts;
    ApiResponse response;
    response.hold = streams_.take(
        who, [&](Slots::Counts c) { return c.mine < limits_.per_identity && c.total < others_may; },
        &counts);
    if (!response.hold) {
      ApiResponse busy = errorResponse(
          ErrorCode::kUnavailable,
          counts.mine >= limits_.per_identity
              ? "identity " + who + " has " + std::to_string(counts.mine) +
                    " event streams open, the most one identity may (api.max_event_streams_"
                    "per_identity); close one first"
              : "the node serves " + std::to_string(counts.total) +
                    " event streams, the most it serves (api.max_event_streams); try again "
                    "later");
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

 private:
  StreamLimits limits_;
  Slots streams_;  // by identity
};

}  // namespace

void addEventRoutes(RouteTable& routes, StreamLimits limits) {
  auto m = std::make_shared<EventRoutes>(limits);
  routes.add(
      {{"GET", "/v1/events", "viewer", {"tenant", "type"}}, handlerOf(m, &EventRoutes::events)});
}

}  // namespace qiao
