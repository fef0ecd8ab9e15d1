// libFuzzer target: the security group parser (POST /v1/security-groups, and PUT of its rules
// alone) on arbitrary bytes. It must never crash, hang or leak; what it accepts has at most
// kMaxRules rules, each with ports only for tcp and udp and never both a remote CIDR and a
// remote group, and its rules, written as the store keeps them, parse back to the same rules.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/names.h"
#include "node/networks/network_spec.h"

namespace {

void checkRules(const std::vector<qiao::FlowRule>& rules) {
  if (rules.size() > qiao::kMaxRules) std::abort();
  for (const auto& r : rules) {
    const bool ported = r.protocol == "tcp" || r.protocol == "udp";
    if (r.port_min != 0 && !ported) std::abort();
    if (r.port_min < 0 || r.port_max < r.port_min || r.port_max > 65535) std::abort();
    if (!r.remote_cidr.empty() && !r.remote_group.empty()) std::abort();
  }
  auto again = qiao::parseRules(qiao::rulesToJson(rules));
  if (!again || *again != rules) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto spec = qiao::parseSecurityGroupSpec(text, /*rules_only=*/false)) {
    if (!qiao::checkDnsLabel("name", spec->name)) std::abort();
    if (!spec->tenant.empty() && !qiao::checkDnsLabel("tenant", spec->tenant)) std::abort();
    checkRules(spec->rules);
  }
  if (auto spec = qiao::parseSecurityGroupSpec(text, /*rules_only=*/true)) {
    if (!spec->name.empty()) std::abort();
    checkRules(spec->rules);
  }
  return 0;
}
