// The QMP channels against the real thing: QmpSocketChannel on `qemu-system-x86_64 -machine
// none` and on qemu-storage-daemon (both children of the test, killed at its end), and
// LibvirtQmpChannel on a tiny transient guest of the stack's libvirtd (qemu:///system).
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "node/vm/qmp/libvirt_qmp_channel.h"
#include "node/vm/qmp/qmp_socket.h"
#include "tests/integration/node/vm/qmp/qmp_test_util.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using namespace qiao::qmptest;

// Events seen, for waiting on one by name.
class EventWaiter {
 public:
  QmpEventHandler handler() {
    return [this](const QmpEvent& event) {
      std::lock_guard lock(mu_);
      events_.push_back(event);
      cv_.notify_all();
    };
  }
  // The first event named `name` after the first `skip` events, or nullopt on timeout.
  std::optional<QmpEvent> waitFor(const std::string& name, milliseconds max = seconds(20)) {
    std::unique_lock lock(mu_);
    std::optional<QmpEvent> found;
    cv_.wait_for(lock, max, [&] {
      for (size_t i = consumed_; i < events_.size(); ++i) {
        if (events_[i].name == name) {
          found = events_[i];
          consumed_ = i + 1;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<QmpEvent> events_;
  size_t consumed_ = 0;
};

class TempDir {
 public:
  TempDir() : path_(makeTempDir("qiao-qmp-it")) {}
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(QmpIt, QemuMachineNone) {
  TempDir dir;
  const std::string socket = dir.path() + "/qmp.sock";
  ChildProcess qemu(qemuNoneArgv(socket), dir.path() + "/qemu.log");
  ASSERT_TRUE(waitForPath(socket, seconds(20))) << "QEMU did not make its socket: " << qemu.log();

  QmpRuntime runtime;
  QmpSocketOptions options;
  options.path = socket;
  options.name = "qemu -machine none";
  QmpSocketChannel channel(runtime, options);
  EventWaiter events;
  auto subscription = channel.subscribe("", events.handler());

  auto status = channel.execute("query-status", {}, seconds(10));
  ASSERT_TRUE(status.has_value()) << status.error().describe();
  EXPECT_TRUE((*status)["status"].is_string()) << status->dump();
  EXPECT_TRUE((*status)["running"].is_boolean()) << status->dump();

  auto version = channel.execute("query-version", {}, seconds(10));
  ASSERT_TRUE(version.has_value()) << version.error().describe();
  EXPECT_EQ((*version)["qemu"]["major"], 7) << version->dump();
  EXPECT_EQ(channel.serverVersion()["qemu"], (*version)["qemu"]);

  // stop/cont: STOP and RESUME, delivered in order, with their timestamps.
  ASSERT_TRUE(channel.execute("stop", {}, seconds(10)).has_value());
  auto stop = events.waitFor("STOP");
  ASSERT_TRUE(stop.has_value()) << "no STOP event";
  EXPECT_GT(stop->seconds, 1600000000);
  auto paused = channel.execute("query-status", {}, seconds(10));
  ASSERT_TRUE(paused.has_value());
  EXPECT_EQ((*paused)["status"], "paused");
  ASSERT_TRUE(channel.execute("cont", {}, seconds(10)).has_value());
  ASSERT_TRUE(events.waitFor("RESUME").has_value()) << "no RESUME event";

  // A failing command is QEMU's error, and the connection stays.
  auto missing = channel.execute("no-such-command", {}, seconds(10));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().subsystem, "qmp");
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("CommandNotFound"), std::string::npos)
      << missing.error().message;
  auto bad_args = channel.execute("query-status", {{"bogus", 1}}, seconds(10));
  ASSERT_FALSE(bad_args.has_value());
  EXPECT_NE(bad_args.error().message.find("GenericError"), std::string::npos)
      << bad_args.error().message;
  EXPECT_EQ(channel.generation(), 1u);

  // QMP serves one client at a time: a second channel gets no greeting meanwhile.
  QmpSocketOptions second_options = options;
  second_options.connect_timeout = milliseconds(500);
  QmpSocketChannel second(runtime, second_options);
  auto refused = second.execute("query-status", {}, seconds(10));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("no QMP greeting"), std::string::npos)
      << refused.error().message;
  ASSERT_TRUE(channel.execute("query-status", {}, seconds(10)).has_value());

  // QEMU goes away: the channel says so, and does not hang.
  qemu.kill();
  auto gone = channel.execute("query-status", {}, seconds(10));
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kUnavailable) << gone.error().describe();
}

TEST(QmpIt, QemuStorageDaemon) {
  TempDir dir;
  const std::string socket = dir.path() + "/qsd.sock";
  ChildProcess qsd(storageDaemonArgv(socket), dir.path() + "/qsd.log");
  ASSERT_TRUE(waitForPath(socket, seconds(20))) << "qsd did not make its socket: " << qsd.log();
  const std::string image = dir.path() + "/disk.raw";
  std::ofstream(image).close();
  std::filesystem::resize_file(image, 4 << 20);

  QmpRuntime runtime;
  QmpSocketOptions options;
  options.path = socket;
  options.name = "qsd";
  QmpSocketChannel channel(runtime, options);

  auto added = channel.execute("blockdev-add",
                               {{"driver", "null-co"}, {"node-name", "null0"}, {"size", 1 << 20}},
                               seconds(10));
  ASSERT_TRUE(added.has_value()) << added.error().describe();
  added = channel.execute("blockdev-add",
                          {{"driver", "file"}, {"node-name", "file0"}, {"filename", image}},
                          seconds(10));
  ASSERT_TRUE(added.has_value()) << added.error().describe();
  added = channel.execute(
      "blockdev-add", {{"driver", "raw"}, {"node-name", "raw0"}, {"file", "file0"}}, seconds(10));
  ASSERT_TRUE(added.has_value()) << added.error().describe();

  auto nodes = channel.execute("query-named-block-nodes", {{"flat", true}}, seconds(10));
  ASSERT_TRUE(nodes.has_value()) << nodes.error().describe();
  ASSERT_TRUE(nodes->is_array());
  std::set<std::string> names;
  for (const auto& node : *nodes) {
    names.insert(node.value("node-name", ""));
    if (node.value("node-name", "") == "raw0") {
      EXPECT_EQ(node["image"]["virtual-size"], 4 << 20);
    }
  }
  EXPECT_TRUE(names.contains("null0") && names.contains("file0") && names.contains("raw0"))
      << nodes->dump();

  // The same node name again is QEMU's error.
  auto duplicate =
      channel.execute("blockdev-add", {{"driver", "null-co"}, {"node-name", "null0"}}, seconds(10));
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().subsystem, "qmp");
  EXPECT_NE(duplicate.error().message.find("null0"), std::string::npos)
      << duplicate.error().message;

  for (const char* node : {"raw0", "file0", "null0"}) {
    auto deleted = channel.execute("blockdev-del", {{"node-name", node}}, seconds(10));
    EXPECT_TRUE(deleted.has_value()) << deleted.error().describe();
  }
}

TEST(QmpIt, LibvirtPassthrough) {
  if (!libvirtdUp()) GTEST_SKIP() << "libvirtd is not running (scripts/stack up --no-qiaod)";
  TransientDomain domain("qmp-it-" + std::to_string(::getpid()));
  ASSERT_TRUE(domain.ok()) << "cannot start the test domain: " << domain.error();

  LibvirtQmpOptions options;
  options.uri = "qemu:///system";
  options.domain = domain.name();
  LibvirtQmpChannel channel(options);
  EventWaiter events;
  auto subscription = channel.subscribe("", events.handler());
  ASSERT_TRUE(channel.connect(seconds(20)).has_value());
  EXPECT_TRUE(channel.connected());

  auto status = channel.execute("query-status", {}, seconds(20));
  ASSERT_TRUE(status.has_value()) << status.error().describe();
  EXPECT_EQ((*status)["status"], "running") << status->dump();

  // Events from libvirt's side: virsh suspend/resume give STOP/RESUME.
  auto suspended = virsh({"suspend", domain.name()});
  ASSERT_EQ(suspended.exit_code, 0) << suspended.message();
  auto stop = events.waitFor("STOP");
  ASSERT_TRUE(stop.has_value()) << "no STOP event through libvirt";
  EXPECT_GT(stop->seconds, 1600000000);
  auto paused = channel.execute("query-status", {}, seconds(20));
  ASSERT_TRUE(paused.has_value()) << paused.error().describe();
  EXPECT_EQ((*paused)["status"], "paused");
  auto resumed = virsh({"resume", domain.name()});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.message();
  ASSERT_TRUE(events.waitFor("RESUME").has_value()) << "no RESUME event through libvirt";

  // QEMU's error comes back as such.
  auto missing = channel.execute("no-such-command", {}, seconds(20));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().subsystem, "qmp");
  EXPECT_NE(missing.error().message.find("CommandNotFound"), std::string::npos)
      << missing.error().message;

