// The cluster module: the hosts of the cluster and who leads it (GET /v1/hosts,
// /v1/hosts/{name}, /v1/cluster), join tokens (POST /v1/cluster/tokens) and removing a host
// (DELETE /v1/hosts/{name}). A standalone host (cluster.mode standalone) answers the reads with
// itself alone, so that the same calls and `qiaoctl host list` work everywhere, and refuses the
// changes.
#include <cctype>
#include <chrono>
#include <memory>

#include "base/names.h"
#include "cluster/cluster_member.h"
#include "cluster/join_tokens.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/pki/cluster_crl.h"
#include "node/pki/pki.h"

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

// "90s", "30m", "1h", "7d".
Result<std::chrono::seconds> parseDuration(const std::string& text) {
  auto bad = makeError(ErrorCode::kInvalidArgument, "api",
                       "expires must be a number and a unit (s, m, h or d), as 30m or 1h; got " +
                           quoteForMessage(text));
  if (text.size() < 2 || text.size() > 8) return bad;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return bad;
    n = n * 10 + (text[i] - '0');
  }
  switch (text.back()) {
    case 's': return std::chrono::seconds(n);
    case 'm': return std::chrono::seconds(n * 60);
    case 'h': return std::chrono::seconds(n * 3600);
    case 'd': return std::chrono::seconds(n * 86400);
    default: return bad;
  }
}

Status checkLabelValue(const std::string& value) {
  if (value.empty() || value.size() > 63) {
    return makeError(ErrorCode::kInvalidArgument, "api",
                     "a label's value must be 1 to 63 characters");
  }
  for (char c : value) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return makeError(
          ErrorCode::kInvalidArgument, "api",
          "a label's value may hold letters, digits, '-', '_' and '.': " + quoteForMessage(value));
    }
  }
  return {};
}

Error standalone(const std::string& what) {
  return Error{ErrorCode::kConflict, "api",
               "this host is standalone: " + what + " only in a cluster (cluster.mode member)", ""};
}

class ClusterRoutes {
 public:
  ClusterRoutes(ClusterMember* member, ClusterCrl* crl, ClusterRouteFacts facts)
      : member_(member), crl_(crl), facts_(std::move(facts)) {
    if (member_) {
      tokens_ = std::make_unique<JoinTokens>(member_->rados(), member_->pool(), systemClock());
    }
  }

