// The OVSDB Switch against the stack's real Open vSwitch (ovsdb-server and ovs-vswitchd at
// /var/run/openvswitch): bridges and ports made and read back, hostile values kept exactly,
// changes by other clients seen, and a restart of OVS survived without help. And the
// FlowInstaller's conntrack flushes, on real connections. Each test works
// on its own bridges (qit-...-<pid>) and deletes them with ovs-vsctl, which does not depend on
// the code under test, whatever happened.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/process.h"
#include "network/flows.h"
#include "network/switch.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kSocket = "/var/run/openvswitch/db.sock";
constexpr const char* kOvsCtl = "/usr/share/openvswitch/scripts/ovs-ctl";

ProcessResult run(const std::vector<std::string>& argv, int timeout_ms = 20000) {
  ProcessOptions options;
  options.argv = argv;
  options.timeout_ms = timeout_ms;
  auto result = runProcess(options);
  if (!result) {
    ProcessResult failed;
    failed.err = result.error().describe();
    return failed;
  }
  return *result;
}

// ovs-vsctl with its own timeout, so that a broken server cannot hang the test.
ProcessResult vsctl(std::vector<std::string> args) {
  args.insert(args.begin(), {"ovs-vsctl", "--timeout=10"});
  return run(args);
}

bool eventually(const std::function<bool()>& condition, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return condition();
}

int countLines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// One column of one row, read by ovs-vsctl as JSON: an independent reader of what we wrote.
json vsctlColumn(const std::string& table, const std::string& record, const std::string& column) {
  auto listed = vsctl({"--format=json", "--columns=" + column, "list", table, record});
  if (listed.exit_code != 0) return nullptr;
  auto doc = json::parse(listed.out, nullptr, false);
  if (doc.is_discarded() || !doc.contains("data") || doc["data"].empty()) return nullptr;
  return doc["data"][0][0];
}

std::optional<SwitchPortState> findPort(Switch& sw, const std::string& bridge,
                                        const std::string& name) {
  auto ports = sw.listPorts(bridge);
  if (!ports) return std::nullopt;
  for (auto& state : *ports) {
    if (state.port.name == name) return state;
  }
  return std::nullopt;
}

class OvsdbSwitchIt : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat st {};
    ASSERT_EQ(::stat(kSocket, &st), 0)
        << "ovsdb-server is not running (no " << kSocket << "): scripts/stack up starts it";
    const std::string pid = std::to_string(::getpid() % 10000000);
    bridge_ = "qit-ovs-" + pid;  // <= 15 bytes
    other_bridge_ = "qit-ov2-" + pid;
    port_prefix_ = "qp" + pid;
    SwitchOptions options;
    options.socket = kSocket;
    sw_ = makeOvsdbSwitch(options);
  }

  void TearDown() override {
    sw_.reset();
    // A test that failed while OVS was down (the restart test) must not leave it down.
    if (vsctl({"show"}).exit_code != 0) run({kOvsCtl, "start", "--system-id=random"}, 120000);
    for (const auto& bridge : {bridge_, other_bridge_}) {
      auto deleted = vsctl({"--if-exists", "del-br", bridge});
      EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
    }
  }

  std::string bridge_, other_bridge_, port_prefix_;
  std::unique_ptr<Switch> sw_;
};

TEST_F(OvsdbSwitchIt, BridgesArePlainAndIdempotent) {
  ASSERT_TRUE(sw_->ping().has_value());
  for (int i = 0; i < 2; ++i) {
    auto ensured = sw_->ensureBridge(bridge_, "netdev");
    ASSERT_TRUE(ensured.has_value()) << ensured.error().describe();
  }
  EXPECT_EQ(vsctlColumn("Bridge", bridge_, "datapath_type"), "netdev");
  EXPECT_EQ(vsctlColumn("Bridge", bridge_, "fail_mode"), "secure");
  auto bridges = vsctl({"list-br"});
  EXPECT_NE(bridges.out.find(bridge_ + "\n"), std::string::npos) << bridges.out;
  const json uuid = vsctlColumn("Bridge", bridge_, "_uuid");

  // Changed behind our back: put back in place, the same row.
  ASSERT_EQ(vsctl({"set-fail-mode", bridge_, "standalone"}).exit_code, 0);
  ASSERT_TRUE(sw_->ensureBridge(bridge_, "netdev").has_value());
  EXPECT_EQ(vsctlColumn("Bridge", bridge_, "fail_mode"), "secure");
  EXPECT_EQ(vsctlColumn("Bridge", bridge_, "_uuid"), uuid);

  // A provider bridge: made standalone; an existing one keeps the fail_mode its owner set.
  ASSERT_TRUE(sw_->ensureBridge(other_bridge_, "netdev", "standalone").has_value());
  EXPECT_EQ(vsctlColumn("Bridge", other_bridge_, "fail_mode"), "standalone");
  ASSERT_EQ(vsctl({"set-fail-mode", other_bridge_, "secure"}).exit_code, 0);
  ASSERT_TRUE(sw_->ensureBridge(other_bridge_, "netdev", "standalone").has_value());
  EXPECT_EQ(vsctlColumn("Bridge", other_bridge_, "fail_mode"), "secure");
  EXPECT_EQ(sw_->ensureBridge(other_bridge_, "netdev", "open").error().code,
            ErrorCode::kInvalidArgument);
  ASSERT_EQ(vsctl({"del-br", other_bridge_}).exit_code, 0);

  // Its own port is OVS's, not listed.
  auto ports = sw_->listPorts(bridge_);
  ASSERT_TRUE(ports.has_value()) << ports.error().describe();
  EXPECT_TRUE(ports->empty());
  auto missing = sw_->listPorts(other_bridge_);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(sw_->ensureBridge("bad/name", "netdev").error().code, ErrorCode::kInvalidArgument);
}

