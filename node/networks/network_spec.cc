#include "node/networks/network_spec.h"

#include <nlohmann/json.hpp>
#include <set>

#include "base/json_input.h"
#include "base/names.h"

namespace qiao {
namespace {

constexpr int kMaxDepth = 8;
constexpr size_t kMaxDns = 3;

const std::set<std::string> kSpecFields = {"name", "tenant",  "type", "segment_id", "subnet",
                                           "gateway", "dhcp", "dns",  "mtu"};

const std::set<std::string> kGroupFields = {"name", "tenant", "rules"};
const std::set<std::string> kRuleFields = {"direction",   "protocol",    "port_min",
                                           "port_max",    "remote_cidr", "remote_group"};

Error specError(const std::string& message) {
  return Error{ErrorCode::kInvalidArgument, "spec", message};
}

}  // namespace

int64_t maxSegmentId(const std::string& type) { return type == "vlan" ? 4094 : 16777215; }

Result<NetworkSpec> parseNetworkSpec(std::string_view text) {
  auto parsed = parseJsonObject(text, kMaxDepth, "network spec");
  if (!parsed) return std::unexpected(parsed.error());
  const auto& doc = *parsed;
  if (auto known = checkKnownFields(doc, kSpecFields, "network spec"); !known) {
    return std::unexpected(known.error());
  }
  for (const char* required : {"name", "subnet"}) {
    if (!doc.contains(required)) {
      return std::unexpected(specError("field \"" + std::string(required) + "\" is required"));
    }
  }
  NetworkSpec spec;
  if (auto ok = jsonNameAndTenant(doc, &spec.name, &spec.tenant); !ok) {
    return std::unexpected(ok.error());
  }
  if (doc.contains("type")) {
    auto type = jsonString(doc, "type", "");
    if (!type) return std::unexpected(type.error());
    if (*type != "vlan" && *type != "vxlan" && *type != "geneve") {
      return std::unexpected(specError("field \"type\" must be vlan, vxlan or geneve, not " +
                                       quoteForMessage(*type)));
    }
    spec.type = *type;
  }
  if (doc.contains("segment_id")) {
    auto seg = jsonInt(doc, "segment_id", 1, maxSegmentId(spec.type));
    if (!seg) return std::unexpected(seg.error());
    spec.segment_id = *seg;
  }
  auto subnet_text = jsonString(doc, "subnet", "");
  if (!subnet_text) return std::unexpected(subnet_text.error());
  auto subnet = parseSubnet(*subnet_text, "subnet");
  if (!subnet) return std::unexpected(subnet.error());
  spec.subnet = *subnet;
  if (doc.contains("gateway")) {
    auto gw = jsonString(doc, "gateway", "");
    if (!gw) return std::unexpected(gw.error());
    if (*gw != "none") {
      auto ip = parseIpv4(*gw, "gateway");
      if (!ip) return std::unexpected(ip.error());
      if (!spec.subnet.isHost(*ip)) {
        return std::unexpected(specError("gateway " + *gw + " is not a host address of " +
                                         spec.subnet.str()));
      }
      spec.gateway = formatIpv4(*ip);
    } else {
      spec.gateway = "none";
    }
  }
  if (doc.contains("dhcp")) {
    if (!doc.at("dhcp").is_boolean()) {
      return std::unexpected(specError("field \"dhcp\" must be a boolean, got " +
                                       describeJsonType(doc.at("dhcp"))));
    }
    spec.dhcp = doc.at("dhcp").get<bool>();
  }
  if (doc.contains("dns")) {
    const auto& dns = doc.at("dns");
    if (!dns.is_array() || dns.size() > kMaxDns) {
      return std::unexpected(specError("field \"dns\" must be an array of at most 3 addresses"));
    }
    for (const auto& d : dns) {
      if (!d.is_string()) return std::unexpected(specError("field \"dns\" holds a non-string"));
      auto ip = parseIpv4(d.get<std::string>(), "dns server");
      if (!ip) return std::unexpected(ip.error());
      spec.dns.push_back(formatIpv4(*ip));
    }
  }
  if (doc.contains("mtu")) {
    auto mtu = jsonInt(doc, "mtu", 576, spec.type == "vlan" ? 9000 : 8950);
    if (!mtu) return std::unexpected(mtu.error());
    spec.mtu = *mtu;
  }
  return spec;
}

Result<std::vector<FlowRule>> parseRules(const nlohmann::json& rules) {
  if (!rules.is_array()) {
    return std::unexpected(specError("field \"rules\" must be an array, got " +
                                     describeJsonType(rules)));
  }
  if (rules.size() > kMaxRules) {
    return std::unexpected(
        specError("a security group has at most " + std::to_string(kMaxRules) + " rules"));
  }
  std::vector<FlowRule> out;
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string where = "rules[" + std::to_string(i) + "]";
    const auto& r = rules[i];
    if (!r.is_object()) {
      return std::unexpected(specError(where + " must be an object, got " + describeJsonType(r)));
    }
    if (auto known = checkKnownFields(r, kRuleFields, where); !known) {
      return std::unexpected(known.error());
    }
    FlowRule rule;
    if (!r.contains("direction")) {
      return std::unexpected(specError("field \"" + where + ".direction\" is required"));
    }
    auto dir = jsonString(r, "direction", where + ".");
    if (!dir) return std::unexpected(dir.error());
    if (*dir != "ingress" && *dir != "egress") {
      return std::unexpected(specError(where + ".direction must be ingress or egress, not " +
                                       quoteForMessage(*dir)));
    }
    rule.ingress = *dir == "ingress";
    if (r.contains("protocol")) {
      auto proto = jsonString(r, "protocol", where + ".");
      if (!proto) return std::unexpected(proto.error());
      if (*proto != "any" && *proto != "tcp" && *proto != "udp" && *proto != "icmp") {
        return std::unexpected(specError(where + ".protocol must be any, tcp, udp or icmp, not " +
                                         quoteForMessage(*proto)));
      }
      rule.protocol = *proto;
    }
    if (r.contains("port_min") || r.contains("port_max")) {
      if (rule.protocol != "tcp" && rule.protocol != "udp") {
        return std::unexpected(specError(where + ": ports need protocol tcp or udp"));
      }
      if (!r.contains("port_min")) {
        return std::unexpected(specError(where + ": port_max needs port_min"));
      }
      auto lo = jsonInt(r, "port_min", 1, 65535);
      if (!lo) return std::unexpected(lo.error());
      rule.port_min = static_cast<int>(*lo);
      rule.port_max = rule.port_min;
      if (r.contains("port_max")) {
        auto hi = jsonInt(r, "port_max", *lo, 65535);
        if (!hi) return std::unexpected(hi.error());
        rule.port_max = static_cast<int>(*hi);
      }
    }
    if (r.contains("remote_cidr") && r.contains("remote_group")) {
      return std::unexpected(specError(where + ": give remote_cidr or remote_group, not both"));
    }
    if (r.contains("remote_cidr")) {
      auto text = jsonString(r, "remote_cidr", where + ".");
      if (!text) return std::unexpected(text.error());
      auto cidr = parseCidr(*text, where + ".remote_cidr");
      if (!cidr) return std::unexpected(cidr.error());
      rule.remote_cidr = cidr->str();
    }
    if (r.contains("remote_group")) {
      auto name = jsonString(r, "remote_group", where + ".");
      if (!name) return std::unexpected(name.error());
      if (auto ok = checkDnsLabel(where + ".remote_group", *name); !ok) {
        return std::unexpected(ok.error());
      }
      rule.remote_group = *name;
    }
    out.push_back(std::move(rule));
  }
  return out;
}

