// Conversion of a probed image to raw, the one format volumes hold. It runs only after
// probeImage() accepted the file, with the source format stated explicitly (never guessed by
// qemu-img), and under CPU-time, memory and wall-clock limits, so that a crafted image costs
// at most that. Arguments are passed by argv; nothing goes through a shell.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"
#include "images/probe.h"

namespace qiao {

struct ConvertLimits {
  int cpu_seconds = 600;
  int64_t memory_bytes = int64_t{1} << 30;  // address space of qemu-img
  int timeout_s = 1800;
};

// Writes `destination` (a new sparse raw file) from `source` of format `format`.
// Raw sources need no conversion: kInvalidArgument. A failure removes `destination`.
Status convertToRaw(const std::string& source, ImageFormat format,
                    const std::string& destination, const ConvertLimits& limits);

}  // namespace qiao
