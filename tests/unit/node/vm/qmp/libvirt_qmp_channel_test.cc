// LibvirtQmpChannel's own paths on libvirt's test:///default driver, which has domains but no
// QEMU monitor: a missing domain, libvirt's refusal mapped at the edge, and bad arguments. The
// passthrough itself is tested against the real libvirtd in tests/integration/node/vm/qmp/qmp_it.cc.
#include "node/vm/qmp/libvirt_qmp_channel.h"

#include <gtest/gtest.h>

namespace qiao::testing {
namespace {

using std::chrono::milliseconds;

TEST(LibvirtQmpChannel, MissingDomainIsNotFound) {
  LibvirtQmpOptions options;
  options.uri = "test:///default";
  options.domain = "no-such-domain";
  LibvirtQmpChannel channel(options);
  auto connected = channel.connect(milliseconds(5000));
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(connected.error().subsystem, "libvirt");
  EXPECT_NE(connected.error().message.find("no-such-domain"), std::string::npos);
  auto result = channel.execute("query-status", {}, milliseconds(5000));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(channel.connected());
}

TEST(LibvirtQmpChannel, DriverWithoutPassthroughAnswersAnErrorNotACrash) {
  LibvirtQmpOptions options;
  options.uri = "test:///default";
  options.domain = "test";  // the test driver's own running domain
  LibvirtQmpChannel channel(options);
  auto result = channel.execute("query-status", {}, milliseconds(5000));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().subsystem, "libvirt");
  EXPECT_NE(result.error().message.find("query-status"), std::string::npos)
      << result.error().message;
}

TEST(LibvirtQmpChannel, RefusesBadArguments) {
  LibvirtQmpOptions options;
  options.uri = "test:///default";
  options.domain = "test";
  LibvirtQmpChannel channel(options);
  auto result = channel.execute("x", nlohmann::json::array());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  result = channel.execute("x", {{"s", "\xc3"}});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace qiao::testing
