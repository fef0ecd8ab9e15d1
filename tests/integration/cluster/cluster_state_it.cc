// The cluster's state on the real Ceph of the test stack (pool qiao-cluster, a RADOS namespace
// per run): two writers of one record lose nothing, a deposed leader's write is refused by the
// store, a new leader takes over within the lease plus its retry, and a host whose lease lapses
// is seen unreachable. Each "member" is its own librados client, as each qiaod is.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cluster/cluster_member.h"
#include "cluster/leader.h"
#include "cluster/record_table.h"
#include "tests/integration/storage/stack_ceph.h"

namespace qiao {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

class ClusterStateIt : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_.ns = "it-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(a_->ping()) << "the stack's Ceph must be up (scripts/stack up)";
    ASSERT_TRUE(b_->ping());
  }
  void TearDown() override {
    auto names = a_->listObjects(pool_.pool, pool_.ns);
    if (names) {
      for (const auto& n : *names) (void)a_->removeObject(pool_.object(n));
    }
  }
  ClusterPool pool_;
  std::unique_ptr<LibradosCluster> a_ = testing::stackCephClient();
  std::unique_ptr<LibradosCluster> b_ = testing::stackCephClient();
  LeaseTiming timing_ = LeaseTiming::forDuration(seconds(3));
};

TEST_F(ClusterStateIt, TwoWritersAtOnceLoseNothing) {
  RecordTable ta(*a_, pool_.table("vms"));
  RecordTable tb(*b_, pool_.table("vms"));
  constexpr int kEach = 60;
  auto run = [](RecordTable& t) {
    for (int i = 0; i < kEach; ++i) {
      auto done = t.update(
          "counter", [](const std::optional<std::string>& v) -> Result<std::optional<std::string>> {
            return std::optional<std::string>{std::to_string(v ? std::stoi(*v) + 1 : 1)};
          });
      ASSERT_TRUE(done) << done.error().message;
    }
  };
  std::thread x(run, std::ref(ta));
  std::thread y(run, std::ref(tb));
  x.join();
  y.join();
  EXPECT_EQ(**ta.get("counter"), std::to_string(2 * kEach));
}

TEST_F(ClusterStateIt, ADeposedLeaderIsRefusedAndANewOneTakesOverWithinTheBound) {
  LeaderElection la(*a_, pool_, "host-a", "a", timing_, systemClock());
  LeaderElection lb(*b_, pool_, "host-b", "b", timing_, systemClock());
  la.step();
  ASSERT_TRUE(la.epoch());
  const uint64_t old_epoch = *la.epoch();
  RecordTable vms_a(*a_, pool_.table("vms"));
  ASSERT_TRUE(vms_a.insert("t/web", "placed-by-a", old_epoch));
  // A stops renewing (a paused or dead process); B tries at its pace.
  const auto lost = Steady::now();
  while (!lb.epoch()) {
    std::this_thread::sleep_until(lb.nextStep());
    lb.step();
    ASSERT_LT(Steady::now() - lost, timing_.duration + seconds(2)) << "no leader within bound";
  }
  const double took = std::chrono::duration<double>(Steady::now() - lost).count();
  std::printf("leader replaced after %.2f s (lease %lld s)\n", took,
              static_cast<long long>(timing_.duration.count()));
  EXPECT_EQ(*lb.epoch(), old_epoch + 1);
  // A, back, writes before it notices: the store refuses its epoch.
  auto refused = vms_a.update(
      "t/web",
      [](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
        return std::optional<std::string>{"moved-by-a"};
      },
      old_epoch);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("superseded"), std::string::npos)
      << refused.error().message;
  RecordTable vms_b(*b_, pool_.table("vms"));
  EXPECT_EQ(**vms_b.get("t/web"), "placed-by-a");
  la.step();
  EXPECT_FALSE(la.epoch());
  auto info = la.current();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->member, "host-b");
  lb.resign();
}

TEST_F(ClusterStateIt, HostsHoldLeasesAndALapsedOneIsUnreachable) {
  auto options = [&](const std::string& name, const std::string& cookie) {
    ClusterMemberOptions o;
    o.pool = pool_;
    o.self = {name, HostState::kJoining, "x86_64", 2, 4096, "sim", {}, "https://127.0.0.1:1", ""};
    o.timing = timing_;
    o.cookie = cookie;
    return o;
  };
  ClusterMember ma(*a_, options("host-a", "a"), systemClock());
  ClusterMember mb(*b_, options("host-b", "b"), systemClock());
  ma.step();
  mb.step();
  ASSERT_TRUE(ma.alive() && mb.alive());
  auto hosts = mb.membership().list();
  ASSERT_TRUE(hosts) << hosts.error().message;
  ASSERT_EQ(hosts->size(), 2u);
  for (const auto& h : *hosts) {
    EXPECT_EQ(h.state, HostState::kReady) << h.record.name;
    EXPECT_TRUE(h.lease_held);
  }
  EXPECT_EQ(hosts->at(0).lease_holder, *a_->clientAddress());
  // A stops; its lease lapses on the OSD's clock.
  std::this_thread::sleep_for(timing_.duration + milliseconds(500));
  auto a_seen = mb.membership().get("host-a");
  ASSERT_TRUE(a_seen);
  EXPECT_EQ(a_seen->state, HostState::kUnreachable);
  EXPECT_FALSE(a_seen->lease_held);
  ASSERT_TRUE(a_seen->lease_age_s);
  EXPECT_GE(*a_seen->lease_age_s, 3.0);
  mb.stop();
}

}  // namespace
}  // namespace qiao
