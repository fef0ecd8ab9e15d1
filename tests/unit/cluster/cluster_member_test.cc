// ClusterMember on MemoryCeph with a ManualClock: hosts register and hold their leases, one
// leads; a host that loses power is seen unreachable and its leadership passes on; a restarted
// qiaod takes its host's lease back at once; a removed host cannot come back unenrolled.
#include "cluster/cluster_member.h"

#include <gtest/gtest.h>

#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ClusterMemberTest : public ::testing::Test {
 protected:
  std::unique_ptr<ClusterMember> member(RadosCluster& rados, const std::string& name,
                                        const std::string& cookie) {
    ClusterMemberOptions o;
    o.self.name = name;
    o.self.arch = "x86_64";
    o.self.vcpus = 4;
    o.self.memory_mib = 8192;
    o.self.site = "sh";
    o.self.labels = {{"rack", "r1"}};
    o.self.endpoint = "https://" + name + ":8443";
    o.timing = LeaseTiming::forDuration(seconds(9));
    o.cookie = cookie;
    return std::make_unique<ClusterMember>(rados, o, clock_);
  }
  // Moves time in 100 ms steps, running each member's rounds when they are due.
  void run(std::chrono::milliseconds d, std::vector<ClusterMember*> members) {
    for (auto end = clock_.now() + d; clock_.now() < end;) {
      clock_.advance(milliseconds(100));
      for (auto* m : members) {
        if (clock_.now() >= m->nextStep()) m->step();
      }
    }
  }
  HostStatus host(ClusterMember& m, const std::string& name) {
    auto status = m.membership().get(name);
    EXPECT_TRUE(status) << status.error().message;
    return status.value_or(HostStatus{});
  }

  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> ra_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> rb_ = ceph_.client("10.0.0.2");
};

TEST_F(ClusterMemberTest, HostsRegisterHoldTheirLeasesAndOneLeads) {
  auto a = member(*ra_, "host-a", "a1");
  auto b = member(*rb_, "host-b", "b1");
  a->step();
  b->step();
  EXPECT_TRUE(a->registered() && b->registered());
  EXPECT_TRUE(a->alive() && b->alive());
  EXPECT_EQ(a->leaderEpoch(), 1u);
  EXPECT_FALSE(b->leaderEpoch());
  auto hosts = b->membership().list();
  ASSERT_TRUE(hosts);
  ASSERT_EQ(hosts->size(), 2u);
  const HostStatus& ha = (*hosts)[0];
  EXPECT_EQ(ha.record.name, "host-a");
  EXPECT_EQ(ha.state, HostState::kReady) << toString(ha.state);
  EXPECT_TRUE(ha.lease_held);
  EXPECT_EQ(ha.lease_holder, *ra_->clientAddress());
  ASSERT_TRUE(ha.lease_age_s);
  EXPECT_EQ(*ha.lease_age_s, 0.0);
  EXPECT_EQ(ha.record.labels.at("rack"), "r1");
  EXPECT_EQ(ha.record.joined_at, utcText(clock_.wallNow()));
  run(seconds(30), {a.get(), b.get()});
  EXPECT_EQ(host(*b, "host-a").state, HostState::kReady);
  EXPECT_LT(*host(*b, "host-a").lease_age_s, 3.01);
  EXPECT_EQ(a->leaderEpoch(), 1u);
}

TEST_F(ClusterMemberTest, APowerLossMakesTheHostUnreachableAndMovesTheLeadership) {
  auto a = member(*ra_, "host-a", "a1");
  auto b = member(*rb_, "host-b", "b1");
  a->step();
  b->step();
  ASSERT_EQ(a->leaderEpoch(), 1u);
  const auto killed = clock_.now();  // A stops: no more rounds
  while (!b->leaderEpoch()) {
    run(milliseconds(100), {b.get()});
    ASSERT_LE(clock_.now() - killed, seconds(11)) << "no new leader within duration + 2 s";
  }
  EXPECT_EQ(b->leaderEpoch(), 2u);
  EXPECT_EQ(host(*b, "host-a").state, HostState::kUnreachable);
  EXPECT_FALSE(host(*b, "host-a").lease_held);
  EXPECT_EQ(host(*b, "host-b").state, HostState::kReady);
}

TEST_F(ClusterMemberTest, ARestartedDaemonTakesItsHostLeaseBackAtOnce) {
  auto a = member(*ra_, "host-a", "a1");
  a->step();
  ASSERT_TRUE(a->alive());
  // qiaod is killed and restarts: a new Ceph client, which blocklists the previous one.
  const std::string old_address = *ra_->clientAddress();
  auto ra2 = ceph_.client("10.0.0.1");
  ASSERT_TRUE(ra2->blocklistAdd(old_address, std::chrono::hours(1)));
  auto a2 = member(*ra2, "host-a", "a2");
  clock_.advance(seconds(1));
  a2->step();
  EXPECT_TRUE(a2->alive());
  EXPECT_EQ(host(*a2, "host-a").lease_holder, *ra2->clientAddress());
}

