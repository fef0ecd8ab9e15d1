// The tasks module: /v1/tasks, and their cancellation.
#include <memory>
#include <utility>

#include "base/names.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/state/record_json.h"
#include "node/tasks/task_engine.h"

namespace qiao {
namespace {

using nlohmann::json;

class TaskRoutes {
 public:
  TaskRoutes(Store& store, TaskEngine& tasks, ClusterCalls cluster)
      : store_(store), tasks_(tasks), cluster_(std::move(cluster)) {}

  ApiResponse list(RequestContext& ctx) {
    TaskFilter filter;
    if (auto early = ctx.listScope(&filter.tenants)) return *early;
    if (auto state = ctx.query("state")) filter.state = *state;
    if (auto target = ctx.query("target")) filter.target = *target;
    if (auto paging = ctx.readPaging(&filter.limit, &filter.page_token); !paging) {
      return errorResponse(paging.error());
    }
    std::string next;
    auto tasks = store_.tasks().list(filter, &next);
    if (!tasks) return errorResponse(tasks.error());
    json items = json::array();
    for (const auto& t : *tasks) items.push_back(taskToJson(t));
    return listResponse(std::move(items), next);
  }

  ApiResponse get(RequestContext& ctx) {
    auto task = visible(ctx);
    if (!task) return elsewhere(ctx, task.error());
    return jsonResponse(200, taskToJson(*task));
  }

  ApiResponse cancel(RequestContext& ctx) {
    auto task = visible(ctx);
    if (!task) return elsewhere(ctx, task.error());
    if (!ctx.caller->canMutate(task->tenant)) {
      return errorResponse(
          ErrorCode::kPermissionDenied,
          "cancelling a task of tenant " + task->tenant + " needs an operator of it");
    }
    auto cancelled = tasks_.cancel(task->id, ctx.caller->uri);
    if (!cancelled) return errorResponse(cancelled.error());
    return jsonResponse(202, taskToJson(*cancelled));
  }

 private:
  // A task this host does not have: the answer of the member that has it (a call forwarded
  // here is not passed on again), else `error`.
  ApiResponse elsewhere(RequestContext& ctx, const Error& error) {
    if (error.code != ErrorCode::kNotFound || !cluster_.forward || !ctx.caller->via.empty()) {
      return errorResponse(error);
    }
    for (const auto& host : cluster_.others()) {
      ApiResponse answer = cluster_.forward(host, ctx);
      if (answer.status != 404 && answer.status != 503) return answer;
    }
    return errorResponse(error);
  }

  // The task of the path's {id}, when the caller may see it (404 otherwise, as for no task).
  Result<TaskRecord> visible(RequestContext& ctx) {
    const std::string& id = ctx.params.at("id");
    auto task = store_.tasks().get(id);
    if (!task || !ctx.caller->canSee(task->tenant)) {
      if (task || task.error().code == ErrorCode::kNotFound) {
        return makeError(ErrorCode::kNotFound, "api", "no task " + quoteForMessage(id));
      }
      return task;
    }
    return task;
  }

  Store& store_;
  TaskEngine& tasks_;
  ClusterCalls cluster_;
};

}  // namespace

void addTaskRoutes(RouteTable& routes, Store& store, TaskEngine& tasks, ClusterCalls cluster) {
  auto m = std::make_shared<TaskRoutes>(store, tasks, std::move(cluster));
  routes.add({{"GET", "/v1/tasks", "viewer", {"tenant", "state", "target", "limit", "page_token"}},
              handlerOf(m, &TaskRoutes::list)});
  routes.add({{"GET", "/v1/tasks/{id}", "viewer", {}}, handlerOf(m, &TaskRoutes::get)});
  routes.add(
      {{"POST", "/v1/tasks/{id}/cancel", "operator", {}}, handlerOf(m, &TaskRoutes::cancel)});
}

}  // namespace qiao
