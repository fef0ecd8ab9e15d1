// Per-VM statistics through a real qiaod, QEMU, the stack's Ceph and Open vSwitch: a test
// guest on a tenant network takes its DHCP lease (its NIC's counters move), gets an RBD volume
// hot-plugged and reads 32 MiB of it twice (the disk's read bytes grow by at least that much
// each time, from QMP); GET /v1/vms/{name}/stats, /metrics (the RBD disk too) and qiaoctl vm
// stats show it; a stopped VM answers 409.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
constexpr uint64_t kMiB = uint64_t{1} << 20;

class StatsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bridge_ = "qit-" + randomSuffix(6);
    qiaod_ = new Qiaod(stackCephConfig() + "\n" + stackNetworkConfig(bridge_));
    qiaod_->start();
  }
  static void TearDownTestSuite() {
    delete qiaod_;
    qiaod_ = nullptr;
    runCommand({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge_});
  }
  void SetUp() override {
    if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
    suffix_ = randomSuffix();
  }

  json succeeds(ApiClient& c, const std::string& method, const std::string& target,
                const std::string& body = {}) {
    auto r = call(c, method, target, body);
    EXPECT_EQ(r.status, 202) << method << " " << target << ": " << r.raw;
    if (r.status != 202) return json();
    auto task = waitTask(c, r.body.value("id", ""), std::chrono::seconds(180));
    EXPECT_EQ(task["state"], "succeeded") << method << " " << target << ": " << task.dump();
    return task;
  }
  bool sees(ApiClient& c, const std::string& vm, const std::string& needle) {
    const std::string text = waitConsole(c, vm, "ta", needle, 1, std::chrono::seconds(120));
    const bool seen = countOccurrences(text, needle) >= 1;
    EXPECT_TRUE(seen) << "the guest did not print \"" << needle << "\"; its console ends with:\n"
                      << text.substr(text.size() > 3000 ? text.size() - 3000 : 0);
    return seen;
  }
  json stats(ApiClient& c, const std::string& vm) {
    auto r = call(c, "GET", "/v1/vms/" + vm + "/stats?tenant=ta");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body;
  }
  static json diskOf(const json& s, const std::string& volume) {
    for (const auto& d : s.value("disks", json::array())) {
      if (d.value("volume", json()) == volume) return d;
    }
    return json();
  }
  static uint64_t u64(const json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>()
                                                                             : 0;
  }

  static Qiaod* qiaod_;
  static std::string bridge_;
  std::string suffix_;
};
Qiaod* StatsTest::qiaod_ = nullptr;
std::string StatsTest::bridge_;

