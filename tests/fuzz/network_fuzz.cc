// libFuzzer target: the network spec parser (POST /v1/networks) on arbitrary bytes. It must
// never crash, hang or leak; what it accepts must be a consistent network (a DNS-label name, a
// known type, a segment id in the type's range, a gateway inside the subnet, at most three DNS
// servers), and, written out again, must parse to the same spec.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/names.h"
#include "node/networks/network_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = qiao::parseNetworkSpec(text);
  if (!spec) return 0;
  if (!qiao::checkDnsLabel("name", spec->name)) std::abort();
  if (!spec->tenant.empty() && !qiao::checkDnsLabel("tenant", spec->tenant)) std::abort();
  if (spec->type != "vlan" && spec->type != "vxlan" && spec->type != "geneve") std::abort();
  if (spec->segment_id < 0 || spec->segment_id > qiao::maxSegmentId(spec->type)) std::abort();
  if (spec->dns.size() > 3) std::abort();
  if (spec->mtu != 0 && (spec->mtu < 576 || spec->mtu > 9000)) std::abort();
  if (!spec->gateway.empty() && spec->gateway != "none") {
    auto gw = qiao::parseIpv4(spec->gateway, "gateway");
    if (!gw || !spec->subnet.isHost(*gw)) std::abort();
  }

  nlohmann::json out = {{"name", spec->name},
                        {"type", spec->type},
                        {"subnet", spec->subnet.str()},
                        {"dhcp", spec->dhcp},
                        {"dns", spec->dns}};
  if (!spec->tenant.empty()) out["tenant"] = spec->tenant;
  if (spec->segment_id != 0) out["segment_id"] = spec->segment_id;
  if (!spec->gateway.empty()) out["gateway"] = spec->gateway;
  if (spec->mtu != 0) out["mtu"] = spec->mtu;
  auto again = qiao::parseNetworkSpec(out.dump());
  if (!again || again->name != spec->name || again->tenant != spec->tenant ||
      again->type != spec->type || again->segment_id != spec->segment_id ||
      again->subnet.str() != spec->subnet.str() || again->gateway != spec->gateway ||
      again->dhcp != spec->dhcp || again->dns != spec->dns || again->mtu != spec->mtu) {
    std::abort();
  }
  return 0;
}
