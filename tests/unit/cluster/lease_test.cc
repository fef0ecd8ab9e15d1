// Lease on MemoryCeph with a ManualClock: taking, renewing, losing to another holder, keeping
// it through a short Ceph outage, and never two holders at once whatever the timing.
#include "cluster/lease.h"

#include <gtest/gtest.h>

#include "cluster/cluster_pool.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LeaseTest : public ::testing::Test {
 protected:
  Lease make(RadosCluster& rados, const std::string& cookie) {
    return Lease(rados, pool_.hostLease("h1"), "lease", cookie, "test", timing_, clock_);
  }
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  LeaseTiming timing_ = LeaseTiming::forDuration(seconds(9));
};

TEST_F(LeaseTest, TimingFollowsTheDurationAndIsChecked) {
  EXPECT_EQ(timing_.renew_every, milliseconds(3000));
  EXPECT_EQ(timing_.retry_every, milliseconds(1000));
  EXPECT_TRUE(timing_.validate());
  EXPECT_FALSE(LeaseTiming::forDuration(seconds(1)).validate());
  EXPECT_FALSE(LeaseTiming::forDuration(seconds(301)).validate());
  LeaseTiming lazy = timing_;
  lazy.renew_every = milliseconds(5000);
  EXPECT_FALSE(lazy.validate());
}

TEST_F(LeaseTest, OneHolderRenewsAndTheOtherWaits) {
  Lease a = make(*a_, "a");
  Lease b = make(*b_, "b");
  ASSERT_TRUE(a.step());
  EXPECT_TRUE(a.held());
  EXPECT_FALSE(b.step());
  ASSERT_TRUE(b.lastError());
  EXPECT_EQ(b.lastError()->code, ErrorCode::kConflict);
  EXPECT_EQ(a.nextStep(), clock_.now() + milliseconds(3000));
  EXPECT_EQ(b.nextStep(), clock_.now() + milliseconds(1000));
  for (int i = 0; i < 10; ++i) {  // 30 s of renewals: B never gets it
    clock_.advance(milliseconds(3000));
    ASSERT_TRUE(a.step());
    EXPECT_FALSE(b.step());
  }
  EXPECT_EQ(a.deadline(), clock_.now() + seconds(9) - milliseconds(250));
}

TEST_F(LeaseTest, AnUnrenewedLeaseLapsesAndTheOldHolderLearnsItLostIt) {
  Lease a = make(*a_, "a");
  Lease b = make(*b_, "b");
  ASSERT_TRUE(a.step());
  clock_.advance(seconds(9) - milliseconds(1));
  EXPECT_FALSE(a.held());  // past its own deadline already
  EXPECT_FALSE(b.step());  // the OSD still holds it for A
  clock_.advance(milliseconds(1));
  EXPECT_TRUE(b.step());
  EXPECT_FALSE(a.step());  // B holds it now
  EXPECT_FALSE(a.held());
}

TEST_F(LeaseTest, AShortOutageKeepsTheLeaseUntilItsDeadline) {
  Lease a = make(*a_, "a");
  ASSERT_TRUE(a.step());
  const auto deadline = a.deadline();
  ceph_.setReachable("10.0.0.1", false);
  clock_.advance(seconds(3));
  EXPECT_TRUE(a.step());  // not renewed, but still within the deadline
  EXPECT_EQ(a.lastError()->code, ErrorCode::kUnavailable);
  EXPECT_EQ(a.nextStep(), clock_.now() + milliseconds(1000));  // retried sooner
  ceph_.setReachable("10.0.0.1", true);
  clock_.advance(milliseconds(1000));
  ASSERT_TRUE(a.step());
  EXPECT_GT(a.deadline(), deadline);
}

TEST_F(LeaseTest, ACutOffHolderStopsHoldingBeforeAnotherCanTakeIt) {
  // Time moves in 100 ms steps; both try at their pace; at no instant do both hold it.
  Lease a = make(*a_, "a");
  Lease b = make(*b_, "b");
  ASSERT_TRUE(a.step());
  ceph_.setReachable("10.0.0.1", false);
  bool b_took = false;
  for (int i = 0; i < 200 && !b_took; ++i) {
    clock_.advance(milliseconds(100));
    if (clock_.now() >= a.nextStep()) a.step();
    if (clock_.now() >= b.nextStep()) b_took = b.step();
    ASSERT_FALSE(a.held() && b.held()) << "two holders at step " << i;
  }
  ASSERT_TRUE(b_took);
  EXPECT_FALSE(a.held());
}

TEST_F(LeaseTest, ReleaseLetsTheNextTakeItAtOnce) {
  Lease a = make(*a_, "a");
  Lease b = make(*b_, "b");
  ASSERT_TRUE(a.step());
  a.release();
  EXPECT_FALSE(a.held());
  EXPECT_TRUE(b.step());
  a.release();  // idempotent
}

}  // namespace
}  // namespace qiao
