// Tenant networks on the stack's Open vSwitch through a real qiaod, with real guests (QEMU,
// TCG) on their own bridge: guests get their fixed addresses by DHCP and reach each other; a
// guest of another tenant on the same subnet, with the same address as one of them, reaches
// neither; a guest that changes its address or MAC is cut off; flows wiped by hand, a port
// deleted by hand and an OVS restart are repaired by qiaod within seconds and the guests talk
// again; bad input changes nothing in OVS.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "network/netdev.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::vector<std::string> qiaoFlows(const std::string& bridge) {
  auto r = runCommand({"ovs-ofctl", "-O", "OpenFlow14", "--no-stats", "dump-flows", bridge,
                       "cookie=0x51a0000000000001/-1"});
  std::vector<std::string> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.find("cookie=") != std::string::npos) out.push_back(line);
  }
  std::sort(out.begin(), out.end());  // OVS lists them in its classifier's order
  return out;
}

std::string ovsPorts(const std::string& bridge) {
  return runCommand({"ovs-vsctl", "--timeout=10", "list-ports", bridge}).out;
}

// Polls `done` every 50 ms until it holds or `limit` passes; the time it took, or -1.
template <typename F>
double secondsUntil(F done, std::chrono::milliseconds limit) {
  auto start = Clock::now();
  while (Clock::now() - start < limit) {
    if (done()) return std::chrono::duration<double>(Clock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

class TenantNetworkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bridge_ = "qit-" + randomSuffix(6);
    qiaod_ = new Qiaod(stackNetworkConfig(bridge_));
    qiaod_->start();
  }
  static void TearDownTestSuite() {
    if (qiaod_ != nullptr) {
      auto c = qiaod_->adminClient();
      for (const char* t : {"acme", "umbrella"}) {
        auto vms = call(c, "GET", std::string("/v1/vms?tenant=") + t);
        for (const auto& vm : vms.body.value("items", json::array())) {
          auto r = call(c, "DELETE", "/v1/vms/" + vm["name"].get<std::string>() +
                                         "?force=true&tenant=" + t);
          if (r.status == 202) waitTask(c, r.body["id"]);
        }
        auto nets = call(c, "GET", std::string("/v1/networks?tenant=") + t);
        for (const auto& n : nets.body.value("items", json::array())) {
          auto r = call(c, "DELETE",
                        "/v1/networks/" + n["name"].get<std::string>() + "?tenant=" + t);
          if (r.status == 202) waitTask(c, r.body["id"]);
        }
      }
    }
    delete qiaod_;
    qiaod_ = nullptr;
    runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge_});
  }
  void SetUp() override {
    if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  }
  ApiClient admin() { return qiaod_->adminClient(); }

  json makeNetwork(const json& spec) {
    auto c = admin();
    auto r = call(c, "POST", "/v1/networks", spec.dump());
    EXPECT_EQ(r.status, 202) << r.raw;
    json task = waitTask(c, r.body.value("id", ""));
    EXPECT_EQ(task["state"], "succeeded") << task.dump();
    return call(c, "GET", "/v1/networks/" + spec["name"].get<std::string>() +
                              "?tenant=" + spec["tenant"].get<std::string>())
        .body;
  }
  // A guest on `network` with a fixed address, taking its lease by DHCP, then running `script`.
  void makeGuest(const std::string& name, const std::string& tenant, const std::string& network,
                 const std::string& ip, const std::string& script) {
    auto c = admin();
    json spec = guestSpec(name, tenant, "qiao.dhcp=1 " + guestRun(script));
    spec["nics"] = json::array({{{"network", network}, {"ip", ip}}});
    auto r = call(c, "POST", "/v1/vms", spec.dump());
    ASSERT_EQ(r.status, 202) << r.raw;
    json task = waitTask(c, r.body.value("id", ""), std::chrono::seconds(180));
    ASSERT_EQ(task["state"], "succeeded") << task.dump();
  }
  std::string console(const std::string& name, const std::string& tenant,
                      const std::string& needle, int count = 1, int seconds = 120) {
    auto c = admin();
    return waitConsole(c, name, tenant, needle, count, std::chrono::seconds(seconds));
  }

  static Qiaod* qiaod_;
  static std::string bridge_;
};
Qiaod* TenantNetworkTest::qiaod_ = nullptr;
std::string TenantNetworkTest::bridge_;

// A guest script: pings ADDR every half second, printing "P <n> ok|fail", for `rounds` rounds.
std::string pingLoop(const std::string& addr, int rounds) {
  return "i=0; while [ $i -lt " + std::to_string(rounds) +
         " ]; do if ping -c1 -W1 " + addr +
         " >/dev/null 2>&1; then echo \"P $i ok\"; else echo \"P $i fail\"; fi;"
         " i=$((i+1)); sleep 0.5; done";
}

