// Host records as stored in the hosts table: every field survives the round trip, and records
// written before a field existed still read.
#include "cluster/hosts.h"

#include <gtest/gtest.h>

namespace qiao {
namespace {

HostRecord sample() {
  HostRecord h;
  h.name = "host-a";
  h.state = HostState::kMaintenance;
  h.arch = "aarch64";
  h.vcpus = 8;
  h.memory_mib = 16384;
  h.site = "sh";
  h.labels = {{"rack", "r1"}};
  h.endpoint = "https://10.0.0.1:8443";
  h.joined_at = "2026-12-07T15:00:00Z";
  h.tunnel_ip = "192.0.2.11";
  return h;
}

void expectSame(const HostRecord& a, const HostRecord& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.vcpus, b.vcpus);
  EXPECT_EQ(a.memory_mib, b.memory_mib);
  EXPECT_EQ(a.site, b.site);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.endpoint, b.endpoint);
  EXPECT_EQ(a.joined_at, b.joined_at);
  EXPECT_EQ(a.tunnel_ip, b.tunnel_ip);
}

TEST(HostRecordJson, RoundTripsWithItsTunnelAddress) {
  const HostRecord h = sample();
  const std::string text = hostToJson(h);
  EXPECT_NE(text.find("\"tunnel_ip\":\"192.0.2.11\""), std::string::npos) << text;
  auto back = hostFromJson(text);
  ASSERT_TRUE(back) << back.error().message;
  expectSame(*back, h);
}

TEST(HostRecordJson, RoundTripsWithoutATunnelAddress) {
  HostRecord h = sample();
  h.tunnel_ip.clear();
  const std::string text = hostToJson(h);
  EXPECT_EQ(text.find("tunnel_ip"), std::string::npos) << text;
  auto back = hostFromJson(text);
  ASSERT_TRUE(back) << back.error().message;
  expectSame(*back, h);
}

TEST(HostRecordJson, ARecordOfAnOlderQiaodStillReads) {
  // As written before hosts published their tunnel address.
  auto old = hostFromJson(
      R"({"name":"host-b","state":"ready","arch":"x86_64","vcpus":4,"memory_mib":8192,)"
      R"("site":"","labels":{},"endpoint":"https://10.0.0.2:8443",)"
      R"("joined_at":"2026-01-01T00:00:00Z"})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->name, "host-b");
  EXPECT_EQ(old->state, HostState::kReady);
  EXPECT_EQ(old->tunnel_ip, "");
}

TEST(HostRecordJson, ATunnelAddressThatIsNotTextIsRefused) {
  std::string text = hostToJson(sample());
  text.replace(text.find("\"192.0.2.11\""), 12, "42");
  auto bad = hostFromJson(text);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInternal);
  EXPECT_NE(bad.error().message.find("tunnel_ip"), std::string::npos);
}

}  // namespace
}  // namespace qiao
