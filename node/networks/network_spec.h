// The bodies of the network and security group routes (POST /v1/networks, POST and PUT
// /v1/security-groups), parsed strictly from JSON: what the API takes from callers, apart
// from the service that acts on it, so that the parsers are tested and fuzzed on their own.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "network/flows.h"
#include "network/ipam.h"

namespace qiao {

struct NetworkSpec {
  std::string name;
  std::string tenant;  // may be absent: the API fills it in
  std::string type = "vxlan";  // vlan | vxlan | geneve
  int64_t segment_id = 0;      // 0 = the lowest free one
  Ipv4Subnet subnet;
  std::string gateway;         // "" = the subnet's first address; "none" = no gateway
  bool dhcp = true;
  std::vector<std::string> dns;
  int64_t mtu = 0;             // 0 = 1500 for vlan, 1450 for the tunnel types
};

// Strict: unknown fields, wrong types, names that are not DNS labels, malformed or
// out-of-range subnets, gateways outside the subnet, segment ids out of the type's range,
// MTUs out of range are refused with a message naming the field. Never throws.
Result<NetworkSpec> parseNetworkSpec(std::string_view json_text);

// The largest segment id of a network type (a VLAN tag, else a VNI).
int64_t maxSegmentId(const std::string& type);

// A security group as created or replaced through the API.
struct SecurityGroupSpec {
  std::string name;
  std::string tenant;  // may be absent: the API fills it in
  std::vector<FlowRule> rules;
};

inline constexpr size_t kMaxRules = 100;
inline constexpr const char* kDefaultGroup = "default";

// {name, tenant?, rules: [{direction, protocol?, port_min?, port_max?, remote_cidr? |
// remote_group?}]}; `rules_only` for a replace ({rules} alone). Strict, never throws.
Result<SecurityGroupSpec> parseSecurityGroupSpec(std::string_view json_text, bool rules_only);
// The rules array of a group (as the API takes it and the store keeps it).
Result<std::vector<FlowRule>> parseRules(const nlohmann::json& rules);
// The rules as the API shows and the store keeps them.
nlohmann::json rulesToJson(const std::vector<FlowRule>& rules);

}  // namespace qiao