TEST_F(StatsTest, FiguresMoveWithWhatTheGuestDoes) {
  auto c = qiaod_->adminClient();
  const std::string vm = "st-" + suffix_;
  const std::string vol = "sd-" + suffix_;
  const std::string net = "sn-" + suffix_;
  succeeds(c, "POST", "/v1/networks",
           json{{"name", net}, {"tenant", "ta"}, {"subnet", "10.61.0.0/24"}}.dump());
  succeeds(c, "POST", "/v1/volumes", json{{"name", vol}, {"tenant", "ta"}, {"size_gib", 1}}.dump());

  // After its lease: waits for the hot-plugged disk, reads its first 32 MiB, then 10 s later
  // the next 32 MiB (other blocks: nothing comes from the guest's page cache).
  const std::string script =
      "while [ ! -b /dev/vda ]; do sleep 0.2; done; "
      "dd if=/dev/vda of=/dev/null bs=1M count=32 2>/dev/null; echo R1; sleep 10; "
      "dd if=/dev/vda of=/dev/null bs=1M skip=32 count=32 2>/dev/null; echo R2; sleep 900";
  json spec = guestSpec(vm, "ta", "qiao.dhcp=1 " + guestRun(script));
  spec["nics"] = json::array({{{"network", net}, {"ip", "10.61.0.10"}}});
  succeeds(c, "POST", "/v1/vms", spec.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST lease ip=10.61.0.10"));

  // The NIC: by its MAC and network, with the DHCP exchange in its counters.
  auto got = call(c, "GET", "/v1/vms/" + vm + "?tenant=ta");
  ASSERT_EQ(got.body["ports"].size(), 1u) << got.raw;
  const std::string mac = got.body["ports"][0]["mac"];
  json s0 = stats(c, vm);
  EXPECT_EQ(s0["vm"], vm);
  EXPECT_EQ(s0["tenant"], "ta");
  EXPECT_EQ(s0["state"], "running");
  EXPECT_GT(s0["cpu"]["time_seconds"].get<double>(), 0.0);
  EXPECT_EQ(s0["cpu"]["vcpus"], 1);
  EXPECT_EQ(u64(s0["memory"], "maximum_bytes"), 256 * kMiB) << s0.dump();
  EXPECT_GT(u64(s0["memory"], "rss_bytes"), 0u) << s0.dump();
  ASSERT_EQ(s0["nics"].size(), 1u) << s0.dump();
  EXPECT_EQ(s0["nics"][0]["mac"], mac);
  EXPECT_EQ(s0["nics"][0]["network"], net);
  EXPECT_EQ(s0["nics"][0]["ip"], "10.61.0.10");
  EXPECT_GE(u64(s0["nics"][0], "tx_packets"), 2u) << "DHCP discover and request";
  EXPECT_GE(u64(s0["nics"][0], "rx_packets"), 2u) << "DHCP offer and ack";
  EXPECT_GT(u64(s0["nics"][0], "tx_bytes"), 0u);
  EXPECT_TRUE(s0["missing"].empty()) << s0.dump();
  EXPECT_TRUE(diskOf(s0, vol).is_null()) << "not plugged yet";

  // The RBD disk, plugged while the guest runs: its figures come from QMP, by volume name.
  succeeds(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", json{{"volume", vol}}.dump());
  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: R1"));
  json s1 = stats(c, vm);
  json d1 = diskOf(s1, vol);
  ASSERT_TRUE(d1.is_object()) << s1.dump();
  EXPECT_EQ(d1["backend"], "rbd");
  EXPECT_TRUE(d1["device"].get<std::string>().starts_with("qd-")) << d1.dump();
  EXPECT_GE(u64(d1, "read_bytes"), 32 * kMiB) << d1.dump();
  EXPECT_GT(u64(d1, "read_ops"), 0u) << d1.dump();
  EXPECT_TRUE(s1["missing"].empty()) << s1.dump();

  ASSERT_TRUE(sees(c, vm, "QIAO-TEST-GUEST run: R2"));
  json s2 = stats(c, vm);
  json d2 = diskOf(s2, vol);
  EXPECT_GE(u64(d2, "read_bytes"), u64(d1, "read_bytes") + 32 * kMiB)
      << "before: " << d1.dump() << "\nafter: " << d2.dump();
  EXPECT_GT(u64(d2, "read_ops"), u64(d1, "read_ops"));
  EXPECT_GT(s2["cpu"]["time_seconds"].get<double>(), s0["cpu"]["time_seconds"].get<double>());

  // A viewer of the tenant may read them; another tenant's viewer sees no such VM.
  auto viewer = qiaod_->client(qiaod_->identity("stats-viewer", "viewer", {"ta"}));
  EXPECT_EQ(call(viewer, "GET", "/v1/vms/" + vm + "/stats").status, 200);
  auto other = qiaod_->client(qiaod_->identity("stats-other", "viewer", {"tb"}));
  EXPECT_EQ(call(other, "GET", "/v1/vms/" + vm + "/stats").status, 404);

  // /metrics: the VM's series under its labels, its NIC by MAC and network.
  auto metrics = c.request("GET", "/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  const std::string labels = "tenant=\"ta\",vm=\"" + vm + "\"";
  EXPECT_NE(metrics->body.find("qiao_vm_cpu_seconds_total{" + labels + "} "), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("qiao_vm_memory_max_bytes{" + labels + "} " +
                               std::to_string(256 * kMiB) + "\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("qiao_vm_nic_rx_packets_total{" + labels + ",mac=\"" + mac +
                               "\",network=\"" + net + "\"} "),
            std::string::npos)
      << metrics->body;
  // The RBD disk too (from QEMU through the VM's kept monitor), with both reads counted.
  const std::string disk_series =
      "qiao_vm_disk_read_bytes_total{" + labels + ",volume=\"" + vol + "\",backend=\"rbd\"} ";
  const auto at = metrics->body.find(disk_series);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  const std::string value = metrics->body.substr(
      at + disk_series.size(), metrics->body.find('\n', at) - at - disk_series.size());
  EXPECT_GE(std::stoull(value), u64(d2, "read_bytes")) << metrics->body;
  EXPECT_EQ(metrics->body.find("qiao_vm_figures_missing{" + labels), std::string::npos)
      << metrics->body;

  // qiaoctl: the table names the volume and the NIC; -o json is the API's object.
  const auto& op = qiaod_->identity("stats-op", "operator", {"ta"});
  auto table = qiaod_->qiaoctl(op, {"vm", "stats", vm});
  EXPECT_EQ(table.exit_code, 0) << table.out << table.err;
  EXPECT_NE(table.out.find(vol), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(mac), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("rbd"), std::string::npos) << table.out;
  auto as_json = qiaod_->qiaoctl(op, {"vm", "stats", vm, "-o", "json"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json parsed = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << as_json.out;
  EXPECT_EQ(parsed["vm"], vm);
  EXPECT_TRUE(diskOf(parsed, vol).is_object()) << as_json.out;

  // Stopped: 409, saying so.
  succeeds(c, "POST", "/v1/vms/" + vm + "/actions/force-stop?tenant=ta");
  auto stopped = call(c, "GET", "/v1/vms/" + vm + "/stats?tenant=ta");
  EXPECT_EQ(stopped.status, 409) << stopped.raw;
  EXPECT_NE(stopped.raw.find("shutoff"), std::string::npos) << stopped.raw;
  auto refused = qiaod_->qiaoctl(op, {"vm", "stats", vm});
  EXPECT_NE(refused.exit_code, 0);

  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  succeeds(c, "DELETE", "/v1/volumes/" + vol + "?tenant=ta");
  succeeds(c, "DELETE", "/v1/networks/" + net + "?tenant=ta");
}

}  // namespace
}  // namespace qiao::testing
