// libFuzzer target: the NIC parser (POST /v1/vms/{name}/nics) on arbitrary bytes. It must
// never crash, hang or leak; what it accepts names a network by a DNS label, has at most
// kMaxNicGroups groups, and, written out as a VM spec keeps it, parses to the same NIC.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/names.h"
#include "node/vm/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto nic = qiao::parseNicSpec(text);
  if (!nic) return 0;
  if (!qiao::checkDnsLabel("network", nic->network)) std::abort();
  if (nic->security_groups.size() > qiao::kMaxNicGroups) std::abort();
  qiao::VmSpec spec;
  spec.nics.push_back(*nic);
  const nlohmann::json rendered = qiao::vmSpecToJsonValue(spec);
  if (!rendered.contains("nics") || rendered["nics"].size() != 1) std::abort();
  auto again = qiao::parseNicSpec(rendered["nics"][0].dump());
  if (!again || !(*again == *nic)) std::abort();
  return 0;
}