TEST_F(ClusterMemberTest, ALiveHostOfTheSameNameKeepsItsLease) {
  auto a = member(*ra_, "host-a", "a1");
  a->step();
  auto impostor = member(*rb_, "host-a", "x");
  impostor->step();
  EXPECT_FALSE(impostor->alive());
  EXPECT_EQ(host(*a, "host-a").lease_holder, *ra_->clientAddress());
}

TEST_F(ClusterMemberTest, AHostCutOffFromCephLosesItsLeaseAndLeadership) {
  auto a = member(*ra_, "host-a", "a1");
  auto b = member(*rb_, "host-b", "b1");
  a->step();
  b->step();
  ceph_.setReachable("10.0.0.1", false);
  run(seconds(9), {a.get(), b.get()});
  EXPECT_FALSE(a->alive());
  EXPECT_FALSE(a->leaderEpoch());
  // Without its lease it only retries the lease, once a second (never in a tight loop).
  a->step();
  EXPECT_GT(a->nextStep(), clock_.now());
  EXPECT_LE(a->nextStep(), clock_.now() + milliseconds(1000));
  run(seconds(2), {a.get(), b.get()});
  EXPECT_EQ(b->leaderEpoch(), 2u);
  EXPECT_EQ(host(*b, "host-a").state, HostState::kUnreachable);
  ceph_.setReachable("10.0.0.1", true);  // healed: A holds its lease again, B keeps leading
  run(seconds(2), {a.get(), b.get()});
  EXPECT_TRUE(a->alive());
  EXPECT_FALSE(a->leaderEpoch());
  EXPECT_EQ(host(*b, "host-a").state, HostState::kReady);
}

TEST_F(ClusterMemberTest, StoredStatesSurviveReregistrationAndARemovedHostStaysOut) {
  auto a = member(*ra_, "host-a", "a1");
  a->step();
  ASSERT_TRUE(a->membership().setState("host-a", HostState::kMaintenance, a->leaderEpoch()));
  auto again = member(*rb_, "host-a", "a2");
  ASSERT_TRUE(again->membership().registerSelf(again->self()));
  EXPECT_EQ(host(*a, "host-a").state, HostState::kMaintenance);
  EXPECT_FALSE(a->membership().setState("host-a", HostState::kUnreachable, std::nullopt));
  ASSERT_TRUE(a->membership().setState("host-a", HostState::kRemoved, a->leaderEpoch()));
  auto refused = again->membership().registerSelf(again->self());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("join token"), std::string::npos);
}

TEST_F(ClusterMemberTest, AHostPublishesItsTunnelAddressAndARestartRefreshesIt) {
  ClusterMemberOptions o;
  o.self.name = "host-a";
  o.self.arch = "x86_64";
  o.self.tunnel_ip = "192.0.2.11";
  o.timing = LeaseTiming::forDuration(seconds(9));
  o.cookie = "a1";
  ClusterMember a(*ra_, o, clock_);
  a.step();
  ASSERT_TRUE(a.registered());
  EXPECT_EQ(host(a, "host-a").record.tunnel_ip, "192.0.2.11");
  o.self.tunnel_ip = "192.0.2.12";  // the host's underlay address changed, qiaod restarted
  ASSERT_TRUE(a.membership().registerSelf(o.self));
  EXPECT_EQ(host(a, "host-a").record.tunnel_ip, "192.0.2.12");
}

TEST_F(ClusterMemberTest, ACorruptHostRecordIsAnErrorNotAHost) {
  RecordTable hosts(*ra_, ClusterPool{}.table("hosts"));
  ASSERT_TRUE(hosts.insert("bad", R"({"name":"bad"})"));
  auto a = member(*ra_, "host-a", "a1");
  auto listed = a->membership().list();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().code, ErrorCode::kInternal);
}

TEST(HostJson, RoundTrips) {
  HostRecord h{"h1",
               HostState::kMaintenance,
               "aarch64",
               64,
               262144,
               "bj",
               {{"rack", "r9"}, {"gpu", "none"}},
               "https://10.1.2.3:8443",
               "2026-12-07T00:00:00Z"};
  auto back = hostFromJson(hostToJson(h));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->name, "h1");
  EXPECT_EQ(back->state, HostState::kMaintenance);
  EXPECT_EQ(back->memory_mib, 262144);
  EXPECT_EQ(back->labels, h.labels);
  EXPECT_FALSE(hostFromJson("[]"));
  EXPECT_FALSE(hostFromJson(R"({"name":"h","state":"unreachable","arch":"x","site":"",
      "endpoint":"","joined_at":"","vcpus":1,"memory_mib":1,"labels":{}})"));
}

}  // namespace
}  // namespace qiao