TEST_F(TenantNetworkTest, GuestsGetTheirAddressesTalkAndStayApartFromOtherTenants) {
  json a = makeNetwork({{"name", "net"}, {"tenant", "acme"}, {"subnet", "10.50.0.0/24"}});
  json b = makeNetwork({{"name", "net"}, {"tenant", "umbrella"}, {"subnet", "10.50.0.0/24"}});
  EXPECT_EQ(a["gateway"], "10.50.0.1");
  EXPECT_EQ(a["dhcp_server"], "10.50.0.2");
  EXPECT_EQ(a["mtu"], 1450);
  EXPECT_NE(a["segment_id"], b["segment_id"]);

  // web2 of acme and intruder of umbrella share 10.50.0.11.
  makeGuest("web2", "acme", "net", "10.50.0.11", "sleep 600");
  makeGuest("intruder", "umbrella", "net", "10.50.0.11",
            "for i in $(seq 1 20); do ping -c1 -W1 10.50.0.10 >/dev/null 2>&1 && echo"
            " REACHED-WEB1; ping -c1 -W1 10.50.0.2 >/dev/null 2>&1 && echo DHCP-OK; done;"
            " arping -c 2 -w 3 -I eth0 10.50.0.10 && echo ARP-ANSWERED; echo DONE");
  makeGuest("web1", "acme", "net", "10.50.0.10",
            "for i in $(seq 1 40); do ping -c1 -W1 10.50.0.11 >/dev/null 2>&1 && break; done;"
            " ping -c 3 -W 2 10.50.0.11 && echo PING-WEB2-OK; ip neigh; " +
                pingLoop("10.50.0.11", 240));

  // "P 0 " comes after PING-WEB2-OK and the neighbour table.
  std::string web1 = console("web1", "acme", "run: P 0 ");
  EXPECT_NE(web1.find("lease ip=10.50.0.10"), std::string::npos) << web1;
  ASSERT_NE(web1.find("PING-WEB2-OK"), std::string::npos) << web1;
  // web1 resolved 10.50.0.11 to web2's MAC, never to the intruder's.
  auto c = admin();
  json ports = call(c, "GET", "/v1/networks/net?tenant=acme").body["ports"];
  std::string web2_mac;
  for (const auto& p : ports) {
    if (p["vm"] == "web2") web2_mac = p["mac"];
  }
  ASSERT_FALSE(web2_mac.empty()) << ports.dump();
  EXPECT_NE(web1.find(web2_mac), std::string::npos) << web1;

  std::string intruder = console("intruder", "umbrella", "run: DONE", 1, 180);
  EXPECT_NE(intruder.find("lease ip=10.50.0.11"), std::string::npos) << intruder;
  EXPECT_NE(intruder.find("DHCP-OK"), std::string::npos) << intruder;  // its own network works
  EXPECT_EQ(intruder.find("REACHED-WEB1"), std::string::npos) << intruder;
  EXPECT_EQ(intruder.find("ARP-ANSWERED"), std::string::npos) << intruder;
}

// A script may create a network and, at once, a VM on it: the VM's create waits for the
// network (it used to be refused: "nics[0]: network acme/fresh is creating").
TEST_F(TenantNetworkTest, AVmCreatedRightAfterItsNetworkWaitsForItAndTakesItsLease) {
  auto c = admin();
  json net = {{"name", "fresh"}, {"tenant", "acme"}, {"subnet", "10.57.0.0/24"}};
  auto n = call(c, "POST", "/v1/networks", net.dump());
  ASSERT_EQ(n.status, 202) << n.raw;
  json spec = guestSpec("fresh1", "acme", "qiao.dhcp=1 " + guestRun("echo FRESH-UP"));
  spec["nics"] = json::array({{{"network", "fresh"}}});
  auto v = call(c, "POST", "/v1/vms", spec.dump());
  ASSERT_EQ(v.status, 202) << v.raw;
  json task = waitTask(c, v.body.value("id", ""), std::chrono::seconds(180));
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  EXPECT_EQ(waitTask(c, n.body["id"])["state"], "succeeded");
  std::string log = console("fresh1", "acme", "run: FRESH-UP");
  EXPECT_NE(log.find("lease ip=10.57.0."), std::string::npos) << log;
  // Whether the create had to wait depends on which task ran first; say which it was.
  auto waited = runCommand({"sqlite3", qiaod_->dir() + "/state/qiao.db",
                            "SELECT count(*) FROM journal WHERE task_id = '" +
                                task["id"].get<std::string>() + "' AND step = 'wait'"});
  std::cout << "the create " << (waited.out.starts_with("0") ? "found the network ready"
                                                              : "waited for the network")
            << "\n";
  auto d = call(c, "DELETE", "/v1/vms/fresh1?tenant=acme&force=true");
  ASSERT_EQ(d.status, 202) << d.raw;
  EXPECT_EQ(waitTask(c, d.body["id"])["state"], "succeeded");
}