  // The same guest by UUID, on a second channel (and connection).
  ASSERT_FALSE(domain.uuid().empty());
  options.domain = domain.uuid();
  LibvirtQmpChannel by_uuid(options);
  auto version = by_uuid.execute("query-version", {}, seconds(20));
  ASSERT_TRUE(version.has_value()) << version.error().describe();
  EXPECT_EQ((*version)["qemu"]["major"], 7);

  // A guest that is no longer running: libvirt's own error, not a hang.
  auto destroyed = virsh({"destroy", domain.name()});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.message();
  auto after = channel.execute("query-status", {}, seconds(20));
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().subsystem, "libvirt") << after.error().describe();
}

// How qiaod keeps its guests' monitors: channels of several domains on one
// LibvirtQmpConnection. Each domain's QMP events reach its channels only (one registration
// for all domains); a guest whose QEMU hangs holds one worker, while the other guest's calls
// go on; once it answers again its late replies are dropped and its channel works.
TEST(QmpIt, LibvirtChannelsShareOneConnection) {
  if (!libvirtdUp()) GTEST_SKIP() << "libvirtd is not running (scripts/stack up --no-qiaod)";
  const std::string suffix = std::to_string(::getpid());
  TransientDomain a("qmp-it-a-" + suffix);
  ASSERT_TRUE(a.ok()) << "cannot start a test domain: " << a.error();
  TransientDomain b("qmp-it-b-" + suffix);
  ASSERT_TRUE(b.ok()) << "cannot start a test domain: " << b.error();

  LibvirtQmpConnectionOptions options;
  options.uri = "qemu:///system";
  options.call_threads = 2;
  LibvirtQmpConnection connection(options);
  auto channel_a = connection.channel(a.name());
  auto channel_b = connection.channel(b.uuid());
  auto channel_b_by_name = connection.channel(b.name());
  EventWaiter events_a, events_b, events_b_by_name;
  auto sub_a = channel_a->subscribe("", events_a.handler());
  auto sub_b = channel_b->subscribe("", events_b.handler());
  auto sub_b_by_name = channel_b_by_name->subscribe("", events_b_by_name.handler());
  for (auto* channel : {channel_a.get(), channel_b.get(), channel_b_by_name.get()}) {
    ASSERT_TRUE(channel->connect(seconds(20)).has_value());
  }
  EXPECT_EQ(connection.connectionsOpened(), 1u);

  ASSERT_EQ(virsh({"suspend", a.name()}).exit_code, 0);
  ASSERT_TRUE(events_a.waitFor("STOP").has_value()) << "no STOP event for a";
  ASSERT_EQ(virsh({"suspend", b.name()}).exit_code, 0);
  ASSERT_TRUE(events_b.waitFor("STOP").has_value()) << "no STOP event for b (by UUID)";
  ASSERT_TRUE(events_b_by_name.waitFor("STOP").has_value()) << "no STOP event for b (by name)";
  EXPECT_FALSE(events_a.waitFor("STOP", milliseconds(500)).has_value()) << "b's STOP reached a";
  ASSERT_EQ(virsh({"resume", a.name()}).exit_code, 0);
  ASSERT_EQ(virsh({"resume", b.name()}).exit_code, 0);
  ASSERT_TRUE(events_a.waitFor("RESUME").has_value());
  ASSERT_TRUE(events_b.waitFor("RESUME").has_value());

  // a's QEMU stops reading its monitor: libvirt waits for it without a limit.
  std::ifstream pid_file("/run/libvirt/qemu/" + a.name() + ".pid");
  pid_t pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0) << "no pid file for " << a.name();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  for (int i = 0; i < 3; ++i) {
    auto hung = channel_a->execute("query-status", {}, milliseconds(1000));
    ASSERT_FALSE(hung.has_value());
    EXPECT_EQ(hung.error().code, ErrorCode::kTimeout) << hung.error().describe();
  }
  const auto start = std::chrono::steady_clock::now();
  auto other = channel_b->execute("query-status", {}, seconds(10));
  EXPECT_TRUE(other.has_value()) << other.error().describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5)) << "b waited behind a";
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  auto back = channel_a->execute("query-status", {}, seconds(20));
  ASSERT_TRUE(back.has_value()) << back.error().describe();
  EXPECT_EQ((*back)["status"], "running");
  EXPECT_EQ(connection.connectionsOpened(), 1u);

  // libvirtd restarts (the guests keep running): a call that meets the dead connection fails,
  // a later one opens a new connection, and events flow on it again.
  const char* source = std::getenv("QIAO_SOURCE_DIR");
  if (source == nullptr) GTEST_SKIP() << "QIAO_SOURCE_DIR is not set: no libvirtd restart";
  ProcessOptions restart;
  restart.argv = {"bash", std::string(source) + "/scripts/stack", "restart-libvirtd"};
  restart.timeout_ms = 120000;
  auto restarted = runProcess(restart);
  ASSERT_TRUE(restarted && restarted->exit_code == 0) << "cannot restart libvirtd";
  Result<json> again = makeError(ErrorCode::kUnavailable, "test", "not asked yet");
  for (int i = 0; i < 60 && !again; ++i) {
    again = channel_b->execute("query-status", {}, seconds(10));
    if (!again) std::this_thread::sleep_for(milliseconds(500));
  }
  ASSERT_TRUE(again.has_value()) << again.error().describe();
  EXPECT_EQ(connection.connectionsOpened(), 2u);
  ASSERT_TRUE(channel_a->execute("query-status", {}, seconds(20)).has_value());
  ASSERT_EQ(virsh({"suspend", a.name()}).exit_code, 0);
  EXPECT_TRUE(events_a.waitFor("STOP").has_value()) << "no STOP event after the reconnection";
  EXPECT_FALSE(events_b.waitFor("STOP", milliseconds(500)).has_value());
  ASSERT_EQ(virsh({"resume", a.name()}).exit_code, 0);
}

TEST(QmpIt, LibvirtMissingDomain) {
  if (!libvirtdUp()) GTEST_SKIP() << "libvirtd is not running (scripts/stack up --no-qiaod)";
  LibvirtQmpOptions options;
  options.uri = "qemu:///system";
  options.domain = "qmp-it-missing-" + std::to_string(::getpid());
  LibvirtQmpChannel channel(options);
  auto result = channel.execute("query-status", {}, seconds(20));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kNotFound) << result.error().describe();
}

}  // namespace
}  // namespace qiao::testing
