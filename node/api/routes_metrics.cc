// The metrics module: GET /metrics, Prometheus' text format.
#include <map>
#include <memory>

#include "node/api/metrics.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/vm/vm_service.h"

namespace qiao {
namespace {

class MetricsRoutes {
 public:
  MetricsRoutes(Store& store, VmService& vms, Metrics& metrics)
      : store_(store), vms_(vms), metrics_(metrics) {}

  ApiResponse metrics(RequestContext&) {
    std::map<std::string, int> by_state;
    if (auto counts = store_.vms().countByState()) by_state = *counts;
    // One libvirt call for every domain, no QMP (docs/operators/monitoring.md).
    std::vector<VmFigures> vms = vms_.metricsFigures();
    ApiResponse response;
    response.content_type = "text/plain; version=0.0.4";
    response.body = metrics_.render(by_state, vms);
    return response;
  }

 private:
  Store& store_;
  VmService& vms_;
  Metrics& metrics_;
};

}  // namespace

void addMetricsRoutes(RouteTable& routes, Store& store, VmService& vms, Metrics& metrics) {
  auto m = std::make_shared<MetricsRoutes>(store, vms, metrics);
  routes.add({{"GET", "/metrics", "admin", {}}, handlerOf(m, &MetricsRoutes::metrics)});
}

}  // namespace qiao