TEST_F(OvsdbSwitchIt, PortsAreWrittenExactlyAndUpdatedInPlace) {
  ASSERT_TRUE(sw_->ensureBridge(bridge_, "netdev").has_value());
  SwitchPort internal{.name = port_prefix_ + "i",
                      .type = "internal",
                      .ofport_request = 7,
                      .external_ids = {{"qiao-vm", "acme/web1"}}};
  SwitchPort hostile{.name = port_prefix_ + "h",
                     .type = "internal",
                     .external_ids = {{"quote", "a\"b'c"},
                                      {"backslash", "C:\\path\\"},
                                      {"newline", "line1\nline2\r\n"},
                                      {"unicode", "żółw 🐢 \u2028"},
                                      {"json", R"({"op":"delete","table":"Bridge"})"},
                                      {"shell", "$(rm -rf /); `id` -- set Bridge x"},
                                      {"k=\"v\",", ""}}};
  SwitchPort tunnel{.name = port_prefix_ + "v",
                    .type = "vxlan",
                    .ofport_request = 9,
                    .options = {{"remote_ip", "192.0.2.1"}, {"key", "42"}}};
  for (const auto& port : {internal, hostile, tunnel}) {
    auto ensured = sw_->ensurePort(bridge_, port);
    ASSERT_TRUE(ensured.has_value()) << port.name << ": " << ensured.error().describe();
  }

  // Read back by us, exactly.
  for (const auto& port : {internal, hostile, tunnel}) {
    auto state = findPort(*sw_, bridge_, port.name);
    ASSERT_TRUE(state.has_value()) << port.name;
    EXPECT_EQ(state->port, port) << port.name;
  }
  // And by ovs-vsctl, exactly.
  json ids = vsctlColumn("Interface", hostile.name, "external_ids");
  ASSERT_TRUE(ids.is_array() && ids.size() == 2 && ids[0] == "map") << ids.dump();
  std::map<std::string, std::string> read_back;
  for (const auto& pair : ids[1]) read_back[pair[0]] = pair[1];
  EXPECT_EQ(read_back, hostile.external_ids);

  // OVS gives the ports the numbers they asked for.
  ASSERT_TRUE(eventually(
      [&] {
        auto i = findPort(*sw_, bridge_, internal.name);
        auto v = findPort(*sw_, bridge_, tunnel.name);
        return i && i->ofport == 7 && v && v->ofport == 9;
      },
      milliseconds(15000)));
  EXPECT_TRUE(eventually(
      [&] {
        auto h = findPort(*sw_, bridge_, hostile.name);
        return h && h->ofport > 0 && h->error.empty();
      },
      milliseconds(15000)));

  // Ensured again: nothing changes, not even the rows.
  const json interface_uuid = vsctlColumn("Interface", internal.name, "_uuid");
  const json port_uuid = vsctlColumn("Port", internal.name, "_uuid");
  ASSERT_TRUE(sw_->ensurePort(bridge_, internal).has_value());
  // Changed: updated in place.
  SwitchPort changed = internal;
  changed.ofport_request = 8;
  changed.external_ids = {{"qiao-vm", "acme/web2"}, {"qiao-nic", "0"}};
  ASSERT_TRUE(sw_->ensurePort(bridge_, changed).has_value());
  EXPECT_EQ(vsctlColumn("Interface", internal.name, "_uuid"), interface_uuid);
  EXPECT_EQ(vsctlColumn("Port", internal.name, "_uuid"), port_uuid);
  auto state = findPort(*sw_, bridge_, internal.name);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->port, changed);
  EXPECT_TRUE(eventually(
      [&] {
        auto s = findPort(*sw_, bridge_, internal.name);
        return s && s->ofport == 8;
      },
      milliseconds(15000)));
  // Back to "OVS chooses": the request is an empty set again.
  changed.ofport_request = 0;
  ASSERT_TRUE(sw_->ensurePort(bridge_, changed).has_value());
  EXPECT_EQ(vsctlColumn("Interface", internal.name, "ofport_request"),
            json::parse(R"(["set",[]])"));

  // Moved to another bridge when ensured there.
  ASSERT_TRUE(sw_->ensureBridge(other_bridge_, "netdev").has_value());
  ASSERT_TRUE(sw_->ensurePort(other_bridge_, tunnel).has_value());
  EXPECT_EQ(vsctl({"port-to-br", tunnel.name}).out, other_bridge_ + "\n");
  EXPECT_FALSE(findPort(*sw_, bridge_, tunnel.name).has_value());

  // Removed, twice; a port on another bridge is not this bridge's to remove.
  for (int i = 0; i < 2; ++i) {
    auto removed = sw_->removePort(bridge_, hostile.name);
    ASSERT_TRUE(removed.has_value()) << removed.error().describe();
  }
  ASSERT_TRUE(sw_->removePort(bridge_, tunnel.name).has_value());
  EXPECT_TRUE(findPort(*sw_, other_bridge_, tunnel.name).has_value());
  auto listed = vsctl({"list-ports", bridge_});
  EXPECT_EQ(listed.out, internal.name + "\n");
  EXPECT_EQ(vsctl({"--if-exists", "get", "Interface", hostile.name, "name"}).out, "");
  EXPECT_TRUE(sw_->removePort(other_bridge_ + "x", "nope").has_value());
  EXPECT_EQ(sw_->ensurePort(other_bridge_ + "x", internal).error().code, ErrorCode::kNotFound);
}

