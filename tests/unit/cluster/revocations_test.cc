// Revocations on MemoryCeph: records keyed by serial (the first record of a serial stays), the
// CRL published with a guard on the one it replaces (two signers never overwrite each other's
// newer list unseen), node certificate records.
#include "cluster/revocations.h"

#include <gtest/gtest.h>

#include <atomic>

#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

class RevocationsTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  Revocations a_revocations_{*a_, pool_};
  Revocations b_revocations_{*b_, pool_};
};

TEST_F(RevocationsTest, RecordsAreKeyedBySerial) {
  ASSERT_TRUE(a_revocations_.add({"0A1B", "qiao://c1/node/h2", "host removed", 100}));
  ASSERT_TRUE(b_revocations_.add({"0A1B", "qiao://c1/node/h2", "again", 200}));
  ASSERT_TRUE(b_revocations_.add({"0C", "qiao://c1/user/bob", "left", 300}));
  auto all = a_revocations_.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].serial, "0A1B");
  EXPECT_EQ((*all)[0].reason, "host removed");
  EXPECT_EQ((*all)[0].at_unix, 100);
  EXPECT_EQ((*all)[1].identity, "qiao://c1/user/bob");
}

TEST_F(RevocationsTest, TheCrlIsReplacedOnlyOverTheOneReadBefore) {
  auto none = a_revocations_.crl();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->pem);
  ASSERT_TRUE(a_revocations_.publishCrl("CRL-1", std::nullopt));
  // b signed from what it read before a published: refused.
  auto stale = b_revocations_.publishCrl("CRL-b", std::nullopt);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  auto seen = b_revocations_.crl();
  ASSERT_TRUE(seen && seen->pem);
  EXPECT_EQ(*seen->pem, "CRL-1");
  ASSERT_TRUE(b_revocations_.publishCrl("CRL-2", seen->pem));
  EXPECT_EQ(*a_revocations_.crl()->pem, "CRL-2");
}

TEST_F(RevocationsTest, AWatcherHearsANewCrl) {
  std::atomic<int> heard{0};
  auto watch = b_->watch(b_revocations_.crlObject(), [&](const WatchEvent& e) {
    if (e.kind == WatchEvent::Kind::kNotify) ++heard;
  });
  ASSERT_TRUE(watch);
  ASSERT_TRUE(a_revocations_.publishCrl("CRL-1", std::nullopt));
  EXPECT_EQ(heard.load(), 1);
}

TEST_F(RevocationsTest, NodeCertificates) {
  auto none = a_revocations_.nodeCert("h2");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  ASSERT_TRUE(a_revocations_.setNodeCert({"h2", "qiao://c1/node/h2", "0A1B"}));
  ASSERT_TRUE(a_revocations_.setNodeCert({"h2", "qiao://c1/node/h2", "0A1C"}));
  auto got = b_revocations_.nodeCert("h2");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->serial, "0A1C");
  ASSERT_TRUE(b_revocations_.removeNodeCert("h2"));
  EXPECT_FALSE(*a_revocations_.nodeCert("h2"));
}

}  // namespace
}  // namespace qiao
