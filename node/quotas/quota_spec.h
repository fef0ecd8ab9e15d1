// The body of PUT /v1/quotas/{tenant} (what a tenant may have), parsed strictly from JSON:
// what the API takes from an admin, apart from the service that records it, so that the
// parser is tested and fuzzed on its own.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

inline constexpr std::array<std::string_view, 7> kQuotaKeys = {
    "vms", "vcpus", "memory_mib", "volume_gib", "images", "networks", "uploads"};
// The largest limit an admin may set; -1 is no limit.
inline constexpr int64_t kMaxQuota = int64_t{1} << 40;

// What a body changes, by quota: its new limit, or nullopt for the node's default again. The
// quotas it does not name stay as they are.
using QuotaChanges = std::map<std::string, std::optional<int64_t>>;

// Strict: an object naming at least one of kQuotaKeys, each an integer from -1 to kMaxQuota
// or null; anything else is refused (kInvalidArgument) naming the first quota at fault, in
// the order of their names. Never throws.
Result<QuotaChanges> parseQuotaChanges(std::string_view json_text);
// The same checks on changes made otherwise.
Status checkQuotaChanges(const QuotaChanges& changes);

}  // namespace qiao