// With a change handler the switch keeps a monitored view of the tables and lists ports from
// it: other clients' changes show once notified, its own at once (ovsdb-server sends the update
// before the reply to the transaction).
TEST_F(OvsdbSwitchIt, TheMonitoredViewFollowsEveryChange) {
  ASSERT_TRUE(sw_->ensureBridge(bridge_, "netdev").has_value());
  std::atomic<int> changes{0};
  sw_->setChangeHandler([&] { ++changes; });
  std::this_thread::sleep_for(milliseconds(200));
  changes = 0;
  const std::string name = port_prefix_ + "x";
  auto added = vsctl({"add-port", bridge_, name, "--", "set", "Interface", name, "type=internal"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_TRUE(eventually([&] { return changes > 0; }, milliseconds(5000)));
  auto seen = findPort(*sw_, bridge_, name);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->port.type, "internal");

  // Ours: in the view as soon as the call returns, exactly as written.
  for (int i = 0; i < 20; ++i) {
    SwitchPort mine{.name = port_prefix_ + "m" + std::to_string(i % 3),
                    .type = "internal",
                    .ofport_request = 200 + i,
                    .external_ids = {{"qiao-tenant", "t" + std::to_string(i)}}};
    ASSERT_TRUE(sw_->ensurePort(bridge_, mine).has_value());
    auto now = findPort(*sw_, bridge_, mine.name);
    ASSERT_TRUE(now.has_value()) << i;
    EXPECT_EQ(now->port.ofport_request, 200 + i);
    EXPECT_EQ(now->port.external_ids, mine.external_ids);
    if (i % 2 == 1) {
      ASSERT_TRUE(sw_->removePort(bridge_, mine.name).has_value());
      EXPECT_FALSE(findPort(*sw_, bridge_, mine.name).has_value()) << i;
    }
  }
  // Another client's edit and delete.
  ASSERT_EQ(vsctl({"set", "Interface", name, "external_ids:qiao-role=edited"}).exit_code, 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto p = findPort(*sw_, bridge_, name);
        return p && p->port.external_ids.contains("qiao-role");
      },
      milliseconds(5000)));
  ASSERT_EQ(vsctl({"del-port", bridge_, name}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return !findPort(*sw_, bridge_, name).has_value(); },
                         milliseconds(5000)));
  // A bridge deleted behind its back is reported as gone.
  ASSERT_EQ(vsctl({"del-br", bridge_}).exit_code, 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto listed = sw_->listPorts(bridge_);
        return !listed && listed.error().code == ErrorCode::kNotFound;
      },
      milliseconds(5000)));
}

