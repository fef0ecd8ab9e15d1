// Small file helpers shared by the daemon's modules.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

// Bytes an unprivileged writer may still use on the filesystem that holds `path` (statvfs).
Result<int64_t> freeBytes(const std::string& path);

// Writes `data` to `path` atomically: a temporary file created with `mode` (never wider, whatever
// the umask), fsynced, renamed over `path`, and the directory fsynced, so a crash leaves the old
// file or the new one, never a part.
Status writeFileAtomic(const std::string& path, std::string_view data, mode_t mode);

// The whole file's bytes; kNotFound ("cannot read PATH") when it cannot be opened.
Result<std::string> readFileBytes(const std::string& path);

// The whole file as text; "" when it cannot be read (callers that must tell a missing file
// from an empty one check first).
std::string readTextFile(const std::string& path);

}  // namespace qiao
