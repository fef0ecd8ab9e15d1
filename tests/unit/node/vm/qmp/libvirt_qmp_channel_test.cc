// LibvirtQmpChannel's own paths on libvirt's test:///default driver, which has domains but no
// QEMU monitor: a missing domain, libvirt's refusal mapped at the edge, and bad arguments. The
// passthrough itself is tested against the real libvirtd in tests/integration/node/vm/qmp/qmp_it.cc.
#include "node/vm/qmp/libvirt_qmp_channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

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

// Channels made on one LibvirtQmpConnection: one libvirt connection for all, a missing domain
// answered for its channel alone, and after stop() every channel answers kUnavailable (a
// channel may outlive its connection).
TEST(LibvirtQmpConnection, ChannelsShareOneConnection) {
  LibvirtQmpConnectionOptions options;
  options.uri = "test:///default";
  auto connection = std::make_unique<LibvirtQmpConnection>(options);
  EXPECT_FALSE(connection->connected());
  std::vector<std::shared_ptr<LibvirtQmpChannel>> channels;
  for (int i = 0; i < 5; ++i) channels.push_back(connection->channel("test"));
  auto missing = connection->channel("no-such-domain");
  for (auto& channel : channels) {
    ASSERT_TRUE(channel->connect(milliseconds(5000)).has_value());
    EXPECT_TRUE(channel->connected());
  }
  auto not_found = missing->connect(milliseconds(5000));
  ASSERT_FALSE(not_found.has_value());
  EXPECT_EQ(not_found.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(missing->connected());
  EXPECT_TRUE(channels.front()->connected());
  EXPECT_TRUE(connection->connected());
  EXPECT_EQ(connection->connectionsOpened(), 1u);
  channels.pop_back();  // a channel going away leaves the others be
  EXPECT_TRUE(channels.front()->connected());

  connection->stop();
  EXPECT_FALSE(connection->connected());
  auto closed = channels.front()->execute("query-status", {}, milliseconds(5000));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code, ErrorCode::kUnavailable);
  connection.reset();
  EXPECT_FALSE(channels.front()->connected());
  closed = channels.front()->execute("query-status", {}, milliseconds(5000));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code, ErrorCode::kUnavailable);
}

// Calls of many threads on many channels of a connection with one worker all get their own
// answer (the test driver's refusal), none lost between the channels' turns.
TEST(LibvirtQmpConnection, EveryCallOfEveryChannelIsAnswered) {
  LibvirtQmpConnectionOptions options;
  options.uri = "test:///default";
  options.call_threads = 1;
  LibvirtQmpConnection connection(options);
  std::vector<std::shared_ptr<LibvirtQmpChannel>> channels;
  for (int i = 0; i < 4; ++i) channels.push_back(connection.channel(i % 2 ? "test" : "nothing"));
  std::atomic<int> answered{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto result =
            channels[t % channels.size()]->execute("query-status", {}, milliseconds(20000));
        if (!result && result.error().code != ErrorCode::kTimeout) ++answered;
      }
    });
  }
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(answered, 80);
}

}  // namespace
}  // namespace qiao::testing
