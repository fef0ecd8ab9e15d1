// RefusalLog with the time given by the test: the first refusal of an interval in full, the
// rest counted and summarised once the interval ends, addresses beyond the cap in one bucket.
#include "node/api/refusal_log.h"

#include <gtest/gtest.h>

namespace qiao {
namespace {

using std::chrono::seconds;

TEST(RefusalLog, TheFirstOfAnIntervalIsWrittenTheRestCountedAndSummarisedAtItsEnd) {
  RefusalLog log(seconds(60), 16);
  const auto t0 = RefusalLog::Clock::time_point{} + seconds(1000);
  EXPECT_TRUE(log.record("10.0.0.1", 401, t0));
  for (int i = 0; i < 99; ++i) EXPECT_FALSE(log.record("10.0.0.1", 413, t0 + seconds(i % 50)));
  EXPECT_TRUE(log.due(t0 + seconds(59), false).empty()) << "the interval has not ended";
  auto due = log.due(t0 + seconds(61), false);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].source, "10.0.0.1");
  EXPECT_EQ(due[0].count, 99);
  EXPECT_EQ(due[0].first_status, 401);
  EXPECT_EQ(due[0].seconds, 61);
  // The next interval starts afresh with an entry in full.
  EXPECT_TRUE(log.record("10.0.0.1", 401, t0 + seconds(62)));
}

TEST(RefusalLog, AnAddressWithOneRefusalNeedsNoSummaryAndAllFlushesAtShutdown) {
  RefusalLog log(seconds(60), 16);
  const auto t0 = RefusalLog::Clock::time_point{} + seconds(5);
  EXPECT_TRUE(log.record("a", 401, t0));
  EXPECT_TRUE(log.record("b", 401, t0));
  EXPECT_FALSE(log.record("b", 401, t0));
  auto due = log.due(t0 + seconds(1), /*all=*/true);
  ASSERT_EQ(due.size(), 1u) << "a had nothing more to say";
  EXPECT_EQ(due[0].source, "b");
  EXPECT_TRUE(log.due(t0 + seconds(100), true).empty());
}

TEST(RefusalLog, AddressesBeyondTheCapShareOneBucket) {
  RefusalLog log(seconds(60), 3);
  const auto t0 = RefusalLog::Clock::time_point{} + seconds(5);
  int full = 0;
  for (int i = 0; i < 1000; ++i) full += log.record("10.0." + std::to_string(i), 401, t0);
  EXPECT_EQ(full, 4) << "three addresses and the shared bucket";
  auto due = log.due(t0 + seconds(60), false);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].source, RefusalLog::kOtherSources);
  EXPECT_EQ(due[0].count, 996);
}

TEST(RefusalLog, SourceAddressLeavesThePortOut) {
  EXPECT_EQ(sourceAddress("127.0.0.1:53422"), "127.0.0.1");
  EXPECT_EQ(sourceAddress("[::1]:8443"), "::1");
  EXPECT_EQ(sourceAddress("[fd00::7]:1"), "fd00::7");
  EXPECT_EQ(sourceAddress(""), "");
}

}  // namespace
}  // namespace qiao
