// Small file helpers shared by the daemon's modules.
#pragma once

#include <string>

namespace qiao {

// The whole file as text; "" when it cannot be read (callers that must tell a missing file
// from an empty one check first).
std::string readTextFile(const std::string& path);

}  // namespace qiao
