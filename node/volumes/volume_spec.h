// The bodies of the volume routes (POST /v1/volumes, resize, copy, limits), parsed strictly from
// JSON: what the API takes from callers, apart from the service that acts on it, so that the
// parsers are tested and fuzzed on their own.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "storage/volume_driver.h"

namespace qiao {

struct VolumeSpec {
  std::string name;
  std::string tenant;  // may be absent: the API fills it in
  std::string pool;    // "" : the node's pool
  int64_t size_gib = 0;
  VolumeQos qos;
};

struct VolumeLimits {
  int64_t max_size_gib = 16384;
  std::string pool;                      // the node's pool ("" with the local driver)
  std::vector<std::string> other_pools;  // more pools a spec or a copy may name
};

// Strict: unknown fields, wrong types, names that are not DNS labels, sizes and limits out of
// range are refused with a message naming the field. Never throws.
Result<VolumeSpec> parseVolumeSpec(std::string_view json_text, const VolumeLimits& limits);
// {"size_gib": N} of a resize.
Result<int64_t> parseResize(std::string_view json_text, const VolumeLimits& limits);
// The body of POST /v1/volumes/{name}/copy: the new volume's name and, optionally, a cap on
// the copy's speed (MiB/s) so that it leaves the backend to the guests.
struct CopyRequest {
  std::string name;
  std::string pool;             // "" : the node's pool
  int64_t bandwidth_mib_s = 0;  // 0: no cap
};
Result<CopyRequest> parseCopy(std::string_view json_text, const VolumeLimits& limits);
// The body of PUT /v1/volumes/{name}/limits: every limit (absent or 0: none).
Result<VolumeQos> parseQosBody(std::string_view json_text);
// The limits as an object ({"iops": N, ...}; absent fields and 0 are no limit) found at `where`
// (named in messages): in a spec, a limits body, a task's parameters.
Result<VolumeQos> parseQos(const nlohmann::json& qos, const std::string& where);

}  // namespace qiao