  ApiResponse createToken(RequestContext& ctx) {
    if (!member_) return errorResponse(standalone("join tokens exist"));
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    json body = json::parse(ctx.request.body, nullptr, false);
    if (!body.is_object()) {
      return errorResponse(ErrorCode::kInvalidArgument, "the body must be a JSON object");
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "expires" && key != "site" && key != "labels") {
        return errorResponse(
            ErrorCode::kInvalidArgument,
            "unknown field " + quoteForMessage(key) + " (a token takes expires, site and labels)");
      }
    }
    JoinTokenRequest request;
    if (!body.contains("expires") || !body["expires"].is_string()) {
      return errorResponse(ErrorCode::kInvalidArgument, "expires (as \"1h\") is required");
    }
    auto ttl = parseDuration(body["expires"].get<std::string>());
    if (!ttl) return errorResponse(ttl.error());
    request.ttl = *ttl;
    if (body.contains("site")) {
      if (!body["site"].is_string()) {
        return errorResponse(ErrorCode::kInvalidArgument, "site must be a string");
      }
      request.site = body["site"].get<std::string>();
      if (auto ok = checkDnsLabel("site", request.site); !ok) return errorResponse(ok.error());
    }
    if (body.contains("labels")) {
      if (!body["labels"].is_object() || body["labels"].size() > 32) {
        return errorResponse(ErrorCode::kInvalidArgument,
                             "labels must be an object of at most 32 key: value strings");
      }
      for (const auto& [key, value] : body["labels"].items()) {
        if (auto ok = checkDnsLabel("label key", key); !ok) return errorResponse(ok.error());
        if (!value.is_string()) {
          return errorResponse(ErrorCode::kInvalidArgument, "label values must be strings");
        }
        if (auto ok = checkLabelValue(value.get<std::string>()); !ok) {
          return errorResponse(ok.error());
        }
        request.labels[key] = value.get<std::string>();
      }
    }
    request.creator = ctx.caller->uri;
    auto pin = certSha256(PkiPaths{facts_.pki_dir}.caCert());
    if (!pin) return errorResponse(pin.error());
    JoinTokenRecord record;
    auto token = tokens_->create(request, *pin, &record);
    if (!token) return errorResponse(token.error());
    ctx.audit_target = token->id;
    return jsonResponse(201, {{"token", token->text()},
                              {"id", token->id},
                              {"expires_at", record.expires_at},
                              {"site", record.site},
                              {"labels", record.labels},
                              {"ca_sha256", *pin}});
  }

  ApiResponse remove(RequestContext& ctx) {
    const std::string& name = ctx.params.at("name");
    if (!member_ || !crl_) {
      // A standalone host knows no host but itself.
      if (name != facts_.hostname) {
        return errorResponse(ErrorCode::kNotFound,
                             "no host " + name + " (this host is standalone)");
      }
      return errorResponse(standalone("hosts are removed"));
    }
    if (name == member_->self().name) {
      return errorResponse(ErrorCode::kConflict,
                           "host " + name +
                               " is the member answering this call: remove it through another "
                               "member (qiaoctl --endpoint)");
    }
    auto host = member_->membership().get(name);
    if (!host) return errorResponse(host.error());
    const std::string ceph_user = "client.qiao-host-" + name;
    // The cluster's VM records that name the host ("host" field of table.vms).
    auto vms = RecordTable(member_->rados(), member_->pool().table("vms")).readAll();
    if (!vms) return errorResponse(vms.error());
    std::vector<std::string> on_host;
    for (const auto& [key, value] : vms->entries) {
      json vm = json::parse(value, nullptr, false);
      if (vm.is_object() && vm.contains("host") && vm["host"].is_string() &&
          vm["host"].get<std::string>() == name) {
        on_host.push_back(key);
      }
    }
    if (!on_host.empty()) {
      std::string list;
      for (const auto& vm : on_host) list += (list.empty() ? "" : ", ") + vm;
      return errorResponse(ErrorCode::kConflict,
                           "host " + name + " still has " + std::to_string(on_host.size()) +
                               " VM(s): " + list + "; move or delete them first",
                           json{{"vms", on_host}}.dump());
    }
    std::string serial;
    if (host->record.state != HostState::kRemoved) {
      auto cert = crl_->revocations().nodeCert(name);
      if (!cert) return errorResponse(cert.error());
      if (*cert) {
        serial = (*cert)->serial;
        RevocationRecord revoked{serial, (*cert)->identity, "host removed by " + ctx.caller->uri,
                                 std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count()};
        if (auto done = crl_->revoke(revoked); !done) return errorResponse(done.error());
      }
      if (auto gone = member_->rados().authRemove(ceph_user); !gone) {
        return errorResponse(gone.error());
      }
      if (auto set = member_->membership().setState(name, HostState::kRemoved, std::nullopt);
          !set) {
        return errorResponse(set.error());
      }
    }
    // Its lease: broken (a removed host is not shown alive) and its object deleted.
    const RadosObject lease = member_->pool().hostLease(name);
    auto holders = member_->rados().lockers(lease, Membership::kLeaseName);
    if (!holders && holders.error().code != ErrorCode::kNotFound) {
      return errorResponse(holders.error());
    }
    for (const auto& holder : holders ? *holders : std::vector<LockHolder>{}) {
      auto broken = member_->rados().breakLock(lease, Membership::kLeaseName, holder);
      if (!broken && broken.error().code != ErrorCode::kNotFound) {
        return errorResponse(broken.error());
      }
    }
    if (auto gone = member_->rados().removeObject(lease); !gone) {
      return errorResponse(gone.error());
    }
    if (auto gone = crl_->revocations().removeNodeCert(name); !gone) {
      return errorResponse(gone.error());
    }
    return jsonResponse(200, {{"name", name},
                              {"state", "removed"},
                              {"revoked_serial", serial},
                              {"ceph_user", ceph_user},
                              {"note", serial.empty() ? "no node certificate of this host was "
                                                        "recorded in the cluster: none revoked"
                                                      : ""}});
  }

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
  ClusterCrl* crl_;
  ClusterRouteFacts facts_;
  std::unique_ptr<JoinTokens> tokens_;
};

}  // namespace

void addClusterRoutes(RouteTable& routes, ClusterMember* member, ClusterCrl* crl,
                      ClusterRouteFacts facts) {
  auto m = std::make_shared<ClusterRoutes>(member, crl, std::move(facts));
  routes.add({{"GET", "/v1/hosts", "viewer", {}}, handlerOf(m, &ClusterRoutes::list)});
  routes.add({{"GET", "/v1/hosts/{name}", "viewer", {}}, handlerOf(m, &ClusterRoutes::get)});
  routes.add({{"GET", "/v1/cluster", "viewer", {}}, handlerOf(m, &ClusterRoutes::cluster)});
  routes.add(
      {{"POST", "/v1/cluster/tokens", "admin", {}}, handlerOf(m, &ClusterRoutes::createToken)});
  routes.add({{"DELETE", "/v1/hosts/{name}", "admin", {}}, handlerOf(m, &ClusterRoutes::remove)});
}

}  // namespace qiao
