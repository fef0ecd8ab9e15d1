#include "node/quotas/quota_spec.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/json_input.h"

namespace qiao {
namespace {

constexpr int kMaxDepth = 4;

Error invalid(const std::string& message) {
  return Error{ErrorCode::kInvalidArgument, "quota", message, {}};
}

Error noChanges() {
  return invalid(
      "give at least one of vms, vcpus, memory_mib, volume_gib, images, networks, uploads");
}

Status checkKey(const std::string& key) {
  if (std::find(kQuotaKeys.begin(), kQuotaKeys.end(), key) != kQuotaKeys.end()) return {};
  return std::unexpected(invalid("unknown quota " + nlohmann::json(key).dump() +
                                 " (vms, vcpus, memory_mib, volume_gib, images, networks, "
                                 "uploads)"));
}

Error badValue(const std::string& key) {
  return invalid("quota " + key +
                 " must be an integer from 0 up, -1 for no limit, or null for the node's "
                 "default");
}

Status checkValue(const std::string& key, std::optional<int64_t> value) {
  if (value && (*value < -1 || *value > kMaxQuota)) return std::unexpected(badValue(key));
  return {};
}

}  // namespace

Result<QuotaChanges> parseQuotaChanges(std::string_view json_text) {
  auto body = parseJsonObject(json_text, kMaxDepth, "quota");
  if (!body) return std::unexpected(body.error());
  if (body->empty()) return std::unexpected(noChanges());
  QuotaChanges out;
  for (const auto& [key, value] : body->items()) {
    if (auto known = checkKey(key); !known) return std::unexpected(known.error());
    std::optional<int64_t> limit;
    if (!value.is_null()) {
      int64_t n = 0;
      // An integer that does not fit int64_t is out of range, not wrapped around.
      if (!jsonInt64(value, &n)) return std::unexpected(badValue(key));
      limit = n;
    }
    if (auto ok = checkValue(key, limit); !ok) return std::unexpected(ok.error());
    out.emplace(key, limit);
  }
  return out;
}

Status checkQuotaChanges(const QuotaChanges& changes) {
  if (changes.empty()) return std::unexpected(noChanges());
  for (const auto& [key, value] : changes) {
    if (auto known = checkKey(key); !known) return known;
    if (auto ok = checkValue(key, value); !ok) return ok;
  }
  return {};
}

}  // namespace qiao
