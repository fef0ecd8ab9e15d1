// libFuzzer target: the bodies of the volume routes (a volume spec, a resize, a copy, limits)
// on arbitrary bytes, each parser on the same input. None may crash, hang or leak; what one
// accepts must be within the limits it was given, and a spec it accepts, written out again,
// must parse to the same spec.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/names.h"
#include "node/state/record_json.h"
#include "node/volumes/volume_spec.h"

namespace {

qiao::VolumeLimits fuzzLimits() {
  qiao::VolumeLimits limits;
  limits.max_size_gib = 4096;
  limits.pool = "qiao";
  limits.other_pools = {"qiao-ssd"};
  return limits;
}

bool validQos(const qiao::VolumeQos& q) {
  for (int64_t v : {q.iops, q.bytes_per_sec, q.read_iops, q.write_iops, q.read_bytes_per_sec,
                    q.write_bytes_per_sec}) {
    if (v < 0) return false;
  }
  return !(q.iops > 0 && (q.read_iops > 0 || q.write_iops > 0)) &&
         !(q.bytes_per_sec > 0 && (q.read_bytes_per_sec > 0 || q.write_bytes_per_sec > 0));
}

bool servedPool(const std::string& pool, const qiao::VolumeLimits& limits) {
  if (pool.empty()) return true;  // the node's own
  if (pool == limits.pool) return true;
  for (const auto& other : limits.other_pools) {
    if (pool == other) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const qiao::VolumeLimits limits = fuzzLimits();

  if (auto spec = qiao::parseVolumeSpec(text, limits)) {
    if (!qiao::checkDnsLabel("name", spec->name)) std::abort();
    if (!spec->tenant.empty() && !qiao::checkDnsLabel("tenant", spec->tenant)) std::abort();
    if (spec->size_gib < 1 || spec->size_gib > limits.max_size_gib) std::abort();
    if (!servedPool(spec->pool, limits) || !validQos(spec->qos)) std::abort();
    nlohmann::json out = {
        {"name", spec->name}, {"size_gib", spec->size_gib}, {"qos", qiao::qosToJson(spec->qos)}};
    if (!spec->tenant.empty()) out["tenant"] = spec->tenant;
    if (!spec->pool.empty()) out["pool"] = spec->pool;
    auto again = qiao::parseVolumeSpec(out.dump(), limits);
    if (!again || again->name != spec->name || again->tenant != spec->tenant ||
        again->pool != spec->pool || again->size_gib != spec->size_gib ||
        !(again->qos == spec->qos)) {
      std::abort();
    }
  }
  if (auto size = qiao::parseResize(text, limits)) {
    if (*size < 1 || *size > limits.max_size_gib) std::abort();
  }
  if (auto copy = qiao::parseCopy(text, limits)) {
    if (!qiao::checkDnsLabel("name", copy->name)) std::abort();
    if (!servedPool(copy->pool, limits) || copy->bandwidth_mib_s < 0) std::abort();
  }
  if (auto qos = qiao::parseQosBody(text)) {
    if (!validQos(*qos)) std::abort();
    auto again = qiao::parseQosBody(qiao::qosToJson(*qos).dump());
    if (!again || !(*again == *qos)) std::abort();
  }
  return 0;
}
