// The block-copy driver (node/volumes/block_copy.h) against the scripted fake QMP server: the
// commands it sends (nodes, then blockdev-backup with sync=full; the source read-only), the
// progress it reports, a cancel, a failed job, a job that vanished, a job found running after
// a restart (followed, not begun again), and the cleanup.
#include "node/volumes/block_copy.h"

#include <gtest/gtest.h>

#include <vector>

#include "node/vm/qmp/qmp_socket.h"
#include "tests/unit/node/vm/qmp/fake_qmp_server.h"

namespace qiao {
namespace {

using nlohmann::json;
using testing::FakeQmpServer;

BlockCopyPlan plan() {
  BlockCopyPlan p;
  p.job_id = "qiao-copy-1";
  p.source_node = "qcs-1";
  DiskSource src;
  src.type = "rbd";
  src.pool = "qiao";
  src.ns = "ta";
  src.image = "vol-a\"b";
  src.user = "qiao";
  p.add_source = BlockNode{"qcs-1", src, true};
  DiskSource dst = src;
  dst.image = "vol-copy";
  p.target = BlockNode{"qct-1", dst, false};
  p.speed_bytes_per_sec = 1 << 20;
  return p;
}

json job(const std::string& status, int64_t done, const std::string& error = {}) {
  json j = {{"id", "qiao-copy-1"},
            {"type", "backup"},
            {"status", status},
            {"current-progress", done},
            {"total-progress", 100}};
  if (!error.empty()) j["error"] = error;
  return json::array({j});
}

class BlockCopyTest : public ::testing::Test {
 protected:
  std::shared_ptr<QmpSocketChannel> channel() {
    server_.start();
    QmpSocketOptions options;
    options.path = server_.path();
    return std::make_shared<QmpSocketChannel>(runtime_, options);
  }
  // The script up to a started job.
  void scriptStart() {
    server_.expect("query-jobs", json::array())
        .expect("query-named-block-nodes", json::array())
        .expect("blockdev-add")
        .expect("blockdev-add")
        .expect("query-named-block-nodes", json::array())
        .expect("blockdev-add")
        .expect("blockdev-add")
        .expect("blockdev-backup");
  }
  std::vector<json> commands(const std::string& name) {
    std::vector<json> found;
    for (const auto& c : server_.received()) {
      if (c.value("execute", "") == name) found.push_back(c);
    }
    return found;
  }