TEST_F(TenantNetworkTest, FlowsAndPortsComeBackByThemselves) {
  // web1 of the previous test pings web2 twice a second for two minutes.
  auto oks = [&] { return countOccurrences(console("web1", "acme", " ok", 1, 5), " ok"); };
  ASSERT_GT(oks(), 0);
  const auto installed = qiaoFlows(bridge_);
  ASSERT_GT(installed.size(), 10u);

  // Every flow wiped by hand.
  ASSERT_EQ(runCommand({"ovs-ofctl", "del-flows", bridge_}).exit_code, 0);
  double back = secondsUntil([&] { return qiaoFlows(bridge_).size() == installed.size(); },
                             std::chrono::seconds(10));
  std::printf("flows back %.2f s after a wipe\n", back);
  EXPECT_GE(back, 0);
  EXPECT_LT(back, 2.0);
  int before = oks();
  EXPECT_GE(secondsUntil([&] { return oks() > before + 1; }, std::chrono::seconds(10)), 0);

  // A guest's port deleted by hand.
  auto c = admin();
  json ports = call(c, "GET", "/v1/networks/net?tenant=acme").body["ports"];
  std::string tap;
  for (const auto& p : ports) {
    if (p["vm"] == "web2") tap = p["device"];
  }
  ASSERT_FALSE(tap.empty());
  ASSERT_EQ(runCommand({"ovs-vsctl", "--timeout=10", "del-port", bridge_, tap}).exit_code, 0);
  back = secondsUntil([&] { return ovsPorts(bridge_).find(tap) != std::string::npos; },
                      std::chrono::seconds(10));
  std::printf("port back %.2f s after a delete\n", back);
  EXPECT_GE(back, 0);
  EXPECT_LT(back, 2.0);
  before = oks();
  EXPECT_GE(secondsUntil([&] { return oks() > before + 1; }, std::chrono::seconds(10)), 0);

  // ovs-vswitchd and ovsdb-server restarted: OVS comes back with no flows.
  auto restart = runCommand({sourceDir() + "/scripts/stack", "restart-ovs"}, 120000);
  ASSERT_EQ(restart.exit_code, 0) << restart.out << restart.err;
  back = secondsUntil([&] { return qiaoFlows(bridge_).size() == installed.size(); },
                      std::chrono::seconds(10));
  std::printf("flows back %.2f s after OVS restarted\n", back);
  EXPECT_GE(back, 0);
  EXPECT_LT(back, 2.0);
  before = oks();
  EXPECT_GE(secondsUntil([&] { return oks() > before + 1; }, std::chrono::seconds(15)), 0)
      << console("web1", "acme", "P ", 1, 1);
  EXPECT_EQ(qiaoFlows(bridge_), installed);

  // The network's dnsmasq killed: a new one serves within a check round.
  const std::string uuid = call(c, "GET", "/v1/networks/net?tenant=acme").body["uuid"];
  const std::string pid_file = "/run/qiao/dhcp/" + uuid + "/pid";
  const std::string old_pid = readFile(pid_file);
  ASSERT_FALSE(old_pid.empty());
  ASSERT_EQ(::kill(std::stoi(old_pid), SIGKILL), 0);
  back = secondsUntil(
      [&] {
        std::string now = readFile(pid_file);
        return !now.empty() && now != old_pid &&
               std::filesystem::exists("/proc/" + std::to_string(std::stoi(now)));
      },
      std::chrono::seconds(10));
  std::printf("DHCP server back %.2f s after a kill -9\n", back);
  EXPECT_GE(back, 0);
  EXPECT_LT(back, 5.0);
}

TEST_F(TenantNetworkTest, SpoofedAddressesAndMacsAreDropped) {
  // A guest that takes another address, then another MAC, is cut off; with its own it talks.
  makeGuest("spoofer", "acme", "net", "10.50.0.20",
            "for i in $(seq 1 40); do ping -c1 -W1 10.50.0.11 >/dev/null 2>&1 && break; done;"
            " ping -c2 -W1 10.50.0.11 >/dev/null 2>&1 && echo OWN-OK;"
            " ip addr flush dev eth0; ip addr add 10.50.0.21/24 dev eth0;"
            " ping -c3 -W1 10.50.0.11 >/dev/null 2>&1 && echo IP-SPOOF-PASSED;"
            " ip addr flush dev eth0; ip addr add 10.50.0.20/24 dev eth0;"
            " ip link set eth0 down; ip link set eth0 address 02:00:00:00:00:99;"
            " ip link set eth0 up; ping -c3 -W1 10.50.0.11 >/dev/null 2>&1 &&"
            " echo MAC-SPOOF-PASSED; echo DONE");
  std::string out = console("spoofer", "acme", "run: DONE", 1, 180);
  EXPECT_NE(out.find("OWN-OK"), std::string::npos) << out;
  EXPECT_EQ(out.find("IP-SPOOF-PASSED"), std::string::npos) << out;
  EXPECT_EQ(out.find("MAC-SPOOF-PASSED"), std::string::npos) << out;
}

