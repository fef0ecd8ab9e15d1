// `qiaoctl host check`: the list of checks that say whether this host can run guests. Each
// check is a function of the facts the API gave; adding one (firmware, storage, network) is
// one more entry in hostChecks() and, when it needs more facts, one more field in HostFacts.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace qiao {

enum class Verdict { kPass, kWarn, kFail };
std::string_view verdictName(Verdict verdict);  // "pass", "warn", "fail"

struct CheckResult {
  std::string name;
  Verdict verdict = Verdict::kFail;
  std::string detail;  // what was found and, for warn and fail, why it matters
};

// What the checks look at: the answers of GET /v1/host and GET /v1/healthz.
struct HostFacts {
  const nlohmann::json& host;
  const nlohmann::json& health;
};

struct HostCheck {
  std::string_view name;
  CheckResult (*run)(const HostFacts& facts);
};

// The checks in the order they are reported.
const std::vector<HostCheck>& hostChecks();

std::vector<CheckResult> runHostChecks(const HostFacts& facts);

}  // namespace qiao
