// The FakeSwitch behaves as the Switch contract says, so that tests built on it mean something.
#include "tests/doubles/fake_switch.h"

#include <gtest/gtest.h>

namespace qiao::testing {
namespace {

TEST(FakeSwitch, KeepsBridgesAndPortsIdempotently) {
  FakeSwitch sw;
  int changes = 0;
  sw.setChangeHandler([&] { ++changes; });
  ASSERT_TRUE(sw.ensureBridge("br-qiao", "netdev").has_value());
  ASSERT_TRUE(sw.ensureBridge("br-qiao", "netdev").has_value());
  EXPECT_EQ(sw.writes(), 1);
  SwitchPort tap{.name = "tap1", .external_ids = {{"vm", "acme/web1"}}};
  SwitchPort tunnel{
      .name = "vx1", .type = "vxlan", .ofport_request = 10, .options = {{"remote_ip", "10.0.0.2"}}};
  ASSERT_TRUE(sw.ensurePort("br-qiao", tap).has_value());
  ASSERT_TRUE(sw.ensurePort("br-qiao", tunnel).has_value());
  ASSERT_TRUE(sw.ensurePort("br-qiao", tap).has_value());
  EXPECT_EQ(sw.writes(), 3);
  EXPECT_EQ(changes, 3);
  auto ports = sw.listPorts("br-qiao");
  ASSERT_TRUE(ports.has_value());
  ASSERT_EQ(ports->size(), 2u);
  EXPECT_EQ((*ports)[0].port, tap);
  EXPECT_EQ((*ports)[0].ofport, 1);
  EXPECT_EQ((*ports)[1].ofport, 10);
  EXPECT_EQ(sw.ensurePort("br-none", tap).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(sw.listPorts("br-none").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(sw.removePort("br-qiao", "tap1").has_value());
  ASSERT_TRUE(sw.removePort("br-qiao", "tap1").has_value());
  EXPECT_FALSE(sw.port("br-qiao", "tap1").has_value());
}

TEST(FakeSwitch, MovesPortsAndReportsWhatOvsWould) {
  FakeSwitch sw;
  ASSERT_TRUE(sw.ensureBridge("br-a", "netdev").has_value());
  ASSERT_TRUE(sw.ensureBridge("br-b", "netdev").has_value());
  ASSERT_TRUE(sw.ensurePort("br-a", {.name = "tap1"}).has_value());
  ASSERT_TRUE(sw.ensurePort("br-b", {.name = "tap1"}).has_value());
  EXPECT_FALSE(sw.port("br-a", "tap1").has_value());
  ASSERT_TRUE(sw.port("br-b", "tap1").has_value());
  sw.setPortState("tap1", -1, "could not open network device tap1 (No such device)");
  auto ports = sw.listPorts("br-b");
  ASSERT_TRUE(ports.has_value());
  EXPECT_EQ((*ports)[0].ofport, -1);
  EXPECT_NE((*ports)[0].error.find("No such device"), std::string::npos);
}

TEST(FakeSwitch, UnavailableLikeAStoppedServer) {
  FakeSwitch sw;
  int changes = 0;
  sw.setChangeHandler([&] { ++changes; });
  sw.setUnavailable(true);
  EXPECT_EQ(sw.ping().error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(sw.ensureBridge("br-a", "netdev").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(changes, 0);
  sw.setUnavailable(false);
  EXPECT_EQ(changes, 1);  // as after a reconnection
  EXPECT_TRUE(sw.ping().has_value());
}

}  // namespace
}  // namespace qiao::testing