TEST_F(TenantNetworkTest, SecurityGroupsOpenOnlyTheirPortsAndChangesApplyToRunningGuests) {
  auto c = admin();
  // "web": TCP 8080 and ICMP from anywhere; no egress rule at all (replies still go out).
  json web = {{"name", "web"},
              {"tenant", "acme"},
              {"rules",
               {{{"direction", "ingress"}, {"protocol", "tcp"}, {"port_min", 8080}},
                {{"direction", "ingress"}, {"protocol", "icmp"}}}}};
  auto made = call(c, "POST", "/v1/security-groups", web.dump());
  ASSERT_EQ(made.status, 201) << made.raw;
  EXPECT_EQ(made.body["rules"][0]["port_max"], 8080);

  // srv serves 8080 and 9090 (busybox nc, one answer a connection, again and again).
  {
    json spec = guestSpec("srv", "acme",
                          "qiao.dhcp=1 " + guestRun("for p in 8080 9090; do (while true; do nc -l"
                                                    " -p $p -e echo HELLO-$p; done) & done;"
                                                    " echo LISTENING; sleep 900"));
    spec["nics"] = json::array(
        {{{"network", "net"}, {"ip", "10.50.0.30"}, {"security_groups", {"web"}}}});
    auto r = call(c, "POST", "/v1/vms", spec.dump());
    ASSERT_EQ(r.status, 202) << r.raw;
    ASSERT_EQ(waitTask(c, r.body["id"], std::chrono::seconds(180))["state"], "succeeded");
  }
  console("srv", "acme", "run: LISTENING");
  // cli (default group) tries both ports every second and says what answered.
  makeGuest("cli", "acme", "net", "10.50.0.31",
            "for i in $(seq 1 40); do ping -c1 -W1 10.50.0.30 >/dev/null 2>&1 && break; done;"
            " i=0; while [ $i -lt 150 ]; do for p in 8080 9090; do"
            " if nc -w 2 10.50.0.30 $p </dev/null | grep -q HELLO-$p; then echo \"C$i $p open\";"
            " else echo \"C$i $p closed\"; fi; done; i=$((i+1)); sleep 1; done");
  std::string out = console("cli", "acme", "9090 closed", 3, 180);
  EXPECT_NE(out.find("8080 open"), std::string::npos) << out;
  EXPECT_EQ(out.find("9090 open"), std::string::npos) << out;
  EXPECT_EQ(out.find("8080 closed"), std::string::npos) << out;

  // 9090 opened on the running guest: the flows of every port in "web" change at once.
  json rules = {{"rules",
                 {{{"direction", "ingress"}, {"protocol", "tcp"}, {"port_min", 8080}},
                  {{"direction", "ingress"}, {"protocol", "tcp"}, {"port_min", 9000},
                   {"port_max", 9099}},
                  {{"direction", "ingress"}, {"protocol", "icmp"}}}}};
  auto put = call(c, "PUT", "/v1/security-groups/web?tenant=acme", rules.dump());
  ASSERT_EQ(put.status, 200) << put.raw;
  out = console("cli", "acme", "9090 open", 2, 60);
  EXPECT_GE(countOccurrences(out, "9090 open"), 2) << out;

  // A group in use is not deleted; the VM names it.
  auto del = call(c, "DELETE", "/v1/security-groups/web?tenant=acme");
  EXPECT_EQ(del.status, 409) << del.raw;
  EXPECT_NE(del.raw.find("srv"), std::string::npos) << del.raw;
  // Bad rules are refused and change nothing.
  for (const json& bad : {json{{"rules", {{{"direction", "sideways"}}}}},
                          json{{"rules", {{{"direction", "ingress"}, {"port_min", 80}}}}},
                          json{{"rules", {{{"direction", "ingress"}, {"protocol", "tcp"},
                                           {"port_min", 90}, {"port_max", 80}}}}},
                          json{{"rules", {{{"direction", "ingress"},
                                           {"remote_cidr", "10.0.0.1/8"}}}}},
                          json{{"rules", {{{"direction", "ingress"},
                                           {"remote_group", "x;drop"}}}}}}) {
    auto r = call(c, "PUT", "/v1/security-groups/web?tenant=acme", bad.dump());
    EXPECT_EQ(r.status, 400) << bad.dump() << " -> " << r.raw;
  }
  EXPECT_EQ(call(c, "GET", "/v1/security-groups/web?tenant=acme").body["rules"].size(), 3u);
}

