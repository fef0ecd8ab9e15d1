// The body of POST /v1/images, parsed strictly from JSON: what the API takes from callers,
// apart from the service that acts on it, so that the parser is tested and fuzzed on its own.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

struct ImageSpec {
  std::string name;
  std::string tenant;          // may be absent: the API fills it in
  bool is_public = false;      // admins only
  std::string format;          // declared: raw | qcow2 | iso | "" (none)
  std::string source_path;     // admins only: a regular file on this host
};

// Strict, like every spec. Never throws.
Result<ImageSpec> parseImageSpec(std::string_view json_text);

}  // namespace qiao
