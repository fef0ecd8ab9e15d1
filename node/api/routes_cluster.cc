// The cluster module: the hosts of the cluster and who leads it (GET /v1/hosts,
// /v1/hosts/{name}, /v1/cluster). A standalone host (cluster.mode standalone) answers with
// itself alone, so that the same calls and `qiaoctl host list` work everywhere.
#include <memory>

#include "cluster/cluster_member.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"

namespace qiao {
namespace {

using nlohmann::json;

json hostJson(const HostStatus& h) {
  const HostRecord& r = h.record;
  json lease = {{"held", h.lease_held},
                {"holder", h.lease_holder},
                {"age_s", h.lease_age_s ? json(*h.lease_age_s) : json(nullptr)}};
  return {{"name", r.name},           {"state", toString(h.state)}, {"arch", r.arch},
          {"vcpus", r.vcpus},         {"memory_mib", r.memory_mib}, {"site", r.site},
          {"labels", r.labels},       {"endpoint", r.endpoint},     {"joined_at", r.joined_at},
          {"tunnel_ip", r.tunnel_ip}, {"lease", std::move(lease)}};
}

class ClusterRoutes {
 public:
  ClusterRoutes(ClusterMember* member, ClusterRouteFacts facts)
      : member_(member), facts_(std::move(facts)) {}

  ApiResponse list(RequestContext&) {
    json items = json::array();
    if (!member_) {
      items.push_back(hostJson(standaloneHost()));
      return listResponse(std::move(items), "");
    }
    auto hosts = member_->membership().list();
    if (!hosts) return errorResponse(hosts.error());
    for (const auto& h : *hosts) items.push_back(hostJson(h));
    return listResponse(std::move(items), "");
  }

  ApiResponse get(RequestContext& ctx) {
    const std::string& name = ctx.params.at("name");
    if (!member_) {
      HostStatus self = standaloneHost();
      if (name != self.record.name) {
        return errorResponse(ErrorCode::kNotFound,
                             "no host " + name + " (this host is standalone)");
      }
      return jsonResponse(200, hostJson(self));
    }
    auto host = member_->membership().get(name);
    if (!host) return errorResponse(host.error());
    return jsonResponse(200, hostJson(*host));
  }

  ApiResponse cluster(RequestContext&) {
    json body = {{"name", facts_.cluster},
                 {"mode", member_ ? "member" : "standalone"},
                 {"host", member_ ? member_->self().name : facts_.hostname},
                 {"leader", nullptr},
                 {"this_host_leads", false}};
    if (!member_) return jsonResponse(200, body);
    auto leader = member_->leader().current();
    if (!leader) return errorResponse(leader.error());
    if (!leader->member.empty()) {
      body["leader"] = {
          {"host", leader->member}, {"epoch", leader->epoch}, {"since", leader->since}};
    }
    body["this_host_leads"] = member_->leaderEpoch().has_value();
    body["registered"] = member_->registered();
    body["alive"] = member_->alive();
    return jsonResponse(200, body);
  }

 private:
  HostStatus standaloneHost() const {
    HostStatus s;
    s.record.name = facts_.hostname;
    s.record.state = HostState::kReady;
    s.record.arch = facts_.arch;
    s.record.vcpus = facts_.cores;
    s.record.memory_mib = facts_.memory_mib;
    s.state = HostState::kReady;
    return s;
  }

  ClusterMember* member_;
  ClusterRouteFacts facts_;
};

}  // namespace

void addClusterRoutes(RouteTable& routes, ClusterMember* member, ClusterRouteFacts facts) {
  auto m = std::make_shared<ClusterRoutes>(member, std::move(facts));
  routes.add({{"GET", "/v1/hosts", "viewer", {}}, handlerOf(m, &ClusterRoutes::list)});
  routes.add({{"GET", "/v1/hosts/{name}", "viewer", {}}, handlerOf(m, &ClusterRoutes::get)});
  routes.add({{"GET", "/v1/cluster", "viewer", {}}, handlerOf(m, &ClusterRoutes::cluster)});
}

}  // namespace qiao
