// Writing a probed image into a volume: qemu-img convert into the volume that the caller
// made (-n: qemu-img never creates or resizes it), with the source format stated explicitly
// (never guessed), in parallel requests, and under CPU-time, memory and wall-clock limits, so
// that a crafted image costs at most that. Everything goes by argv; nothing through a shell.
// RBD targets are opened by QEMU's rbd driver with the namespace and a secret object read
// from the key file: the key is never on a command line.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"
#include "images/probe.h"

namespace qiao {

struct ConvertLimits {
  int cpu_seconds = 600;
  // Address space of qemu-img: librbd's threads reserve stacks, 1 GiB is too little for RBD.
  int64_t memory_bytes = int64_t{3} << 30;
  int timeout_s = 1800;
};

// Where the raw bytes go: a file, or an RBD image.
struct ConvertTarget {
  std::string path;                            // file
  std::string pool, ns, image, user, conf;     // rbd
  std::string key_file;                        // rbd: base64 cephx key
};

// Writes the content of `source` (of format `format`) as raw into the existing `target`.
Status convertInto(const std::string& source, ImageFormat format, const ConvertTarget& target,
                   const ConvertLimits& limits);

}  // namespace qiao
