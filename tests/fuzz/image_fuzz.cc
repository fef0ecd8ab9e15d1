// libFuzzer target: the image spec parser (POST /v1/images) on arbitrary bytes. It must never
// crash, hang or leak; what it accepts has a DNS-label name, a known declared format or none,
// a source path that is absolute, and, written out again, parses to the same spec.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/names.h"
#include "node/images/image_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = qiao::parseImageSpec(text);
  if (!spec) return 0;
  if (!qiao::checkDnsLabel("name", spec->name)) std::abort();
  if (!spec->tenant.empty() && !qiao::checkDnsLabel("tenant", spec->tenant)) std::abort();
  if (!spec->format.empty() && spec->format != "raw" && spec->format != "qcow2" &&
      spec->format != "iso") {
    std::abort();
  }
  if (!spec->source_path.empty() && spec->source_path.front() != '/') std::abort();
  nlohmann::json out = {{"name", spec->name}, {"public", spec->is_public}};
  if (!spec->tenant.empty()) out["tenant"] = spec->tenant;
  if (!spec->format.empty()) out["format"] = spec->format;
  if (!spec->source_path.empty()) out["source_path"] = spec->source_path;
  auto again = qiao::parseImageSpec(out.dump());
  if (!again || again->name != spec->name || again->tenant != spec->tenant ||
      again->is_public != spec->is_public || again->format != spec->format ||
      again->source_path != spec->source_path) {
    std::abort();
  }
  return 0;
}
