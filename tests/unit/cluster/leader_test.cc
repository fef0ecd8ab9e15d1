// LeaderElection on MemoryCeph with a ManualClock: one leader, a new epoch per term stamped on
// every table, a deposed leader fenced by the store, and failover within the lease duration
// plus the retry interval.
#include "cluster/leader.h"

#include <gtest/gtest.h>

#include "cluster/record_table.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LeaderTest : public ::testing::Test {
 protected:
  std::unique_ptr<LeaderElection> member(RadosCluster& rados, const std::string& name) {
    return std::make_unique<LeaderElection>(rados, pool_, name, "cookie-" + name, timing_, clock_);
  }
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> ra_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> rb_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  LeaseTiming timing_ = LeaseTiming::forDuration(seconds(9));
};

TEST_F(LeaderTest, TheFirstMemberLeadsWithEpochOneStampedOnEveryTable) {
  auto a = member(*ra_, "a");
  auto b = member(*rb_, "b");
  a->step();
  b->step();
  ASSERT_EQ(a->epoch(), 1u);
  EXPECT_FALSE(b->epoch());
  for (std::string_view kind : kRecordKinds) {
    EXPECT_EQ(*rb_->epochOf(pool_.table(kind), kEpochXattr), 1u) << kind;
  }
  auto info = b->current();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->member, "a");
  EXPECT_EQ(info->epoch, 1u);
  EXPECT_EQ(info->since, utcText(clock_.wallNow()));
}

TEST_F(LeaderTest, ALostLeaderIsReplacedWithinTheLeaseDurationPlusTheRetry) {
  auto a = member(*ra_, "a");
  auto b = member(*rb_, "b");
  a->step();
  ASSERT_EQ(a->epoch(), 1u);
  const auto killed = clock_.now();  // A's host loses power right after renewing
  while (!b->epoch()) {
    clock_.advance(milliseconds(100));
    if (clock_.now() >= b->nextStep()) b->step();
    ASSERT_LT(clock_.now() - killed, seconds(11)) << "no new leader within duration + 2 s";
  }
  EXPECT_EQ(b->epoch(), 2u);
  EXPECT_LE(clock_.now() - killed, timing_.duration + timing_.retry_every);
}

TEST_F(LeaderTest, ADeposedLeaderCannotWrite) {
  auto a = member(*ra_, "a");
  auto b = member(*rb_, "b");
  a->step();
  const uint64_t old_epoch = *a->epoch();
  RecordTable vms_a(*ra_, pool_.table("vms"));
  ASSERT_TRUE(vms_a.insert("t/web", "placed-by-a", old_epoch));
  // A pauses (a stopped process, a long GC) past its lease; B takes over.
  clock_.advance(seconds(10));
  b->step();
  ASSERT_EQ(b->epoch(), 2u);
  // A wakes up and, before noticing, writes with its old epoch: refused by the store.
  auto refused = vms_a.update(
      "t/web",
      [](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
        return std::optional<std::string>{"moved-by-a"};
      },
      old_epoch);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  RecordTable vms_b(*rb_, pool_.table("vms"));
  EXPECT_EQ(**vms_b.get("t/web"), "placed-by-a");
  EXPECT_FALSE(a->epoch());  // its own deadline has passed too
  a->step();                 // and its next round sees B's lease
  EXPECT_FALSE(a->epoch());
  EXPECT_EQ(b->current()->member, "b");
}

TEST_F(LeaderTest, ALeaderCutOffFromCephStepsDownAtItsDeadline) {
  auto a = member(*ra_, "a");
  a->step();
  ASSERT_TRUE(a->epoch());
  ceph_.setReachable("10.0.0.1", false);
  clock_.advance(seconds(8));
  a->step();
  EXPECT_TRUE(a->epoch());  // within its deadline (9 s - 0.25 s)
  clock_.advance(milliseconds(800));
  EXPECT_FALSE(a->epoch());
}

TEST_F(LeaderTest, ResigningHandsOverAtTheNextAttemptWithANewEpoch) {
  auto a = member(*ra_, "a");
  auto b = member(*rb_, "b");
  a->step();
  a->resign();
  EXPECT_FALSE(a->epoch());
  b->step();
  EXPECT_EQ(b->epoch(), 2u);
  a->step();
  EXPECT_FALSE(a->epoch());
}

TEST_F(LeaderTest, TheSameMemberReelectedGetsANewEpoch) {
  auto a = member(*ra_, "a");
  a->step();
  EXPECT_EQ(a->epoch(), 1u);
  clock_.advance(seconds(3));
  a->step();
  EXPECT_EQ(a->epoch(), 1u);  // a renewal keeps the term
  a->resign();
  a->step();
  EXPECT_EQ(a->epoch(), 2u);
}

}  // namespace
}  // namespace qiao
