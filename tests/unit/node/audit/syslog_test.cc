// Syslog shipping: destinations, the RFC 5424 frame, the delivery rules (with time passed in),
// and a shipper on a real local socket whose collector dies mid-stream.
#include "node/audit/syslog.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "base/crypto.h"
#include "node/state/store.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(SyslogDestination, ParsesTheTwoFormsAndRefusesTheRest) {
  auto unix_dest = parseSyslogDestination("unix:/run/rsyslog/qiao.sock");
  ASSERT_TRUE(unix_dest);
  EXPECT_EQ(unix_dest->kind, SyslogDestination::Kind::kUnix);
  EXPECT_EQ(unix_dest->path, "/run/rsyslog/qiao.sock");
  auto tls = parseSyslogDestination("tls://collector.example:6514");
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->host, "collector.example");
  EXPECT_EQ(tls->port, 6514);
  auto v6 = parseSyslogDestination("tls://[::1]:6514");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad :
       {"", "udp://x:514", "unix:relative", "tls://host", "tls://:6514", "tls://host:0",
        "tls://host:65536", "tls://host:x", "tls://a b:1", "tls://[::1]6514"}) {
    auto parsed = parseSyslogDestination(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find("audit.syslog"), std::string::npos);
    }
  }
}

TEST(SyslogFrame, IsOneOctetCountedRfc5424MessageWithTheEntryEscaped) {
  AuditEntry e{7,
               "2026-12-07T01:02:03.456Z",
               "qiao://c/user/a\"b]c\\d",
               "POST",
               "/v1/vms?x=\n\x01\xff",
               "acme",
               "web",
               403,
               std::string(64, '1'),
               std::string(64, '2'),
               std::string(64, '3')};
  const std::string frame = syslogFrame(e, "node 1", 99);
  const auto space = frame.find(' ');
  const std::string msg = frame.substr(space + 1);
  EXPECT_EQ(std::stoul(frame.substr(0, space)), msg.size());
  // <13*8+4 (log audit, warning)>1 TIMESTAMP HOSTNAME APP PROCID MSGID
  EXPECT_EQ(msg.rfind("<108>1 2026-12-07T01:02:03.456Z node_1 qiaod 99 audit [qiao-audit@32473 "
                      "seq=\"7\" identity=\"qiao://c/user/a\\\"b\\]c\\\\d\" method=\"POST\" "
                      "path=\"/v1/vms?x=%0A%01%FF\" tenant=\"acme\" target=\"web\" "
                      "status=\"403\"",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find("hash=\"" + std::string(64, '3') + "\"] POST /v1/vms?x=??? 403 by qiao://"),
            std::string::npos)
      << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  e.status = 202;
  EXPECT_EQ(syslogFrame(e, "h", 1).find("<109>1 "), syslogFrame(e, "h", 1).find(' ') + 1);
}

TEST(DeliveryTracker, AnEntryIsDeliveredOnlyAcknowledgedAndThenHeldForTheConfirmTime) {
  using Clock = DeliveryTracker::Clock;
  const Clock::time_point t0{};
  DeliveryTracker tracker(5000ms);
  tracker.written(1, 100);
  tracker.written(2, 250);
  tracker.written(3, 400);
  // Nothing acknowledged: nothing delivered, however long it waits.
  tracker.acknowledged(t0, 400, 400);
  EXPECT_FALSE(tracker.confirm(t0 + 60s));
  // The first two acknowledged at t0+1s (150 of 400 still out).
  tracker.acknowledged(t0 + 1s, 400, 150);
  EXPECT_FALSE(tracker.confirm(t0 + 5999ms));
  EXPECT_EQ(tracker.confirm(t0 + 6s), 2);
  EXPECT_FALSE(tracker.confirm(t0 + 6s));  // already said
  // Entry 3 acknowledged later: its own clock starts then.
  tracker.acknowledged(t0 + 8s, 400, 0);
  EXPECT_FALSE(tracker.confirm(t0 + 12s));
  EXPECT_EQ(tracker.confirm(t0 + 13s), 3);
  EXPECT_EQ(tracker.inFlight(), 0u);
  // A broken connection forgets what was in flight.
  tracker.written(4, 500);
  tracker.acknowledged(t0 + 14s, 500, 0);
  tracker.reset();
  EXPECT_FALSE(tracker.confirm(t0 + 60s));
}

// A collector on a local stream socket: records each message's seq. "Dies" after `die_after`
// messages of its first connection: drops the last message it read (read, not yet written)
// and closes with the rest unread.
class LocalCollector {
 public:
  LocalCollector(std::string path, int die_after) : path_(std::move(path)), die_after_(die_after) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this] { run(); });
  }
  ~LocalCollector() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    if (int c = client_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::set<int64_t> seqs() {
    std::lock_guard lock(mutex_);
    return seqs_;
  }
  int connections() const { return connections_; }
  int64_t duplicates() const { return duplicates_; }

 private:
  void run() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      client_ = c;
      if (stop_) ::shutdown(c, SHUT_RDWR);
      serve(c, connections_ == 1 ? die_after_ : -1);
      client_ = -1;
      ::close(c);
    }
  }
  void serve(int c, int die_after) {
    std::string buf;
    char chunk[4096];
    int read_messages = 0;
    static const std::regex kSeq("seq=\"([0-9]+)\"");
    while (!stop_) {
      // Frames: LEN SP MSG.
      size_t space;
      while ((space = buf.find(' ')) != std::string::npos) {
        size_t len = std::stoul(buf.substr(0, space));
        if (buf.size() < space + 1 + len) break;
        std::string msg = buf.substr(space + 1, len);
        buf.erase(0, space + 1 + len);
        ++read_messages;
        if (die_after >= 0 && read_messages >= die_after) return;  // this one is lost
        std::smatch m;
        if (std::regex_search(msg, m, kSeq)) {
          std::lock_guard lock(mutex_);
          if (!seqs_.insert(std::stoll(m[1])).second) ++duplicates_;
        }
      }
      ssize_t n = ::recv(c, chunk, die_after >= 0 ? 256 : sizeof chunk, 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
  }
  std::string path_;
  int die_after_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> client_{-1};
  std::atomic<int64_t> duplicates_{0};
  std::mutex mutex_;
  std::set<int64_t> seqs_;
  std::thread thread_;
};

TEST(SyslogShipper, ACollectorThatDiesMidStreamLosesNothing) {
  const fs::path dir = fs::temp_directory_path() / ("qiao-syslog-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto store = Store::open((dir / "qiao.db").string());
  ASSERT_TRUE(store);
  constexpr int kEntries = 3000;
  for (int i = 0; i < kEntries; ++i) {
    AuditEntry e;
    e.method = "POST";
    e.path = "/v1/vms/" + std::to_string(i);
    e.status = 202;
    e.request_digest = sha256Hex("");
    ASSERT_TRUE((*store)->audit().append(e));
  }
  const std::string socket = (dir / "collector.sock").string();
  ShipperOptions options;
  options.destination = "unix:" + socket;
  options.confirm = 300ms;
  options.io_timeout = 2000ms;
  options.hostname = "test";
  auto shipper = SyslogShipper::create(**store, options);
  ASSERT_TRUE(shipper) << shipper.error().message;

  // No collector yet: nothing delivered, and the shipper backs off.
  auto wait = (*shipper)->step();
  EXPECT_GE(wait, 500ms);
  EXPECT_EQ((*shipper)->confirmed(), 0);

  {
    LocalCollector collector(socket, 1200);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while ((*shipper)->confirmed() < kEntries && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>((*shipper)->step(), 200ms));
    }
    EXPECT_EQ((*shipper)->confirmed(), kEntries);
    EXPECT_GE(collector.connections(), 2);
    auto seqs = collector.seqs();
    EXPECT_EQ(seqs.size(), static_cast<size_t>(kEntries));
    EXPECT_EQ(*seqs.begin(), 1);
    EXPECT_EQ(*seqs.rbegin(), kEntries);
  }
  // The confirmed figure is kept: a new shipper (qiaod restarted) resumes after it.
  EXPECT_EQ(*(*store)->audit().confirmed(options.destination), kEntries);
  auto again = SyslogShipper::create(**store, options);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->confirmed(), kEntries);
  again->reset();
  shipper->reset();
  store->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qiao
