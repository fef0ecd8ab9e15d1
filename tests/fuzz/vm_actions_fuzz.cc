// libFuzzer target: the bodies of the actions on a VM that take one (a disk added, a resize)
// on arbitrary bytes, both parsers on the same input. Neither may crash, hang or leak; a disk
// accepted names a volume or an image within the size limit and, written out as a VM spec
// keeps it, parses to the same disk; a resize asks for something within the limits.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "node/vm/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  qiao::SpecLimits limits;
  limits.check_boot_files = false;
  if (auto disk = qiao::parseDiskSpec(text, limits)) {
    if (disk->volume.empty() && disk->image.empty()) std::abort();
    if (disk->size_gib < 0 || disk->size_gib > limits.max_disk_gib) std::abort();
    qiao::VmSpec spec;
    spec.disks.push_back(*disk);
    const nlohmann::json rendered = qiao::vmSpecToJsonValue(spec);
    if (!rendered.contains("disks") || rendered["disks"].size() != 1) std::abort();
    auto again = qiao::parseDiskSpec(rendered["disks"][0].dump(), limits);
    if (!again || !(*again == *disk)) std::abort();
  }
  if (auto resize = qiao::parseVmResize(text, limits)) {
    if (resize->vcpus == 0 && resize->memory_mib == 0) std::abort();
    if (resize->vcpus < 0 || resize->vcpus > limits.max_vcpus) std::abort();
    if (resize->memory_mib < 0 || resize->memory_mib > limits.max_memory_mib) std::abort();
  }
  return 0;
}