Result<SecurityGroupSpec> parseSecurityGroupSpec(std::string_view text, bool rules_only) {
  auto parsed = parseJsonObject(text, kMaxDepth, "security group");
  if (!parsed) return std::unexpected(parsed.error());
  const auto& doc = *parsed;
  if (auto known = checkKnownFields(doc, rules_only ? std::set<std::string>{"rules"} : kGroupFields,
                                    "security group");
      !known) {
    return std::unexpected(known.error());
  }
  SecurityGroupSpec spec;
  if (!rules_only) {
    if (auto ok = jsonNameAndTenant(doc, &spec.name, &spec.tenant); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (!doc.contains("rules")) return std::unexpected(specError("field \"rules\" is required"));
  auto rules = parseRules(doc.at("rules"));
  if (!rules) return std::unexpected(rules.error());
  spec.rules = std::move(*rules);
  return spec;
}

nlohmann::json rulesToJson(const std::vector<FlowRule>& rules) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rules) {
    nlohmann::json j = {{"direction", r.ingress ? "ingress" : "egress"}, {"protocol", r.protocol}};
    if (r.port_min != 0) {
      j["port_min"] = r.port_min;
      j["port_max"] = r.port_max;
    }
    if (!r.remote_cidr.empty()) j["remote_cidr"] = r.remote_cidr;
    if (!r.remote_group.empty()) j["remote_group"] = r.remote_group;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace qiao
