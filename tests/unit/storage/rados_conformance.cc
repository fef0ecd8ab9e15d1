#include "tests/unit/storage/rados_conformance.h"

#include <unistd.h>

#include <algorithm>

namespace qiao::testing {

using namespace std::chrono_literals;

void RadosConformance::SetUp() {
  world_ = GetParam()();
  ASSERT_NE(world_, nullptr);
  ns_ = "conformance-" + std::to_string(::getpid()) + "-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(ns_.begin(), ns_.end(), '/', '-');
}

RadosObject RadosConformance::object(const std::string& name) const {
  return {world_->pool(), ns_, name};
}

namespace {

bool blocklisted(RadosCluster& c, const std::string& address) {
  auto list = c.blocklist();
  EXPECT_TRUE(list) << list.error().describe();
  if (!list) return false;
  return std::any_of(list->begin(), list->end(),
                     [&](const BlocklistEntry& e) { return e.address == address; });
}

}  // namespace

TEST_P(RadosConformance, ALockIsExclusiveRenewableAndNamesItsHolder) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 0s));
  auto a_address = a->clientAddress();
  ASSERT_TRUE(a_address);

  auto refused = b->lock(lease, "leader", "b-1", "host b", 0s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find(*a_address), std::string::npos) << refused.error().message;

  auto holders = b->lockers(lease, "leader");
  ASSERT_TRUE(holders) << holders.error().describe();
  ASSERT_EQ(holders->size(), 1u);
  EXPECT_EQ(holders->front().cookie, "a-1");
  EXPECT_EQ(holders->front().address, *a_address);
  EXPECT_TRUE(holders->front().client.starts_with("client."));

  // The holder renews with its cookie; another cookie of the same client is someone else.
  EXPECT_TRUE(a->lock(lease, "leader", "a-1", "host a", 0s));
  EXPECT_EQ(a->lock(lease, "leader", "a-2", "host a", 0s).error().code, ErrorCode::kConflict);
  // Only the holder unlocks; then the lock is free.
  EXPECT_EQ(b->unlock(lease, "leader", "b-1").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(a->unlock(lease, "leader", "a-1"));
  EXPECT_TRUE(b->lockers(lease, "leader")->empty());
  EXPECT_TRUE(b->lock(lease, "leader", "b-1", "host b", 0s));
  EXPECT_TRUE(b->unlock(lease, "leader", "b-1"));
  // Nobody holds a lock on an object never made.
  auto none = a->lockers(object("never-made"), "leader");
  ASSERT_TRUE(none) << none.error().describe();
  EXPECT_TRUE(none->empty());
}

TEST_P(RadosConformance, ALeaseNotRenewedExpires) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 2s));
  EXPECT_EQ(b->lock(lease, "leader", "b-1", "host b", 2s).error().code, ErrorCode::kConflict);
  // Renewed within its time, it holds past the first end.
  world_->pass(1s);
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 2s));
  world_->pass(1s);
  EXPECT_EQ(b->lock(lease, "leader", "b-1", "host b", 2s).error().code, ErrorCode::kConflict);
  // Not renewed, it is gone, and another takes it.
  world_->pass(3s);
  EXPECT_TRUE(b->lockers(lease, "leader")->empty());
  EXPECT_TRUE(b->lock(lease, "leader", "b-1", "host b", 2s));
  EXPECT_EQ(a->unlock(lease, "leader", "a-1").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b->unlock(lease, "leader", "b-1"));
}

TEST_P(RadosConformance, AFencedHolderIsCutOffAndItsLockBroken) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "vm.web1", "a-1", "host a runs web1", 0s));
  auto a_address = a->clientAddress();
  ASSERT_TRUE(a_address);

  // b fences a, then breaks a's lock and takes it. Once the fence has returned, b's calls
  // carry the map that holds it, and an OSD that handled one of them refuses a.
  ASSERT_TRUE(b->blocklistAdd(*a_address, 600s));
  EXPECT_TRUE(blocklisted(*b, *a_address));
  auto holders = b->lockers(lease, "vm.web1");
  ASSERT_TRUE(holders);
  ASSERT_EQ(holders->size(), 1u);
  ASSERT_TRUE(b->breakLock(lease, "vm.web1", holders->front()));
  EXPECT_TRUE(b->lock(lease, "vm.web1", "b-1", "host b runs web1", 0s));
  auto cut = a->lock(lease, "vm.web1", "a-1", "host a runs web1", 0s);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kUnavailable) << cut.error().describe();
  // Breaking a lock that is no longer there says so.
  EXPECT_EQ(b->breakLock(lease, "vm.web1", holders->front()).error().code, ErrorCode::kNotFound);

  // The fence is lifted once a is known to be gone.
  ASSERT_TRUE(b->blocklistRemove(*a_address));
  EXPECT_FALSE(blocklisted(*b, *a_address));
  EXPECT_EQ(b->blocklistRemove(*a_address).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b->unlock(lease, "vm.web1", "b-1"));
}

}  // namespace qiao::testing
