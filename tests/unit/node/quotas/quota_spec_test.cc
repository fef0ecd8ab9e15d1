// The body of PUT /v1/quotas/{tenant}: limits, -1 and null taken as given; unknown quotas,
// values out of range or of another type, and bodies that are not one object of at least one
// quota refused with a message naming the quota.
#include "node/quotas/quota_spec.h"

#include <gtest/gtest.h>

#include <string>

namespace qiao {
namespace {

// The message of the refusal of `body`, "" when it is accepted.
std::string refusal(const std::string& body) {
  auto parsed = parseQuotaChanges(body);
  if (parsed) return "";
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << body;
  return parsed.error().message;
}

TEST(QuotaSpec, LimitsNoLimitAndTheDefaultAgain) {
  auto parsed = parseQuotaChanges(R"({"vms":10,"vcpus":-1,"memory_mib":null,"uploads":0})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().describe();
  EXPECT_EQ(
      *parsed,
      (QuotaChanges{{"vms", 10}, {"vcpus", -1}, {"memory_mib", std::nullopt}, {"uploads", 0}}));
  auto most = parseQuotaChanges(R"({"volume_gib":1099511627776})");
  ASSERT_TRUE(most.has_value());
  EXPECT_EQ(most->at("volume_gib"), kMaxQuota);
  for (auto key : kQuotaKeys) {
    EXPECT_EQ(refusal(R"({")" + std::string(key) + R"(":1})"), "") << key;
  }
}

TEST(QuotaSpec, UnknownQuotasAndBadValuesAreRefusedNamingTheQuota) {
  EXPECT_NE(refusal(R"({"cpus":1})").find(R"(unknown quota "cpus")"), std::string::npos);
  for (const char* bad : {R"({"vms":-2})", R"({"vms":"ten"})", R"({"vms":1.5})", R"({"vms":true})",
                          R"({"vms":[1]})", R"({"vms":{"n":1}})", R"({"vms":1099511627777})",
                          // Past int64_t: out of range, not wrapped around to -1 (no limit).
                          R"({"vms":18446744073709551615})", R"({"vms":-9223372036854775809})"}) {
    EXPECT_NE(refusal(bad).find("quota vms must be an integer from 0 up, -1 for no limit"),
              std::string::npos)
        << bad;
  }
  // The first at fault in the order of the names.
  EXPECT_NE(refusal(R"({"vms":"x","cpus":1})").find("cpus"), std::string::npos);
  EXPECT_NE(refusal(R"({"vms":"x","images":-5})").find("quota images"), std::string::npos);
}

TEST(QuotaSpec, ABodyIsOneObjectOfAtLeastOneQuota) {
  EXPECT_NE(refusal("{}").find("give at least one of vms"), std::string::npos);
  for (const char* bad :
       {"", "[]", "10", "null", R"({"vms":1)", R"({"vms":1,"vms":2})", R"({"vms":1} {"vms":2})"}) {
    EXPECT_NE(refusal(bad), "") << bad;
  }
}

TEST(QuotaSpec, ChangesMadeOtherwiseAreCheckedAlike) {
  EXPECT_TRUE(checkQuotaChanges({{"vms", 3}, {"images", std::nullopt}}).has_value());
  EXPECT_FALSE(checkQuotaChanges({}).has_value());
  auto unknown = checkQuotaChanges({{"cpus", 1}});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(unknown.error().message.find(R"("cpus")"), std::string::npos);
  EXPECT_FALSE(checkQuotaChanges({{"vms", -2}}).has_value());
  EXPECT_FALSE(checkQuotaChanges({{"vms", kMaxQuota + 1}}).has_value());
}

}  // namespace
}  // namespace qiao
