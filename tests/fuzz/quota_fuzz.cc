// libFuzzer target: the quota body parser (PUT /v1/quotas/{tenant}) on arbitrary bytes. It must
// never crash, hang or leak; what it accepts names at least one known quota, each with a limit
// from -1 to kMaxQuota or null, exactly as the document has it (no number wrapped around or
// rounded), passes checkQuotaChanges (what QuotaService::set checks), and, written out again,
// parses to the same changes.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "node/quotas/quota_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto changes = qiao::parseQuotaChanges(text);
  if (!changes) return 0;
  if (changes->empty() || !qiao::checkQuotaChanges(*changes)) std::abort();

  const auto document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object() || document.size() != changes->size()) std::abort();
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, limit] : *changes) {
    bool known = false;
    for (auto k : qiao::kQuotaKeys) known = known || k == key;
    if (!known || !document.contains(key)) std::abort();
    if (limit) {
      if (*limit < -1 || *limit > qiao::kMaxQuota) std::abort();
      // As text: nlohmann's == takes 2^64-1 for -1.
      if (document[key].dump() != std::to_string(*limit)) std::abort();
      out[key] = *limit;
    } else {
      if (!document[key].is_null()) std::abort();
      out[key] = nullptr;
    }
  }
  auto again = qiao::parseQuotaChanges(out.dump());
  if (!again || *again != *changes) std::abort();
  return 0;
}