// Two namespaces on a bridge whose flows commit IP in a zone; the installer forgets one
// address's connections and leaves the others.
TEST_F(OvsdbSwitchIt, ConntrackIsFlushedByZoneAndByAddress) {
  const std::string pid = std::to_string(::getpid() % 100000);
  const std::string ns1 = "qitct1-" + pid, ns2 = "qitct2-" + pid;
  const std::string v1 = "qctA" + pid, v2 = "qctB" + pid;
  const int zone = 3000 + static_cast<int>(::getpid() % 1000);
  auto ip = [](std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return run(args).exit_code;
  };
  ASSERT_EQ(ip({"netns", "add", ns1}), 0);
  ASSERT_EQ(ip({"netns", "add", ns2}), 0);
  struct Cleanup {
    std::function<void()> f;
    ~Cleanup() { f(); }
  } cleanup{[&] {
    ip({"link", "del", v1});
    ip({"link", "del", v2});
    ip({"netns", "del", ns1});
    ip({"netns", "del", ns2});
  }};
  int i = 1;
  for (const auto& [ns, v] : {std::pair{ns1, v1}, std::pair{ns2, v2}}) {
    ASSERT_EQ(ip({"link", "add", v, "type", "veth", "peer", "name", v + "n"}), 0);
    ASSERT_EQ(ip({"link", "set", v + "n", "netns", ns}), 0);
    ASSERT_EQ(ip({"-n", ns, "addr", "add", "10.79.0." + std::to_string(i++) + "/24", "dev",
                  v + "n"}),
              0);
    ASSERT_EQ(ip({"-n", ns, "link", "set", v + "n", "up"}), 0);
    ASSERT_EQ(ip({"link", "set", v, "up"}), 0);
  }
  ASSERT_TRUE(sw_->ensureBridge(bridge_, "netdev").has_value());
  ASSERT_TRUE(sw_->ensurePort(bridge_, {.name = v1, .ofport_request = 1}).has_value());
  ASSERT_TRUE(sw_->ensurePort(bridge_, {.name = v2, .ofport_request = 2}).has_value());
  auto flows = makeOfctlInstaller({});
  const std::string ct = "ct(commit,zone=" + std::to_string(zone) + ")";
  ASSERT_TRUE(flows->replace(bridge_, {"cookie=0x51a0000000000001,priority=10,in_port=1,ip,"
                                       "actions=" + ct + ",output:2",
                                       "cookie=0x51a0000000000001,priority=10,in_port=2,ip,"
                                       "actions=" + ct + ",output:1",
                                       "cookie=0x51a0000000000001,priority=5,in_port=1,"
                                       "actions=output:2",
                                       "cookie=0x51a0000000000001,priority=5,in_port=2,"
                                       "actions=output:1"})
                  .has_value());
  auto entries = [&] {
    return run({"ovs-appctl", "dpctl/dump-conntrack", "zone=" + std::to_string(zone)}).out;
  };
  auto ping = [&](const std::string& ns, const std::string& to) {
    return run({"ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", to}).exit_code;
  };
  ASSERT_EQ(ping(ns1, "10.79.0.2"), 0);  // 10.79.0.1 -> .2
  ASSERT_EQ(ping(ns2, "10.79.0.1"), 0);  // .2 -> .1
  ASSERT_EQ(countLines(entries()), 2) << entries();
  // By address: the connections from and to .1 - both here - go.
  ASSERT_TRUE(flows->flushZone(zone, "10.79.0.1").has_value());
  EXPECT_EQ(countLines(entries()), 0) << entries();
  // By address, another: only its own go. By zone: all.
  ASSERT_EQ(ping(ns1, "10.79.0.2"), 0);
  ASSERT_TRUE(flows->flushZone(zone, "10.79.0.3").has_value());
  EXPECT_EQ(countLines(entries()), 1) << entries();
  ASSERT_TRUE(flows->flushZone(zone).has_value());
  EXPECT_EQ(countLines(entries()), 0) << entries();
}

TEST_F(OvsdbSwitchIt, ReconnectsByItselfAfterOvsRestarts) {
  ASSERT_TRUE(sw_->ensureBridge(bridge_, "netdev").has_value());
  std::atomic<int> changes{0};
  sw_->setChangeHandler([&] { ++changes; });
  std::this_thread::sleep_for(milliseconds(200));
  changes = 0;
  auto restarted = run({kOvsCtl, "restart", "--system-id=random"}, 120000);
  ASSERT_EQ(restarted.exit_code, 0) << restarted.out << restarted.err;
  // No call of ours in between: the client noticed, reconnected, set its monitor up again.
  EXPECT_TRUE(eventually([&] { return changes > 0; }, milliseconds(30000)));
  auto pinged = sw_->ping();
  EXPECT_TRUE(pinged.has_value()) << pinged.error().describe();
  auto ports = sw_->listPorts(bridge_);
  EXPECT_TRUE(ports.has_value()) << ports.error().describe();
  // And keeps working for changes (its view too).
  const int before = changes;
  ASSERT_TRUE(
      sw_->ensurePort(bridge_, {.name = port_prefix_ + "r", .type = "internal"}).has_value());
  EXPECT_TRUE(findPort(*sw_, bridge_, port_prefix_ + "r").has_value());
  EXPECT_TRUE(eventually([&] { return changes > before; }, milliseconds(5000)));
}

}  // namespace
}  // namespace qiao::testing
