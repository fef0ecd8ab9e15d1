// The cluster module: the hosts of the cluster and who leads it (GET /v1/hosts,
// /v1/hosts/{name}, /v1/cluster), join tokens (POST /v1/cluster/tokens) and removing a host
// (DELETE /v1/hosts/{name}). A standalone host (cluster.mode standalone) answers the reads with
// itself alone, so that the same calls and `qiaoctl host list` work everywhere, and refuses the
// changes.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>

#include "base/files.h"
#include "base/names.h"
#include "cluster/cluster_member.h"
#include "cluster/join_tokens.h"
#include "node/api/route_context.h"
#include "node/api/routes.h"
#include "node/host/baseline.h"
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

// The monitors a ceph.conf names (mon_host, or "mon host"): what a joiner's ceph.conf needs.
std::string monHostOf(const std::string& conf_path) {
  std::istringstream in(readTextFile(conf_path));
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    std::erase_if(key, [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
    std::replace(key.begin(), key.end(), ' ', '_');
    if (key != "mon_host" && key != "monhost") continue;
    std::string value = line.substr(eq + 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
      value.erase(0, 1);
    }
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
      value.pop_back();
    }
    return value;
  }
  return "";
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

  // GET /v1/cluster/ca (open): the cluster CA's certificate. Public: the joiner checks its
  // SHA-256 against its token's pin before it trusts this endpoint.
  ApiResponse caCert(RequestContext&) {
    auto pem = readFileBytes(PkiPaths{facts_.pki_dir}.caCert());
    if (!pem) return errorResponse(pem.error());
    return jsonResponse(200, {{"cluster", facts_.cluster}, {"ca", *pem}});
  }

  // POST /v1/cluster/join (open; the token is the credential). Steps: the request checked (its
  // names, addresses, CSR), the token checked without being used, the host not a member, the
  // joiner's host check judged against this member's baseline; then the token consumed (one
  // guarded update: of two joins with one token one wins) before anything is issued: the node
  // certificate signed and recorded, the host's Ceph user made, the host's record written
  // (joining, with the token's site and labels; qiaod marks it ready when it first runs).
  // Nothing is told without a valid token but why the request was refused.
  ApiResponse join(RequestContext& ctx) {
    if (!member_) return errorResponse(standalone("servers join"));
    if (auto body = ctx.checkJsonBody(); !body) return errorResponse(body.error());
    json body = json::parse(ctx.request.body, nullptr, false);
    if (!body.is_object()) {
      return errorResponse(ErrorCode::kInvalidArgument, "the body must be a JSON object");
    }
    static const std::set<std::string> kFields = {
        "token", "name",  "addresses",  "dns_names", "port", "csr",
        "arch",  "vcpus", "memory_mib", "tunnel_ip", "facts"};
    for (const auto& [key, value] : body.items()) {
      if (!kFields.contains(key)) {
        return errorResponse(ErrorCode::kInvalidArgument, "unknown field " + quoteForMessage(key));
      }
    }
    auto text = [&](const char* key, bool required) -> Result<std::string> {
      if (!body.contains(key)) {
        if (required) {
          return makeError(ErrorCode::kInvalidArgument, "api", std::string(key) + " is required");
        }
        return std::string();
      }
      if (!body[key].is_string()) {
        return makeError(ErrorCode::kInvalidArgument, "api",
                         std::string(key) + " must be a string");
      }
      return body[key].get<std::string>();
    };
    auto strings = [&](const char* key) -> Result<std::vector<std::string>> {
      std::vector<std::string> out;
      if (!body.contains(key)) return out;
      if (!body[key].is_array() || body[key].size() > 8) {
        return makeError(ErrorCode::kInvalidArgument, "api",
                         std::string(key) + " must be a list of at most 8 strings");
      }
      for (const auto& v : body[key]) {
        if (!v.is_string()) {
          return makeError(ErrorCode::kInvalidArgument, "api",
                           std::string(key) + " must be a list of strings");
        }
        out.push_back(v.get<std::string>());
      }
      return out;
    };
    auto token_text = text("token", true);
    if (!token_text) return errorResponse(token_text.error());
    auto token = parseJoinToken(*token_text);
    if (!token) return errorResponse(ErrorCode::kPermissionDenied, "the join token is not valid");
    auto name = text("name", true);
    if (!name) return errorResponse(name.error());
    if (auto ok = checkDnsLabel("name", *name); !ok) return errorResponse(ok.error());
    ctx.audit_target = *name;
    auto addresses = strings("addresses");
    if (!addresses) return errorResponse(addresses.error());
    if (addresses->empty()) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "addresses (the IP addresses the host's API answers on) is required");
    }
    for (const auto& a : *addresses) {
      if (!isIpAddress(a)) {
        return errorResponse(ErrorCode::kInvalidArgument,
                             "address " + quoteForMessage(a) + " is not an IPv4 or IPv6 address");
      }
    }
    auto dns_names = strings("dns_names");
    if (!dns_names) return errorResponse(dns_names.error());
    for (const auto& d : *dns_names) {
      // Dot-separated DNS labels (checked again when signing; here, before the token is used).
      bool ok = !d.empty() && d.size() <= 253;
      for (size_t start = 0; ok && start <= d.size();) {
        size_t dot = std::min(d.find('.', start), d.size());
        ok = isDnsLabel(std::string_view(d).substr(start, dot - start));
        start = dot + 1;
      }
      if (!ok) {
        return errorResponse(ErrorCode::kInvalidArgument,
                             "DNS name " + quoteForMessage(d) + " is not a host name");
      }
    }
    int port = 8443;
    if (body.contains("port")) {
      if (!body["port"].is_number_integer() || body["port"].get<int>() < 1 ||
          body["port"].get<int>() > 65535) {
        return errorResponse(ErrorCode::kInvalidArgument, "port must be 1 to 65535");
      }
      port = body["port"].get<int>();
    }
    auto csr = text("csr", true);
    if (!csr) return errorResponse(csr.error());
    if (auto ok = checkCsr(*csr); !ok) return errorResponse(ok.error());
    auto arch = text("arch", false);
    if (!arch) return errorResponse(arch.error());
    if (*arch != "x86_64" && *arch != "aarch64") {
      return errorResponse(ErrorCode::kInvalidArgument, "arch must be x86_64 or aarch64");
    }
    auto tunnel_ip = text("tunnel_ip", false);
    if (!tunnel_ip) return errorResponse(tunnel_ip.error());
    if (!tunnel_ip->empty() && !isIpAddress(*tunnel_ip)) {
      return errorResponse(ErrorCode::kInvalidArgument, "tunnel_ip is not an IP address");
    }
    int vcpus = 0;
    int64_t memory_mib = 0;
    if (body.contains("vcpus")) {
      if (!body["vcpus"].is_number_integer() || body["vcpus"].get<int64_t>() < 0 ||
          body["vcpus"].get<int64_t>() > 65536) {
        return errorResponse(ErrorCode::kInvalidArgument, "vcpus must be 0 to 65536");
      }
      vcpus = body["vcpus"].get<int>();
    }
    if (body.contains("memory_mib")) {
      if (!body["memory_mib"].is_number_integer() || body["memory_mib"].get<int64_t>() < 0) {
        return errorResponse(ErrorCode::kInvalidArgument, "memory_mib must be a count >= 0");
      }
      memory_mib = body["memory_mib"].get<int64_t>();
    }
    if (!body.contains("facts") || !body["facts"].is_object()) {
      return errorResponse(ErrorCode::kInvalidArgument,
                           "facts (the host check's findings, an object) is required");
    }
    auto facts = factsFromJson(body["facts"].dump());
    if (!facts) return errorResponse(facts.error());

    // The token, checked without being used: nothing below is told without a valid one.
    if (auto ok = tokens_->check(*token); !ok) return errorResponse(ok.error());
    auto existing = member_->membership().get(*name);
    if (existing && existing->record.state != HostState::kRemoved) {
      return errorResponse(ErrorCode::kConflict, "host " + *name +
                                                     " is a member of the cluster already (" +
                                                     std::string(toString(existing->record.state)) +
                                                     "); remove it first or choose another name");
    }
    if (!existing && existing.error().code != ErrorCode::kNotFound) {
      return errorResponse(existing.error());
    }
    if (!std::filesystem::exists(PkiPaths{facts_.pki_dir}.caKey())) {
      return errorResponse(ErrorCode::kConflict,
                           "this member (" + facts_.hostname +
                               ") cannot sign certificates: " + PkiPaths{facts_.pki_dir}.caKey() +
                               " is not here; send the call to a member that holds the cluster "
                               "CA key (docs/operators/cluster.md \"Enrollment\")");
    }
    // The joiner's host check, judged here again against this member's baseline.
    auto baseline = loadBaseline(facts_.baseline_file);
    if (!baseline) return errorResponse(baseline.error());
    auto results = checkHost(*baseline, *facts);
    json checks = json::array();
    std::string failed;
    for (const auto& r : results) {
      checks.push_back(
          {{"name", r.name}, {"verdict", verdictName(r.verdict)}, {"detail", r.detail}});
      if (r.verdict == Verdict::kFail)
        failed += (failed.empty() ? "" : "; ") + r.name + ": " + r.detail;
    }
    if (!mayTakeGuests(results)) {
      return errorResponse(ErrorCode::kConflict,
                           "host " + *name + " does not meet the cluster's baseline: " + failed,
                           json{{"checks", checks}}.dump());
    }

    // Used now, before anything is issued.
    auto accepted = tokens_->consume(*token, *name);
    if (!accepted) return errorResponse(accepted.error());
    CsrSignOptions sign;
    sign.ca_dir = facts_.pki_dir;
    sign.identity = Identity{facts_.cluster, IdentityKind::kNode, *name};
    sign.dns_names = *dns_names;
    sign.ips = *addresses;
    auto cert = signNodeCsr(sign, *csr);
    if (!cert) return errorResponse(cert.error());
    if (crl_) {
      if (auto ok = crl_->revocations().setNodeCert({*name, cert->identity_uri, cert->serial});
          !ok) {
        return errorResponse(ok.error());
      }
    }
    if (facts_.bind_node) {
      if (auto ok = facts_.bind_node(cert->identity_uri, cert->serial); !ok) {
        return errorResponse(ok.error());
      }
    }
    const std::string ceph_user = "client.qiao-host-" + *name;
    std::string rbd_caps;
    for (const auto& pool : facts_.rbd_pools) {
      rbd_caps += (rbd_caps.empty() ? "" : ", ") + ("profile rbd pool=" + pool);
    }
    const std::map<std::string, std::string> caps = {
        {"mon", "profile rbd, allow command \"osd blocklist\", allow command \"osd blocklist ls\""},
        {"osd",
         rbd_caps + (rbd_caps.empty() ? "" : ", ") + "allow rwx pool=" + facts_.cluster_pool},
        {"mgr", rbd_caps.empty() ? "profile rbd" : rbd_caps}};
    auto key = member_->rados().authGetOrCreate(ceph_user, caps);
    if (!key) return errorResponse(key.error());
    HostRecord record;
    record.name = *name;
    record.state = HostState::kJoining;
    record.arch = *arch;
    record.vcpus = vcpus;
    record.memory_mib = memory_mib;
    record.site = accepted->site;
    record.labels = accepted->labels;
    const std::string& first = addresses->front();
    record.endpoint = "https://" +
                      (first.find(':') != std::string::npos ? "[" + first + "]" : first) + ":" +
                      std::to_string(port);
    record.joined_at = utcText(systemClock().wallNow());
    record.tunnel_ip = *tunnel_ip;
    // Written whole: a record of a removed host of that name is replaced (enrolled again).
    auto written = member_->membership().table().update(
        *name,
        [&](const std::optional<std::string>& current) -> Result<std::optional<std::string>> {
          if (current) {
            auto stored = hostFromJson(*current);
            if (stored && stored->state != HostState::kRemoved) {
              return makeError(ErrorCode::kConflict, "api",
                               "host " + *name + " joined meanwhile through another member");
            }
          }
          return std::optional<std::string>{hostToJson(record)};
        });
    if (!written) return errorResponse(written.error());
    auto ca = readFileBytes(PkiPaths{facts_.pki_dir}.caCert());
    if (!ca) return errorResponse(ca.error());
    const std::string mon_host = monHostOf(facts_.ceph_conf);
    return jsonResponse(201, {{"cluster", facts_.cluster},
                              {"name", *name},
                              {"identity", cert->identity_uri},
                              {"certificate", cert->pem},
                              {"serial", cert->serial},
                              {"not_after", cert->not_after},
                              {"ca", *ca},
                              {"crl", readTextFile(PkiPaths{facts_.pki_dir}.crl())},
                              {"site", record.site},
                              {"labels", record.labels},
                              {"endpoint", record.endpoint},
                              {"ceph",
                               {{"user", ceph_user},
                                {"key", *key},
                                {"mon_host", isMonHostList(mon_host) ? mon_host : ""},
                                {"pools", facts_.rbd_pools},
                                {"cluster_pool", facts_.cluster_pool}}},
                              {"checks", std::move(checks)}});
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
  // The only routes served without a client certificate (RouteTable::add refuses any other).
  routes.add(
      {{"GET", "/v1/cluster/ca", "none", {}, false, true}, handlerOf(m, &ClusterRoutes::caCert)});
  routes.add(
      {{"POST", "/v1/cluster/join", "none", {}, false, true}, handlerOf(m, &ClusterRoutes::join)});
  routes.add({{"GET", "/v1/hosts/{name}", "viewer", {}}, handlerOf(m, &ClusterRoutes::get)});
  routes.add({{"GET", "/v1/cluster", "viewer", {}}, handlerOf(m, &ClusterRoutes::cluster)});
  routes.add(
      {{"POST", "/v1/cluster/tokens", "admin", {}}, handlerOf(m, &ClusterRoutes::createToken)});
  routes.add({{"DELETE", "/v1/hosts/{name}", "admin", {}}, handlerOf(m, &ClusterRoutes::remove)});
}

}  // namespace qiao
