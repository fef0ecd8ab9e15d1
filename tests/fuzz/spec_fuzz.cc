// libFuzzer target: the VM spec parser on arbitrary bytes. It must never crash, hang or leak,
// and whatever it accepts must round-trip: parse(render(spec)) == spec.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/vm/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qiao::SpecLimits limits;
  limits.check_boot_files = false;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = qiao::parseVmSpec(text, limits);
  if (!spec) return 0;
  auto again = qiao::parseVmSpec(qiao::vmSpecToJson(*spec), limits);
  if (!again || !(*again == *spec)) std::abort();
  return 0;
}
