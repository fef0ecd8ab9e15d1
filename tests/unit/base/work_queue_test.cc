#include "base/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace qiao {
namespace {

TEST(WorkQueue, RunsEveryJobAndDrains) {
  WorkQueue q("test", 3);
  std::atomic<int> n{0};
  for (int i = 0; i < 100; ++i) q.post([&] { ++n; });
  q.drain();
  EXPECT_EQ(n.load(), 100);
  EXPECT_EQ(q.pending(), 0u);
}

TEST(WorkQueue, SingleThreadKeepsOrder) {
  WorkQueue q("order", 1);
  std::vector<int> seen;
  for (int i = 0; i < 50; ++i) q.post([&, i] { seen.push_back(i); });
  q.drain();
  ASSERT_EQ(seen.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[i], i);
}

TEST(WorkQueue, StopFinishesRunningJobDropsQueuedRefusesNew) {
  WorkQueue q("stop", 1);
  std::atomic<int> ran{0};
  q.post([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ++ran;
  });
  for (int i = 0; i < 10; ++i) q.post([&] { ++ran; });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.stop();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_FALSE(q.post([&] { ++ran; }));
}

}  // namespace
}  // namespace qiao
