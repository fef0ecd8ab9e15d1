// The bodies of the volume routes: pools a node serves, copies, and what is refused.
#include <gtest/gtest.h>

#include "node/volumes/volume_service.h"

namespace qiao {
namespace {

VolumeLimits rbdLimits() {
  VolumeLimits limits;
  limits.pool = "qiao";
  limits.other_pools = {"qiao-ssd"};
  return limits;
}

TEST(VolumeSpec, APoolMustBeOneTheNodeServes) {
  auto in_other = parseVolumeSpec(R"({"name":"d1","size_gib":1,"pool":"qiao-ssd"})", rbdLimits());
  ASSERT_TRUE(in_other.has_value()) << in_other.error().describe();
  EXPECT_EQ(in_other->pool, "qiao-ssd");
  auto in_first = parseVolumeSpec(R"({"name":"d1","size_gib":1,"pool":"qiao"})", rbdLimits());
  ASSERT_TRUE(in_first.has_value());
  EXPECT_EQ(in_first->pool, "qiao");
  auto none = parseVolumeSpec(R"({"name":"d1","size_gib":1})", rbdLimits());
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->pool, "");
  auto elsewhere = parseVolumeSpec(R"({"name":"d1","size_gib":1,"pool":"rbd"})", rbdLimits());
  ASSERT_FALSE(elsewhere.has_value());
  EXPECT_EQ(elsewhere.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(elsewhere.error().message.find("qiao, qiao-ssd"), std::string::npos)
      << elsewhere.error().message;
  // A local node has no pools at all, not even "".
  auto local = parseVolumeSpec(R"({"name":"d1","size_gib":1,"pool":""})", VolumeLimits{});
  ASSERT_FALSE(local.has_value());
  EXPECT_NE(local.error().message.find("local files"), std::string::npos);
}

TEST(VolumeCopy, NameOptionalPoolAndCapStrictlyChecked) {
  auto plain = parseCopy(R"({"name":"c1"})", rbdLimits());
  ASSERT_TRUE(plain.has_value()) << plain.error().describe();
  EXPECT_EQ(plain->name, "c1");
  EXPECT_EQ(plain->pool, "");
  EXPECT_EQ(plain->bandwidth_mib_s, 0);
  auto full = parseCopy(R"({"name":"c1","pool":"qiao-ssd","bandwidth_mib_s":64})", rbdLimits());
  ASSERT_TRUE(full.has_value()) << full.error().describe();
  EXPECT_EQ(full->pool, "qiao-ssd");
  EXPECT_EQ(full->bandwidth_mib_s, 64);
  for (const char* bad :
       {R"({})", R"({"name":"C1"})", R"({"name":"a/b"})", R"({"name":"a\"b"})",
        R"({"name":"c1","pool":"nope"})", R"({"name":"c1","bandwidth_mib_s":-1})",
        R"({"name":"c1","bandwidth_mib_s":"fast"})", R"({"name":"c1","size_gib":2})",
        R"({"name":"c1","tenant":"tb"})", R"(["c1"])", R"({"name":"c1")"}) {
    auto parsed = parseCopy(bad, rbdLimits());
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace qiao
