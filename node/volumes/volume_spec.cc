#include "node/volumes/volume_spec.h"

#include <set>
#include <nlohmann/json.hpp>

#include "base/json_input.h"
#include "base/names.h"

namespace qiao {
namespace {

constexpr int kMaxDepth = 8;

const std::set<std::string> kSpecFields = {"name", "tenant", "size_gib", "pool", "qos"};
// The limits' JSON names, their fields and their largest values.
struct QosField {
  const char* name;
  int64_t VolumeQos::*field;
  int64_t max;
};
constexpr QosField kQosFields[] = {
    {"iops", &VolumeQos::iops, 10'000'000},
    {"bytes_per_sec", &VolumeQos::bytes_per_sec, int64_t{1} << 40},
    {"read_iops", &VolumeQos::read_iops, 10'000'000},
    {"write_iops", &VolumeQos::write_iops, 10'000'000},
    {"read_bytes_per_sec", &VolumeQos::read_bytes_per_sec, int64_t{1} << 40},
    {"write_bytes_per_sec", &VolumeQos::write_bytes_per_sec, int64_t{1} << 40},
};

}  // namespace

// {"iops": N, ...}: absent fields and 0 are no limit.
Result<VolumeQos> parseQos(const nlohmann::json& qos, const std::string& where) {
  if (!qos.is_object()) {
    return makeError(ErrorCode::kInvalidArgument, "spec",
                     "field \"" + where + "\" must be an object, got " + describeJsonType(qos));
  }
  std::set<std::string> names;
  for (const auto& f : kQosFields) names.insert(f.name);
  if (auto known = checkKnownFields(qos, names, where); !known) {
    return std::unexpected(known.error());
  }
  VolumeQos out;
  for (const auto& f : kQosFields) {
    if (!qos.contains(f.name)) continue;
    auto v = jsonInt(qos, f.name, 0, f.max);
    if (!v) return std::unexpected(v.error());
    out.*(f.field) = *v;
  }
  // As QEMU and libvirt take them: a total, or reads and writes on their own.
  if (out.iops > 0 && (out.read_iops > 0 || out.write_iops > 0)) {
    return makeError(ErrorCode::kInvalidArgument, "spec",
                     where + ": give iops, or read_iops and write_iops, not both");
  }
  if (out.bytes_per_sec > 0 && (out.read_bytes_per_sec > 0 || out.write_bytes_per_sec > 0)) {
    return makeError(ErrorCode::kInvalidArgument, "spec",
                     where + ": give bytes_per_sec, or read_bytes_per_sec and "
                             "write_bytes_per_sec, not both");
  }
  return out;
}


namespace {

// doc["pool"]: one of the pools this node serves.
Result<std::string> jsonPool(const nlohmann::json& doc, const VolumeLimits& limits) {
  auto pool = jsonString(doc, "pool", "");
  if (!pool) return pool;
  if (*pool == limits.pool && !pool->empty()) return pool;
  for (const auto& other : limits.other_pools) {
    if (*pool == other) return pool;
  }
  std::string served = limits.pool;
  for (const auto& other : limits.other_pools) served += ", " + other;
  return makeError(ErrorCode::kInvalidArgument, "spec",
                   "pool " + quoteForMessage(*pool) + " is not served here" +
                       (limits.pool.empty() ? std::string(" (volumes are local files)")
                                            : " (the pools are " + served + ")"));
}

}  // namespace

Result<VolumeSpec> parseVolumeSpec(std::string_view text, const VolumeLimits& limits) {
  auto parsed = parseJsonObject(text, kMaxDepth, "volume spec");
  if (!parsed) return std::unexpected(parsed.error());
  const auto& doc = *parsed;
  if (auto known = checkKnownFields(doc, kSpecFields, "volume spec"); !known) {
    return std::unexpected(known.error());
  }
  VolumeSpec spec;
  for (const char* required : {"name", "size_gib"}) {
    if (!doc.contains(required)) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       "field \"" + std::string(required) + "\" is required");
    }
  }
  if (auto ok = jsonNameAndTenant(doc, &spec.name, &spec.tenant); !ok) {
    return std::unexpected(ok.error());
  }
  auto size = jsonInt(doc, "size_gib", 1, limits.max_size_gib);
  if (!size) return std::unexpected(size.error());
  spec.size_gib = *size;
  if (doc.contains("pool")) {
    auto pool = jsonPool(doc, limits);
    if (!pool) return std::unexpected(pool.error());
    spec.pool = *pool;
  }
  if (doc.contains("qos")) {
    auto qos = parseQos(doc.at("qos"), "qos");
    if (!qos) return std::unexpected(qos.error());
    spec.qos = *qos;
  }
  return spec;
}

Result<VolumeQos> parseQosBody(std::string_view text) {
  auto parsed = parseJsonObject(text, kMaxDepth, "limits");
  if (!parsed) return std::unexpected(parsed.error());
  return parseQos(*parsed, "limits");
}

Result<CopyRequest> parseCopy(std::string_view text, const VolumeLimits& limits) {
  auto parsed = parseJsonObject(text, kMaxDepth, "copy");
  if (!parsed) return std::unexpected(parsed.error());
  if (auto known = checkKnownFields(*parsed, {"name", "pool", "bandwidth_mib_s"}, "copy");
      !known) {
    return std::unexpected(known.error());
  }
  CopyRequest request;
  std::string no_tenant;
  if (auto named = jsonNameAndTenant(*parsed, &request.name, &no_tenant); !named) {
    return std::unexpected(named.error());
  }
  if (parsed->contains("pool")) {
    auto pool = jsonPool(*parsed, limits);
    if (!pool) return std::unexpected(pool.error());
    request.pool = *pool;
  }
  if (parsed->contains("bandwidth_mib_s")) {
    auto cap = jsonInt(*parsed, "bandwidth_mib_s", 0, 1 << 20);
    if (!cap) return std::unexpected(cap.error());
    request.bandwidth_mib_s = *cap;
  }
  return request;
}

Result<int64_t> parseResize(std::string_view text, const VolumeLimits& limits) {
  auto parsed = parseJsonObject(text, kMaxDepth, "resize");
  if (!parsed) return std::unexpected(parsed.error());
  if (auto known = checkKnownFields(*parsed, {"size_gib"}, "resize"); !known) {
    return std::unexpected(known.error());
  }
  if (!parsed->contains("size_gib")) {
    return makeError(ErrorCode::kInvalidArgument, "spec", "field \"size_gib\" is required");
  }
  return jsonInt(*parsed, "size_gib", 1, limits.max_size_gib);
}

}  // namespace qiao
