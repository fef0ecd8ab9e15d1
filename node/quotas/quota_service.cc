#include "node/quotas/quota_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace qiao {

using nlohmann::json;

int64_t gibOf(int64_t bytes) { return (bytes + (int64_t{1} << 30) - 1) >> 30; }

QuotaService::QuotaService(Store& store, QuotaFigures defaults)
    : store_(store), defaults_(std::move(defaults)) {
  for (auto key : kQuotaKeys) defaults_.try_emplace(std::string(key), -1);
}

Result<QuotaFigures> QuotaService::limits(const std::string& tenant) {
  QuotaFigures out = defaults_;
  auto stored = store_.quotas().get(tenant);
  if (!stored) {
    if (stored.error().code == ErrorCode::kNotFound) return out;
    return std::unexpected(stored.error());
  }
  auto set = json::parse(*stored, nullptr, false);
  if (!set.is_object()) return out;
  for (const auto& [key, value] : set.items()) {
    if (out.contains(key) && value.is_number_integer()) out[key] = value.get<int64_t>();
  }
  return out;
}

Result<QuotaFigures> QuotaService::usage(const std::string& tenant) {
  QuotaFigures out;
  for (auto key : kQuotaKeys) out[std::string(key)] = 0;
  VmFilter filter;
  filter.tenants = {tenant};
  filter.limit = 1000;
  do {
    auto page = store_.vms().list(filter);
    if (!page) return std::unexpected(page.error());
    for (const auto& vm : page->items) {
      auto spec = json::parse(vm.spec_json, nullptr, false);
      if (!spec.is_object()) spec = json::object();
      out["vms"] += 1;
      out["vcpus"] +=
          std::max(spec.value("vcpus", int64_t{1}), spec.value("max_vcpus", int64_t{0}));
      out["memory_mib"] +=
          std::max(spec.value("memory_mib", int64_t{0}), spec.value("max_memory_mib", int64_t{0}));
    }
    filter.page_token = page->next_page_token;
  } while (!filter.page_token.empty());
  auto volumes = store_.volumes().list({tenant});
  if (!volumes) return std::unexpected(volumes.error());
  for (const auto& v : *volumes) out["volume_gib"] += gibOf(v.size_bytes);
  auto images = store_.images().list({tenant});
  if (!images) return std::unexpected(images.error());
  for (const auto& i : *images) out["images"] += i.tenant == tenant ? 1 : 0;
  auto networks = store_.networks().list({tenant});
  if (!networks) return std::unexpected(networks.error());
  out["networks"] = static_cast<int64_t>(networks->size());
  return out;
}

Status QuotaService::set(const std::string& tenant, const QuotaChanges& changes) {
  if (auto ok = checkQuotaChanges(changes); !ok) return ok;
  // Made to the limits as they are when written: on a cluster member another member's change of
  // other limits is kept.
  return store_.quotas().update(tenant, [&](const std::string& text) {
    json stored = json::parse(text, nullptr, false);
    if (!stored.is_object()) stored = json::object();  // none set yet ("")
    for (const auto& [key, value] : changes) {
      if (value) {
        stored[key] = *value;
      } else {
        stored.erase(key);
      }
    }
    return stored.dump();
  });
}

Status QuotaService::check(const std::string& tenant, const QuotaFigures& delta) {
  auto limit = limits(tenant);
  if (!limit) return std::unexpected(limit.error());
  // Counting what the tenant has reads all its records: only when a limit is at stake.
  const bool limited = std::any_of(delta.begin(), delta.end(), [&](const auto& d) {
    auto it = limit->find(d.first);
    return d.second > 0 && it != limit->end() && it->second >= 0;
  });
  if (!limited) return {};
  auto used = usage(tenant);
  if (!used) return std::unexpected(used.error());
  for (auto name : kQuotaKeys) {  // in a fixed order: the first quota passed is named
    const std::string key(name);
    auto it = delta.find(key);
    if (it == delta.end()) continue;
    const int64_t more = it->second;
    const int64_t most = limit->at(key);
    const int64_t now = used->at(key);
    if (more <= 0 || most < 0 || now + more <= most) continue;
    return makeError(
        ErrorCode::kConflict, "quota",
        "tenant " + tenant + "'s quota of " + key + " is " + std::to_string(most) + ": it has " +
            std::to_string(now) + " and this asks for " + std::to_string(more) +
            " more (an admin raises it with `qiaoctl quota set " + tenant + "`)",
        json{{"quota", key}, {"limit", most}, {"usage", now}, {"requested", more}}.dump());
  }
  return {};
}

}  // namespace qiao
