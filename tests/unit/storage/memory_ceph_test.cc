// The RADOS conformance suite on MemoryCeph (tests/doubles), with a manual clock; and what only
// the double does: Ceph unreachable.
#include "tests/doubles/memory_ceph.h"

#include <atomic>
#include <thread>

#include "tests/unit/storage/rados_conformance.h"

namespace qiao::testing {
namespace {

using namespace std::chrono_literals;

class MemoryWorld final : public RadosWorld {
 public:
  std::unique_ptr<RadosCluster> client() override { return ceph_.client(); }
  std::string pool() override { return "qiao-cluster"; }
  void pass(std::chrono::seconds d) override { clock_.advance(d); }

 private:
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
};

INSTANTIATE_TEST_SUITE_P(Memory, RadosConformance, ::testing::Values(RadosWorldFactory([] {
                           return std::unique_ptr<RadosWorld>(new MemoryWorld);
                         })));

TEST(MemoryCeph, UnreachableCephAnswersUnavailable) {
  ManualClock clock;
  MemoryCeph ceph(clock);
  auto a = ceph.client();
  ceph.setReachable(false);
  EXPECT_EQ(a->ping().error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(a->lock({"qiao", "", "x"}, "l", "c", "", 0s).error().code, ErrorCode::kUnavailable);
  ceph.setReachable(true);
  EXPECT_TRUE(a->ping());
}

TEST(ManualClock, SleepersWakeWhenTimeIsMoved) {
  ManualClock clock;
  const auto start = clock.now();
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    clock.sleepUntil(start + 10s);
    woke = true;
  });
  clock.advance(5s);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(woke);
  clock.advance(5s);
  sleeper.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(clock.now() - start, 10s);
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::seconds>(clock.wallNow().time_since_epoch()).count() %
          86400,
      10);
}

}  // namespace
}  // namespace qiao::testing
