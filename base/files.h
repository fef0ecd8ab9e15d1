// Small file helpers shared by the daemon's modules.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace qiao {

// Bytes an unprivileged writer may still use on the filesystem that holds `path` (statvfs).
Result<int64_t> freeBytes(const std::string& path);

// The whole file as text; "" when it cannot be read (callers that must tell a missing file
// from an empty one check first).
std::string readTextFile(const std::string& path);

}  // namespace qiao
