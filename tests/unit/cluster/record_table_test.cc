// RecordTable on MemoryCeph (which passes the same RADOS conformance suite as the real Ceph):
// guarded read-modify-write loses no update between writers, the leader's epoch fences a
// deposed leader, reads page through large tables.
#include "cluster/record_table.h"

#include <gtest/gtest.h>

#include <thread>

#include "cluster/cluster_pool.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

class RecordTableTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
  RecordTable table_a_{*a_, pool_.table("vms")};
  RecordTable table_b_{*b_, pool_.table("vms")};
};

RecordTable::Change increment() {
  return [](const std::optional<std::string>& v) -> Result<std::optional<std::string>> {
    return std::optional<std::string>{std::to_string(v ? std::stoi(*v) + 1 : 1)};
  };
}

TEST_F(RecordTableTest, InsertGetAndRemove) {
  ASSERT_TRUE(table_a_.insert("t1/web", R"({"name":"web"})"));
  auto got = table_b_.get("t1/web");
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, R"({"name":"web"})");
  auto again = table_b_.insert("t1/web", R"({"name":"other"})");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_EQ(**table_a_.get("t1/web"), R"({"name":"web"})");
  ASSERT_TRUE(table_b_.remove("t1/web"));
  ASSERT_TRUE(table_b_.remove("t1/web"));  // idempotent
  EXPECT_FALSE(table_a_.get("t1/web")->has_value());
}

TEST_F(RecordTableTest, AMissingTableReadsEmpty) {
  auto all = table_a_.readAll();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->entries.empty());
  EXPECT_FALSE(table_a_.get("x")->has_value());
}

TEST_F(RecordTableTest, AWriterThatLostTheRaceReadsAgainAndKeepsTheOtherUpdate) {
  ASSERT_TRUE(table_a_.insert("counter", "0"));
  int calls = 0;
  // A reads 0; before A writes, B increments to 1; A's guarded write fails and it re-reads.
  auto done = table_a_.update(
      "counter", [&](const std::optional<std::string>& v) -> Result<std::optional<std::string>> {
        if (++calls == 1) EXPECT_TRUE(table_b_.update("counter", increment()));
        return std::optional<std::string>{std::to_string(std::stoi(*v) + 10)};
      });
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(**table_b_.get("counter"), "11");
}

TEST_F(RecordTableTest, TwoWritersAtOnceLoseNothing) {
  constexpr int kEach = 300;
  auto run = [&](RecordTable& table) {
    for (int i = 0; i < kEach; ++i) ASSERT_TRUE(table.update("counter", increment()));
  };
  std::thread ta(run, std::ref(table_a_));
  std::thread tb(run, std::ref(table_b_));
  ta.join();
  tb.join();
  EXPECT_EQ(**table_a_.get("counter"), std::to_string(2 * kEach));
}

TEST_F(RecordTableTest, AChangeThatFailsWritesNothing) {
  ASSERT_TRUE(table_a_.insert("k", "v"));
  auto done = table_a_.update(
      "k", [](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
        return makeError(ErrorCode::kInvalidArgument, "test", "no");
      });
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(**table_a_.get("k"), "v");
}

TEST_F(RecordTableTest, ANewerEpochFencesTheOlderLeader) {
  ASSERT_TRUE(table_a_.stamp(1));
  ASSERT_TRUE(table_a_.insert("k", "from-1", 1));
  ASSERT_TRUE(table_b_.stamp(2));  // a new leader
  auto refused = table_a_.insert("k2", "from-1-again", 1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("superseded by epoch 2"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(table_b_.get("k2")->has_value());
  auto stale_stamp = table_a_.stamp(1);
  ASSERT_FALSE(stale_stamp);
  EXPECT_EQ(stale_stamp.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(table_b_.insert("k2", "from-2", 2));
  EXPECT_TRUE(table_b_.insert("k3", "from-3", 3));  // a later leader still writes
  EXPECT_FALSE(table_b_.insert("k4", "from-2", 2));
}

TEST_F(RecordTableTest, WritesWithoutAnEpochAreNotFenced) {
  // A host's own writes (its record, its VMs' observed state) are not the leader's.
  ASSERT_TRUE(table_a_.stamp(5));
  EXPECT_TRUE(table_b_.insert("host-b", "{}"));
}

TEST_F(RecordTableTest, ReadAllPagesThroughALargeTable) {
  for (int i = 0; i < 2500; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "vm%05d", i);
    ASSERT_TRUE(table_a_.insert(key, std::to_string(i)));
  }
  auto all = table_b_.readAll();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->entries.size(), 2500u);
  EXPECT_EQ(all->entries.at("vm02499"), "2499");
}

TEST_F(RecordTableTest, CephUnreachableIsUnavailableNotEmpty) {
  ASSERT_TRUE(table_a_.insert("k", "v"));
  ceph_.setReachable("10.0.0.2", false);
  auto got = table_b_.get("k");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kUnavailable);
  auto all = table_b_.readAll();
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, ErrorCode::kUnavailable);
}

TEST_F(RecordTableTest, ChangesAreAnnouncedToWatchers) {
  std::vector<std::string> heard;
  std::mutex m;
  auto watch = b_->watch(table_b_.object(), [&](const WatchEvent& e) {
    std::lock_guard lock(m);
    heard.push_back(e.payload);
  });
  ASSERT_TRUE(watch);
  ASSERT_TRUE(table_a_.insert("t1/web", "{}"));
  ASSERT_TRUE(table_a_.remove("t1/web"));
  std::lock_guard lock(m);
  EXPECT_EQ(heard, (std::vector<std::string>{"t1/web", "t1/web"}));
}

}  // namespace
}  // namespace qiao
