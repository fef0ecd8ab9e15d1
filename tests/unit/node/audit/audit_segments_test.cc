// Audit rotation: exported segments keep the chain provable from its first entry; a changed,
// missing or reordered segment is named; rotation never passes the limit it is given.
#include "node/audit/audit_segments.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/crypto.h"
#include "node/state/store.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

class AuditSegmentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-audit-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto s = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void append(int n) {
    for (int i = 0; i < n; ++i) {
      AuditEntry e;
      e.identity = "qiao://c/user/u";
      e.method = "POST";
      e.path = "/v1/vms?n=" + std::to_string(i) + "&q=\"x\"";
      e.status = i % 3 == 0 ? 403 : 202;
      e.request_digest = sha256Hex(std::to_string(i));
      ASSERT_TRUE(store_->audit().append(e));
    }
  }
  std::string exportDir() const { return (dir_ / "audit").string(); }
  Result<AuditSegment> rotate(int64_t max, int64_t up_to = -1) {
    return rotateAudit(*store_, {exportDir(), max, up_to});
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void spit(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  fs::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(AuditSegmentsTest, RotationExportsRemovesAndTheWholeChainStillVerifies) {
  append(25);
  auto first = rotate(10);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->first_seq, 1);
  EXPECT_EQ(first->last_seq, 10);
  EXPECT_EQ(first->file, exportDir() + "/" + segmentFileName(1, 10));
  EXPECT_EQ(sha256Hex(slurp(first->file)), first->sha256);
  EXPECT_EQ(slurp(first->file + ".sha256"), first->sha256 + "  " + segmentFileName(1, 10) + "\n");
  EXPECT_EQ(fs::status(first->file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(*store_->audit().count(), 15);
  EXPECT_EQ(store_->audit().checkpoint()->seq, 10);

  // Appends go on from the head, across the checkpoint when the database is emptied.
  auto second = rotate(100);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->first_seq, 11);
  EXPECT_EQ(second->last_seq, 25);
  EXPECT_EQ(*store_->audit().count(), 0);
  append(5);
  auto head = store_->audit().head();
  EXPECT_EQ(head->seq, 30);

  auto verified = verifyAuditLog(*store_);
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->ok) << verified->problem;
  ASSERT_EQ(verified->lines.size(), 3u);
  EXPECT_NE(verified->lines[2].find("5 entries after 25"), std::string::npos) << verified->lines[2];

  // The exported files verify on their own, in order.
  auto files = verifySegmentFiles({first->file, second->file});
  EXPECT_TRUE(files.ok) << files.problem;
  // Out of order, the link is named.
  auto swapped = verifySegmentFiles({second->file, first->file});
  EXPECT_FALSE(swapped.ok);
  EXPECT_NE(swapped.problem.find("does not follow"), std::string::npos) << swapped.problem;
}

TEST_F(AuditSegmentsTest, AChangedSegmentIsDetectedEvenWithItsHashesRewritten) {
  append(12);
  auto seg = rotate(8);
  ASSERT_TRUE(seg);
  const std::string original = slurp(seg->file);
  std::string changed = original;
  auto at = changed.find("\"status\":403");
  ASSERT_NE(at, std::string::npos);
  changed.replace(at, 12, "\"status\":200");
  spit(seg->file, changed);

  auto verified = verifyAuditLog(*store_);
  ASSERT_TRUE(verified);
  EXPECT_FALSE(verified->ok);
  EXPECT_NE(verified->problem.find("segment 1-8"), std::string::npos) << verified->problem;
  EXPECT_NE(verified->problem.find("SHA-256"), std::string::npos) << verified->problem;
  auto alone = verifySegmentFiles({seg->file});
  EXPECT_FALSE(alone.ok);
  EXPECT_NE(alone.problem.find(".sha256"), std::string::npos) << alone.problem;

  // Whoever also rewrites the sidecar is still caught by the entries' own hashes.
  spit(seg->file + ".sha256", sha256Hex(changed) + "  x\n");
  alone = verifySegmentFiles({seg->file});
  EXPECT_FALSE(alone.ok);
  EXPECT_NE(alone.problem.find("content does not match its hash"), std::string::npos)
      << alone.problem;

  // Restored, all is well again; removed, it is missing.
  spit(seg->file, original);
  EXPECT_TRUE(verifyAuditLog(*store_)->ok);
  fs::remove(seg->file);
  verified = verifyAuditLog(*store_);
  EXPECT_FALSE(verified->ok);
  EXPECT_NE(verified->problem.find("missing"), std::string::npos) << verified->problem;
}

TEST_F(AuditSegmentsTest, ADroppedLineOrADatabaseEditIsNamed) {
  append(10);
  auto seg = rotate(6);
  ASSERT_TRUE(seg);
  std::string text = slurp(seg->file);
  // Without line 3 (entry 3): the walk names entry 4.
  size_t a = 0;
  for (int i = 0; i < 2; ++i) a = text.find('\n', a) + 1;
  size_t b = text.find('\n', a) + 1;
  spit(seg->file + ".cut", text.substr(0, a) + text.substr(b));
  auto cut = verifySegmentFiles({seg->file + ".cut"});
  EXPECT_FALSE(cut.ok);
  EXPECT_NE(cut.problem.find("expected entry 3 next, found 4"), std::string::npos) << cut.problem;

  // The database's first entry after the checkpoint must link to the segment's last.
  spit(seg->file, text);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "qiao.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 7", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto verified = verifyAuditLog(*store_);
  EXPECT_FALSE(verified->ok);
  EXPECT_NE(verified->problem.find("database: entry 8"), std::string::npos) << verified->problem;
}

TEST_F(AuditSegmentsTest, RotationStopsAtTheGivenEntryAndIsRepeatableAfterACrash) {
  append(20);
  auto none = rotate(100, 0);  // nothing confirmed by the collector yet
  ASSERT_TRUE(none);
  EXPECT_EQ(none->last_seq, 0);
  EXPECT_EQ(*store_->audit().count(), 20);
  auto some = rotate(100, 7);
  ASSERT_TRUE(some);
  EXPECT_EQ(some->last_seq, 7);
  EXPECT_EQ(*store_->audit().count(), 13);

  // A segment that does not follow the checkpoint is refused and changes nothing.
  AuditSegment stale = *some;
  auto refused = store_->audit().closeSegment(stale);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(*store_->audit().count(), 13);

  // A crash after the file was written but before the database: the next rotation writes the
  // same range again (the file is replaced) and the chain is whole.
  auto entries = store_->audit().list(7, 5);
  ASSERT_TRUE(entries);
  spit(exportDir() + "/" + segmentFileName(8, 12), "partial");
  auto again = rotate(5);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->first_seq, 8);
  EXPECT_EQ(again->last_seq, 12);
  EXPECT_TRUE(verifyAuditLog(*store_)->ok);
}

TEST(AuditEntryJson, RoundTripsAndRefusesWhatIsNotAnEntry) {
  AuditEntry e{42,
               "2026-12-07T00:00:00.000Z",
               "qiao://c/user/a\"b",
               "PUT",
               "/v1/x?\\y]\n",
               "t",
               "n",
               409,
               std::string(64, 'a'),
               std::string(64, 'b'),
               std::string(64, 'c')};
  auto back = auditEntryFromJson(auditEntryJson(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->path, e.path);
  EXPECT_EQ(back->identity, e.identity);
  EXPECT_EQ(back->status, 409);
  EXPECT_EQ(auditEntryJson(*back), auditEntryJson(e));
  EXPECT_FALSE(auditEntryFromJson("[1]"));
  EXPECT_FALSE(auditEntryFromJson("{\"seq\":\"x\"}"));
  EXPECT_FALSE(auditEntryFromJson("not json"));
}

}  // namespace
}  // namespace qiao