TEST_F(TenantNetworkTest, QiaoctlManagesNetworksAndSecurityGroups) {
  const auto& op = qiaod_->identity("net-op", "operator", {"initech"});
  auto made = qiaod_->qiaoctl(op, {"network", "create", "lab", "--subnet", "10.80.0.0/24",
                                   "--type", "geneve", "--dns", "10.80.0.53", "--wait"});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  EXPECT_NE(made.out.find("10.80.0.0/24"), std::string::npos) << made.out;
  EXPECT_NE(made.out.find("ready"), std::string::npos) << made.out;
  auto listed = qiaod_->qiaoctl(op, {"network", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("lab"), std::string::npos);
  EXPECT_NE(listed.out.find("geneve"), std::string::npos);
  EXPECT_NE(listed.out.find("10.80.0.2"), std::string::npos) << listed.out;  // DHCP server

  auto group = qiaod_->qiaoctl(op, {"security-group", "create", "ssh", "--rule",
                                    "ingress:tcp:22", "--rule", "ingress:udp:5000-5010:10.0.0.0/8",
                                    "--rule", "egress"});
  ASSERT_EQ(group.exit_code, 0) << group.out << group.err;
  auto shown = qiaod_->qiaoctl(op, {"security-group", "get", "ssh"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("5000-5010"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("10.0.0.0/8"), std::string::npos) << shown.out;
  auto bad = qiaod_->qiaoctl(op, {"security-group", "set-rules", "ssh", "--rule", "in:tcp:x"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("PORTS"), std::string::npos) << bad.err;
  auto set = qiaod_->qiaoctl(op, {"security-group", "set-rules", "ssh", "--rule",
                                  "ingress:tcp:2222"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  shown = qiaod_->qiaoctl(op, {"security-group", "get", "ssh", "-o", "json"});
  EXPECT_EQ(json::parse(shown.out)["rules"].size(), 1u) << shown.out;
  auto gone = qiaod_->qiaoctl(op, {"security-group", "delete", "ssh"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  auto net_gone = qiaod_->qiaoctl(op, {"network", "delete", "lab", "--wait"});
  EXPECT_EQ(net_gone.exit_code, 0) << net_gone.err;
  // Another tenant's operator sees none of it.
  const auto& other = qiaod_->identity("other-op", "operator", {"umbrella"});
  auto hidden = qiaod_->qiaoctl(other, {"network", "get", "net", "--tenant", "acme"});
  EXPECT_NE(hidden.exit_code, 0);
}

TEST_F(TenantNetworkTest, BadInputIsRefusedAndChangesNothingInOvs) {
  auto c = admin();
  const std::string ports_before = ovsPorts(bridge_);
  const auto flows_before = qiaoFlows(bridge_);
  struct Case {
    json body;
    int status;
    const char* says;
  };
  const std::vector<Case> cases = {
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/33"}}, 400, "CIDR"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.5/24"}}, 400, "host bits"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.50.0.0/16"}}, 409, "overlaps"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"}, {"type", "vlan"},
        {"segment_id", 4095}},
       400, "segment_id"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"}, {"segment_id", 0}},
       400, "segment_id"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"},
        {"gateway", "10.61.0.1"}},
       400, "gateway"},
      {{{"name", "x\"; del-br"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"}}, 400, "name"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"}, {"type", "gre"}},
       400, "type"},
      {{{"name", "x1"}, {"tenant", "acme"}, {"subnet", "10.60.0.0/24"},
        {"dns", {"1.1.1.1,actions=flood"}}},
       400, "dns"},
      {{{"name", "net"}, {"tenant", "acme"}, {"subnet", "10.70.0.0/24"}}, 409, "exists"},
  };
  for (const auto& k : cases) {
    auto r = call(c, "POST", "/v1/networks", k.body.dump());
    EXPECT_EQ(r.status, k.status) << k.body.dump() << " -> " << r.raw;
    EXPECT_NE(r.raw.find(k.says), std::string::npos) << k.body.dump() << " -> " << r.raw;
  }
  struct NicCase {
    json nic;
    int status;
    const char* says;
  };
  const std::vector<NicCase> nics = {
      {{{"network", "net"}, {"ip", "10.99.0.5"}}, 400, "not a host address"},
      {{{"network", "net"}, {"ip", "10.50.0.255"}}, 400, "not a host address"},
      {{{"network", "net"}, {"ip", "10.50.0.1"}}, 409, "gateway"},
      {{{"network", "net"}, {"ip", "10.50.0.010"}}, 400, "IPv4"},
      {{{"network", "net"}, {"mac", "01:00:5e:00:00:01"}}, 400, "multicast"},
      {{{"network", "net"}, {"mac", "02:00:00:00:00:01,actions=flood"}}, 400, "MAC"},
      {{{"network", "nope"}}, 400, "no network named"},
      {{{"network", "net\\x"}}, 400, "network"},
  };
  for (const auto& k : nics) {
    json spec = guestSpec("badnic", "acme");
    spec["nics"] = json::array({k.nic});
    auto r = call(c, "POST", "/v1/vms", spec.dump());
    EXPECT_EQ(r.status, k.status) << k.nic.dump() << " -> " << r.raw;
    EXPECT_NE(r.raw.find(k.says), std::string::npos) << k.nic.dump() << " -> " << r.raw;
  }
  // A duplicate fixed address is accepted at submit and refused by the task, leaving no VM.
  json dup = guestSpec("dupip", "acme");
  dup["nics"] = json::array({{{"network", "net"}, {"ip", "10.50.0.11"}}});
  auto r = call(c, "POST", "/v1/vms", dup.dump());
  ASSERT_EQ(r.status, 202) << r.raw;
  json task = waitTask(c, r.body["id"]);
  EXPECT_EQ(task["state"], "failed");
  EXPECT_NE(task.dump().find("10.50.0.11 is taken"), std::string::npos) << task.dump();
  EXPECT_EQ(call(c, "GET", "/v1/vms/dupip?tenant=acme").status, 404);
  // A network with ports is not deleted.
  auto del = call(c, "DELETE", "/v1/networks/net?tenant=acme");
  EXPECT_EQ(del.status, 409) << del.raw;
  EXPECT_NE(del.raw.find("web1"), std::string::npos) << del.raw;

  std::this_thread::sleep_for(std::chrono::seconds(1));  // a check round
  EXPECT_EQ(ovsPorts(bridge_), ports_before);
  EXPECT_EQ(qiaoFlows(bridge_), flows_before);
}

// The devices on `bridge` (OVS ports) and the in_port numbers of Qiao's flows must be exactly
// those of the store's ports plus the network's DHCP port; every port's tap must exist.
void expectSwitchMatchesStore(ApiClient& c, const std::string& bridge, const std::string& context) {
  auto network = call(c, "GET", "/v1/networks/crash?tenant=acme").body;
  std::set<std::string> want_ports = {"qd-" + network["uuid"].get<std::string>().substr(0, 8)};
  std::set<std::string> want_inports;
  for (const auto& p : network["ports"]) {
    want_ports.insert(p["device"].get<std::string>());
    want_inports.insert("in_port=" + std::to_string(p["ofport"].get<int64_t>()));
    EXPECT_TRUE(std::filesystem::exists("/sys/class/net/" + p["device"].get<std::string>()))
        << context << ": tap " << p["device"] << " missing";
  }
  std::set<std::string> ports;
  std::istringstream in(ovsPorts(bridge));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ports.insert(line);
  }
  EXPECT_EQ(ports, want_ports) << context;
  std::set<std::string> inports;
  for (const auto& f : qiaoFlows(bridge)) {
    size_t at = f.find("in_port=");
    if (at == std::string::npos || f.find("priority=100,in_port=") == std::string::npos) continue;
    size_t end = f.find_first_of(", ", at);
    inports.insert(f.substr(at, end - at));
  }
  EXPECT_EQ(inports, want_inports) << context;
}

TEST(NetworkCrash, NicPlugsKilledAtEveryStepLeaveSwitchAndStoreAgreeing) {
  if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  const std::string bridge = "qic-" + randomSuffix(6);
  Qiaod q(stackNetworkConfig(bridge));
  q.start();
  {
    auto c = q.adminClient();
    auto r = call(c, "POST", "/v1/networks",
                  json({{"name", "crash"}, {"tenant", "acme"}, {"subnet", "10.90.0.0/24"}}).dump());
    ASSERT_EQ(r.status, 202) << r.raw;
    ASSERT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
  }
  const std::vector<std::string> failpoints = {
      "vm.create/nics:before", "vm.create/nics:after", "vm.create/define:before",
      "vm.delete/nics:before", "vm.delete/nics:after"};
  std::mt19937 rng{std::random_device{}()};
  int deaths = 0;
  for (size_t round = 0; round < failpoints.size() + 3; ++round) {
    const bool use_failpoint = round < failpoints.size();
    const std::string fp = use_failpoint ? failpoints[round] : "";
    const bool deleting = fp.starts_with("vm.delete");
    const std::string vm = "c" + std::to_string(round);
    const std::string context = "round " + std::to_string(round) + " " +
                                (use_failpoint ? fp : std::string("random kill"));
    SCOPED_TRACE(context);
    if (deleting) {  // a VM with two NICs to delete
      auto c = q.adminClient();
      json spec = guestSpec(vm, "acme");
      spec["nics"] = json::array({{{"network", "crash"}}, {{"network", "crash"}}});
      auto r = call(c, "POST", "/v1/vms?start=false", spec.dump());
      ASSERT_EQ(r.status, 202) << r.raw;
      ASSERT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
      q.kill9();
    } else if (q.running()) {
      q.kill9();
    }
    q.start(use_failpoint ? std::vector<std::string>{"QIAO_FAILPOINT=" + fp}
                          : std::vector<std::string>{});
    auto c = q.adminClient();
    std::thread killer;
    if (!use_failpoint) {
      const int delay_ms = static_cast<int>(rng() % 400);
      killer = std::thread([&q, delay_ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        q.kill9();
      });
    }
    bool died;
    if (deleting) {
      died = runUntilDeath(q, c, "DELETE", "/v1/vms/" + vm + "?tenant=acme", "");
    } else {
      json spec = guestSpec(vm, "acme");
      spec["nics"] = json::array({{{"network", "crash"}}, {{"network", "crash"}}});
      died = runUntilDeath(q, c, "POST", "/v1/vms?start=false", spec.dump());
    }
    if (killer.joinable()) killer.join();
    deaths += died;
    if (q.running()) q.kill9();
    q.start();
    auto c2 = q.adminClient();
    ASSERT_TRUE(waitAllTasksDone(c2, std::chrono::seconds(90)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // a check round
    expectSwitchMatchesStore(c2, bridge, context);
    // A VM that exists has both its NICs; one that does not has none.
    auto got = call(c2, "GET", "/v1/vms/" + vm + "?tenant=acme");
    if (got.status == 200) {
      EXPECT_EQ(got.body["ports"].size(), 2u) << got.raw;
    }
  }
  EXPECT_GE(deaths, 5) << "too few rounds actually killed qiaod";

  // Last: a running guest plugged by a qiaod killed right after its NICs: the resumed task
  // starts it, and it takes its lease and reaches its DHCP server.
  q.kill9();
  q.start({"QIAO_FAILPOINT=vm.create/nics:after"});
  {
    auto c = q.adminClient();
    json spec = guestSpec("alive", "acme",
                          "qiao.dhcp=1 " + guestRun("ping -c 3 -W 2 10.90.0.2 && echo DHCP-REACHED"));
    spec["nics"] = json::array({{{"network", "crash"}}});
    EXPECT_TRUE(runUntilDeath(q, c, "POST", "/v1/vms", spec.dump()));
  }
  if (q.running()) q.kill9();
  q.start();
  auto c = q.adminClient();
  ASSERT_TRUE(waitAllTasksDone(c, std::chrono::seconds(120)));
  std::string out = waitConsole(c, "alive", "acme", "run exit=", 1, std::chrono::seconds(120));
  EXPECT_NE(out.find("DHCP-REACHED"), std::string::npos) << out;
  expectSwitchMatchesStore(c, bridge, "after the guest");

  // Clean up: VMs, then the network (its DHCP namespace), then the bridge.
  auto vms = call(c, "GET", "/v1/vms?tenant=acme");
  for (const auto& v : vms.body.value("items", json::array())) {
    auto r = call(c, "DELETE", "/v1/vms/" + v["name"].get<std::string>() + "?tenant=acme&force=true");
    if (r.status == 202) waitTask(c, r.body["id"]);
  }
  auto r = call(c, "DELETE", "/v1/networks/crash?tenant=acme");
  if (r.status == 202) EXPECT_EQ(waitTask(c, r.body["id"])["state"], "succeeded");
  q.stopGracefully();
  runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge});
}

// Runs `ip ARGS...`; fails the test on an error.
void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(VlanUplink, GuestsReachAHostOnTheirVlanAndOnlyThere) {
  if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  const std::string r = randomSuffix(6);
  const std::string bridge = "qiv-" + r, provider = "qip-" + r;
  const std::string uplink = "qvu" + r, trunk = "qvt" + r;
  const std::string access = "qva" + r, host = "qvh" + r, ns = "qext-" + r, ext = "qxb-" + r;
  const int vlan = 200 + static_cast<int>(std::random_device{}() % 2000);
  // The physical network: a switch of its own (a standalone OVS bridge; this kernel has no
  // 8021q) with Qiao's uplink on a trunk port, and a host in a namespace on an access port of
  // VLAN `vlan` only.
  ip({"netns", "add", ns});
  ip({"link", "add", uplink, "type", "veth", "peer", "name", trunk});
  ip({"link", "add", access, "type", "veth", "peer", "name", host});
  for (const auto& dev : {uplink, trunk, access, host}) ASSERT_TRUE(disableTxChecksum(dev));
  ip({"link", "set", host, "netns", ns});
  for (const auto& dev : {uplink, trunk, access}) ip({"link", "set", dev, "up"});
  ip({"-n", ns, "addr", "add", "10.55.0.200/24", "dev", host});
  ip({"-n", ns, "link", "set", host, "up"});
  auto made_ext = runCommand({"ovs-vsctl", "--timeout=10", "add-br", ext, "--", "set", "bridge",
                              ext, "datapath_type=netdev", "--", "add-port", ext, trunk, "--",
                              "add-port", ext, access, "tag=" + std::to_string(vlan)});
  ASSERT_EQ(made_ext.exit_code, 0) << made_ext.err;

  Qiaod q(stackNetworkConfig(bridge) + "vlan_uplink = \"" + uplink + "\"\nvlan_bridge = \"" +
          provider + "\"\n");
  q.start();
  auto c = q.adminClient();
  auto net = [&](const std::string& name, const std::string& tenant, int segment) {
    auto made = call(c, "POST", "/v1/networks",
                     json({{"name", name}, {"tenant", tenant}, {"type", "vlan"},
                           {"segment_id", segment}, {"subnet", "10.55.0.0/24"}})
                         .dump());
    ASSERT_EQ(made.status, 202) << made.raw;
    ASSERT_EQ(waitTask(c, made.body["id"])["state"], "succeeded");
  };
  net("prov", "acme", vlan);
  net("prov", "umbrella", vlan + 1);
  auto group = call(c, "POST", "/v1/security-groups",
                    json({{"name", "ext"},
                          {"tenant", "acme"},
                          {"rules",
                           {{{"direction", "ingress"},
                             {"protocol", "icmp"},
                             {"remote_cidr", "10.55.0.200/32"}}}}})
                        .dump());
  ASSERT_EQ(group.status, 201) << group.raw;
  auto guest = [&](const std::string& name, const std::string& tenant, json groups) {
    json spec = guestSpec(name, tenant,
                          "qiao.dhcp=1 " + guestRun("for i in $(seq 1 20); do ping -c1 -W1"
                                                    " 10.55.0.200 >/dev/null 2>&1 && echo"
                                                    " EXT-OK && break; done; echo DONE"));
    json nic = {{"network", "prov"}, {"ip", "10.55.0.10"}};
    if (!groups.is_null()) nic["security_groups"] = groups;
    spec["nics"] = json::array({nic});
    auto made = call(c, "POST", "/v1/vms", spec.dump());
    ASSERT_EQ(made.status, 202) << made.raw;
    ASSERT_EQ(waitTask(c, made.body["id"], std::chrono::seconds(180))["state"], "succeeded");
  };
  guest("vg", "acme", json::array({"default", "ext"}));
  guest("vg2", "umbrella", nullptr);  // same address, other tenant, other VLAN
  std::string vg = waitConsole(c, "vg", "acme", "run: DONE", 1, std::chrono::seconds(180));
  std::string vg2 = waitConsole(c, "vg2", "umbrella", "run: DONE", 1, std::chrono::seconds(180));
  EXPECT_NE(vg.find("lease ip=10.55.0.10"), std::string::npos) << vg;
  EXPECT_NE(vg.find("EXT-OK"), std::string::npos) << vg;
  EXPECT_NE(vg2.find("lease ip=10.55.0.10"), std::string::npos) << vg2;
  EXPECT_EQ(vg2.find("EXT-OK"), std::string::npos) << vg2;
  // From the outside: the guest answers (its group lets the host in), and it is vg that does.
  auto ping = runCommand({"ip", "netns", "exec", ns, "ping", "-c", "3", "-W", "2", "10.55.0.10"});
  EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;
  auto neigh = runCommand({"ip", "-n", ns, "neigh", "show", "10.55.0.10"});
  auto ports = call(c, "GET", "/v1/vms/vg?tenant=acme").body["ports"];
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_NE(neigh.out.find(ports[0]["mac"].get<std::string>()), std::string::npos) << neigh.out;
  // The NIC is on the provider bridge that qiaod made (standalone), patched to its bridge.
  auto port_to_br = [](const std::string& port) {
    return runCommand({"ovs-vsctl", "--timeout=10", "port-to-br", port}).out;
  };
  EXPECT_EQ(port_to_br(uplink), provider + "\n");
  EXPECT_EQ(port_to_br("qpi-" + provider), bridge + "\n");
  EXPECT_EQ(port_to_br("qpp-" + bridge), provider + "\n");
  EXPECT_EQ(runCommand({"ovs-vsctl", "--timeout=10", "get-fail-mode", provider}).out,
            "standalone\n");

  for (const auto& [vm, tenant] : {std::pair{"vg", "acme"}, {"vg2", "umbrella"}}) {
    auto d = call(c, "DELETE", std::string("/v1/vms/") + vm + "?force=true&tenant=" + tenant);
    if (d.status == 202) waitTask(c, d.body["id"]);
    auto n = call(c, "DELETE", std::string("/v1/networks/prov?tenant=") + tenant);
    if (n.status == 202) waitTask(c, n.body["id"]);
  }
  q.stopGracefully();
  for (const auto& b : {bridge, provider, ext}) {
    runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", b});
  }
  runCommand({"ip", "link", "delete", uplink});
  runCommand({"ip", "link", "delete", access});
  runCommand({"ip", "netns", "delete", ns});
}

}  // namespace
}  // namespace qiao::testing
