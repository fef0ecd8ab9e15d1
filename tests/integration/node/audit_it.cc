// The audit log shipped to a real TLS syslog collector (syslog_collector, a process of its
// own) and rotated while it runs: a collector SIGKILLed mid-stream and restarted loses no
// entry, rotation never exports what the collector has not confirmed, `qiaod audit verify`
// proves the chain through the exported segments, and a changed segment is named.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "node/state/store.h"
#include "tests/integration/harness.h"

extern char** environ;

namespace qiao {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace qiao::testing;

class Collector {
 public:
  Collector(std::string dir, int port) : dir_(std::move(dir)) { start(port); }
  ~Collector() { kill9(); }
  void start(int port) {
    const std::string port_file = dir_ + "/port";
    fs::remove(port_file);
    std::vector<std::string> args = {buildDir() + "/tests/integration/syslog_collector",
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port),
                                     "--cert",
                                     dir_ + "/pki/node.crt",
                                     "--key",
                                     dir_ + "/pki/node.key",
                                     "--out",
                                     out(),
                                     "--port-file",
                                     port_file};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    for (int i = 0; i < 100 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(fs::exists(port_file)) << "the collector did not start";
    port_ = std::stoi(readFile(port_file));
  }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string out() const { return dir_ + "/received.log"; }
  // The seqs of every message received, and how many messages (duplicates included).
  std::set<int64_t> seqs(size_t* messages = nullptr) const {
    static const std::regex kSeq("\\[qiao-audit@32473 seq=\"([0-9]+)\"");
    std::set<int64_t> out_seqs;
    std::ifstream in(out());
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_search(line, m, kSeq)) out_seqs.insert(std::stoll(m[1]));
      ++n;
    }
    if (messages) *messages = n;
    return out_seqs;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Every entry from 1 to the head of the log was received (a gap fails).
::testing::AssertionResult receivedAll(const std::set<int64_t>& seqs, int64_t head) {
  if (head <= 0) return ::testing::AssertionFailure() << "the log is empty";
  for (int64_t s = 1; s <= head; ++s) {
    if (!seqs.count(s)) {
      return ::testing::AssertionFailure()
             << "entry " << s << " of " << head << " never reached the collector (" << seqs.size()
             << " did)";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(AuditLog, ShippedToARestartedCollectorWithoutLossAndRotatedWithAWholeChain) {
  const std::string dir = fs::temp_directory_path().string() + "/qiao-audit-it-" + randomSuffix();
  fs::create_directories(dir);
  auto init =
      runCommand({qiaodBinary(), "pki", "init", "--cluster", "collector", "--dir", dir + "/pki"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  Collector collector(dir, 0);

  Qiaod qiaod("[audit]\nsyslog = \"tls://127.0.0.1:" + std::to_string(collector.port()) +
              "\"\nsyslog_ca_file = \"" + dir +
              "/pki/ca.crt\"\nsyslog_confirm_s = 1\n"
              "segment_entries = 40\nrotate_check_s = 1\n");
  qiaod.start();
  auto admin = qiaod.adminClient();
  auto store = Store::open(qiaod.dir() + "/state/qiao.db");
  ASSERT_TRUE(store);
  auto head = [&] { return (*store)->audit().head()->seq; };
  auto audited = [&](int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(
          call(admin, "PUT", "/v1/quotas/audit-it", "{\"vms\": " + std::to_string(i) + "}").status,
          200);
    }
  };
  auto waitReceived = [&](std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && !receivedAll(collector.seqs(), head())) {
      std::this_thread::sleep_for(200ms);
    }
    return receivedAll(collector.seqs(), head());
  };

  audited(30);
  ASSERT_TRUE(waitReceived(30s));
  // The messages are RFC 5424 with the entry's own hash.
  auto entries = (*store)->audit().list(0, 1000);
  ASSERT_TRUE(entries);
  ASSERT_FALSE(entries->empty());
  const auto& last = entries->back();
  const std::string received = readFile(collector.out());
  EXPECT_NE(received.find("<109>1 "), std::string::npos);
  EXPECT_NE(received.find("seq=\"" + std::to_string(last.seq) + "\""), std::string::npos);
  EXPECT_NE(received.find("hash=\"" + last.hash + "\"] PUT /v1/quotas/audit-it 200 by qiao://"),
            std::string::npos);

  // The collector dies while entries stream; more are made while it is down.
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    audited(120);
    writing = false;
  });
  while (writing && collector.seqs().size() < 60) std::this_thread::sleep_for(20ms);
  collector.kill9();
  const int64_t had = collector.seqs().empty() ? 0 : *collector.seqs().rbegin();
  std::this_thread::sleep_for(3s);  // three rotation checks with > 40 entries in the database
  auto checkpoint = (*store)->audit().checkpoint();
  ASSERT_TRUE(checkpoint);
  EXPECT_LE(checkpoint->seq, had) << "rotation exported entries the collector never had";
  writer.join();
  collector.start(collector.port());
  ASSERT_TRUE(waitReceived(90s));
  size_t messages = 0;
  collector.seqs(&messages);
  std::printf("collector: %zu messages for %lld entries (resent after the restart: %lld)\n",
              messages, static_cast<long long>(head()),
              static_cast<long long>(messages) - static_cast<long long>(head()));

  // Rotation catches up once delivered, and the chain verifies through the segments.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline && *(*store)->audit().count() > 40) {
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_LE(*(*store)->audit().count(), 40);
  auto segments = (*store)->audit().segments();
  ASSERT_TRUE(segments);
  ASSERT_GE(segments->size(), 2u);
  EXPECT_EQ(segments->front().first_seq, 1);
  auto verify = qiaod.admin({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The first segment ends where the collector had confirmed when it was cut (at most 40).
  const std::string first_segment = "segment 1-" + std::to_string(segments->front().last_seq);
  EXPECT_LE(segments->front().last_seq, 40);
  EXPECT_NE(verify.out.find(first_segment), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("audit log ok"), std::string::npos) << verify.out;

  // `qiaod audit rotate` closes a segment now, beside the running daemon.
  auto rotate = qiaod.admin({"audit", "rotate", "--max-entries", "5"});
  EXPECT_EQ(rotate.exit_code, 0) << rotate.out << rotate.err;
  EXPECT_NE(rotate.out.find("exported entries"), std::string::npos) << rotate.out;
  EXPECT_EQ(qiaod.admin({"audit", "rotate", "--max-entries", "0"}).exit_code, 2);

  // A changed segment is named, by the node and by an archive check of the files alone.
  const std::string file = segments->front().file;
  const std::string original = readFile(file);
  std::string changed = original;
  auto at = changed.find("\"status\":200");
  ASSERT_NE(at, std::string::npos);
  changed.replace(at, 12, "\"status\":201");
  std::ofstream(file, std::ios::trunc | std::ios::binary) << changed;
  verify = qiaod.admin({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out;
  EXPECT_NE(verify.out.find("BROKEN: " + first_segment), std::string::npos) << verify.out;
  std::vector<std::string> args = {"audit", "verify", "--segment"};
  for (const auto& s : *segments) args.push_back(s.file);
  auto archive = qiaod.admin(args);
  EXPECT_EQ(archive.exit_code, 1) << archive.out;
  EXPECT_NE(archive.out.find("BROKEN: " + file), std::string::npos) << archive.out;
  std::ofstream(file, std::ios::trunc | std::ios::binary) << original;
  EXPECT_EQ(qiaod.admin(args).exit_code, 0);
  EXPECT_EQ(qiaod.admin({"audit", "verify"}).exit_code, 0);

  qiaod.stopGracefully();
  store->reset();
  collector.kill9();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qiao
