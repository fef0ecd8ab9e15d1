#include "base/names.h"

#include <gtest/gtest.h>

namespace qiao {
namespace {

TEST(Names, DnsLabels) {
  for (const std::string& ok : std::vector<std::string>{"a", "web1", "a-b", "0", std::string(63, 'a')}) {
    EXPECT_TRUE(isDnsLabel(ok)) << ok;
  }
  const std::vector<std::string> bads = {"",    "-a",  "a-",   "A",  "a_b",
                                         "a.b", "a/b", "..",   "<x>", "a\"b",
                                         "ü",   std::string(64, 'a'), std::string("a\0b", 3)};
  for (const auto& bad : bads) {
    EXPECT_FALSE(isDnsLabel(bad)) << bad;
    auto s = checkDnsLabel("vm name", bad);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find("vm name"), std::string::npos);
  }
}

TEST(Names, QuoteForMessageIsSafeToPrint) {
  EXPECT_EQ(quoteForMessage("abc"), "\"abc\"");
  EXPECT_EQ(quoteForMessage("a\"b\n"), "\"a\\x22b\\x0a\"");
  auto long_one = quoteForMessage(std::string(300, 'x'));
  EXPECT_NE(long_one.find("(300 bytes)"), std::string::npos);
  EXPECT_LT(long_one.size(), 100u);
}

}  // namespace
}  // namespace qiao