  FakeQmpServer server_;
  QmpRuntime runtime_;
  BlockCopyHooks hooks_{nullptr, nullptr, std::chrono::milliseconds(1)};
};

TEST_F(BlockCopyTest, StartsAFullBackupReportsProgressAndEnds) {
  scriptStart();
  server_.expect("query-jobs", job("running", 40)).expect("query-jobs", job("concluded", 100));
  auto qmp = channel();
  std::vector<int64_t> seen;
  hooks_.progress = [&](const BlockCopyProgress& p) {
    EXPECT_EQ(p.total_bytes, 100);
    seen.push_back(p.done_bytes);
  };
  Status copied = runBlockCopy(*qmp, plan(), hooks_);
  ASSERT_TRUE(copied.has_value()) << copied.error().describe();
  EXPECT_EQ(seen, (std::vector<int64_t>{40, 100}));
  ASSERT_TRUE(server_.waitDone());
  EXPECT_TRUE(server_.failures().empty()) << server_.failures()[0];

  auto adds = commands("blockdev-add");
  ASSERT_EQ(adds.size(), 4u);
  EXPECT_EQ(adds[0]["arguments"]["node-name"], "qcs-1-file");
  EXPECT_EQ(adds[0]["arguments"]["image"], "vol-a\"b") << "names go as JSON strings";
  EXPECT_EQ(adds[0]["arguments"]["read-only"], true);
  EXPECT_EQ(adds[1]["arguments"]["read-only"], true);
  EXPECT_EQ(adds[2]["arguments"]["node-name"], "qct-1-file");
  EXPECT_FALSE(adds[2]["arguments"].contains("read-only"));
  EXPECT_EQ(adds[3]["arguments"]["file"], "qct-1-file");
  auto backup = commands("blockdev-backup");
  ASSERT_EQ(backup.size(), 1u);
  EXPECT_EQ(backup[0]["arguments"]["sync"], "full");
  EXPECT_EQ(backup[0]["arguments"]["device"], "qcs-1");
  EXPECT_EQ(backup[0]["arguments"]["target"], "qct-1");
  EXPECT_EQ(backup[0]["arguments"]["job-id"], "qiao-copy-1");
  EXPECT_EQ(backup[0]["arguments"]["auto-dismiss"], false);
  EXPECT_EQ(backup[0]["arguments"]["speed"], 1 << 20);
}

TEST_F(BlockCopyTest, ACancelIsAskedOnceAndEndsAsCancelled) {
  scriptStart();
  server_.expect("query-jobs", job("running", 30))
      .expect("job-cancel")
      .expect("query-jobs", job("aborting", 30))
      .expect("query-jobs", job("concluded", 30, "Operation canceled"));
  auto qmp = channel();
  hooks_.cancelled = [] { return true; };
  // Asked before the job began: nothing is started at all.
  {
    FakeQmpServer idle;
    idle.expect("query-jobs", json::array());
    idle.start();
    QmpSocketOptions options;
    options.path = idle.path();
    QmpSocketChannel early(runtime_, options);
    Status stopped = runBlockCopy(early, plan(), hooks_);
    ASSERT_FALSE(stopped.has_value());
    EXPECT_EQ(stopped.error().message, "cancelled");
    ASSERT_TRUE(idle.waitDone());
    EXPECT_EQ(idle.received().size(), 1u);
  }
  bool first = true;
  hooks_.cancelled = [&] {
    bool now = !first;
    first = false;
    return now;
  };
  Status stopped = runBlockCopy(*qmp, plan(), hooks_);
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().message, "cancelled");
  ASSERT_TRUE(server_.waitDone());
  EXPECT_TRUE(server_.failures().empty()) << server_.failures()[0];
  EXPECT_EQ(commands("job-cancel").size(), 1u);
}

TEST_F(BlockCopyTest, AFailedOrVanishedJobIsAnError) {
  scriptStart();
  server_
      .expect("query-jobs", job("concluded", 10, "Input/output error"))
      // Run again: found running (so nothing is started), then gone (its QEMU restarted).
      .expect("query-jobs", job("running", 10))
      .expect("query-jobs", json::array());
  auto qmp = channel();
  Status failed = runBlockCopy(*qmp, plan(), hooks_);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kInternal);
  EXPECT_NE(failed.error().message.find("Input/output error"), std::string::npos);
  Status gone = runBlockCopy(*qmp, plan(), hooks_);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kUnavailable) << "the step is run again";
  ASSERT_TRUE(server_.waitDone());
  EXPECT_TRUE(server_.failures().empty()) << server_.failures()[0];
}

TEST_F(BlockCopyTest, AJobFoundRunningIsFollowedNotBegunAgain) {
  server_.expect("query-jobs", job("running", 50))
      .expect("query-jobs", job("running", 70))
      .expect("query-jobs", job("concluded", 100));
  auto qmp = channel();
  Status copied = runBlockCopy(*qmp, plan(), hooks_);
  ASSERT_TRUE(copied.has_value()) << copied.error().describe();
  ASSERT_TRUE(server_.waitDone());
  EXPECT_TRUE(server_.failures().empty()) << server_.failures()[0];
  EXPECT_TRUE(commands("blockdev-backup").empty());
  EXPECT_TRUE(commands("blockdev-add").empty());
}

TEST_F(BlockCopyTest, CleanupDismissesTheJobAndDeletesOnlyTheNodesItAdded) {
  server_.expect("query-jobs", job("concluded", 100))
      .expect("job-dismiss")
      .expect("query-named-block-nodes", json::array({{{"node-name", "qct-1"}},
                                                      {{"node-name", "qct-1-file"}},
                                                      {{"node-name", "qcs-1-file"}},
                                                      {{"node-name", "qd-guest"}}}))
      .expect("blockdev-del")
      .expect("blockdev-del")
      .expect("blockdev-del");
  auto qmp = channel();
  Status cleaned = cleanupBlockCopy(*qmp, plan());
  ASSERT_TRUE(cleaned.has_value()) << cleaned.error().describe();
  ASSERT_TRUE(server_.waitDone());
  EXPECT_TRUE(server_.failures().empty()) << server_.failures()[0];
  std::vector<std::string> deleted;
  for (const auto& c : commands("blockdev-del")) deleted.push_back(c["arguments"]["node-name"]);
  EXPECT_EQ(deleted, (std::vector<std::string>{"qct-1", "qct-1-file", "qcs-1-file"}));
}

}  // namespace
}  // namespace qiao
