// A VM's statistics without a QEMU: libvirt's named fields into DomainStats, QMP's
// query-blockstats by device id, and the two merged by volume name and NIC, with what could
// not be read said under "missing"; /metrics' way of asking many monitors within a budget.
#include "node/vm/vm_stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

namespace qiao {
namespace {

using nlohmann::json;

DomainStatField num(std::string name, uint64_t value) {
  return {std::move(name), value, false, ""};
}
DomainStatField text(std::string name, std::string value) {
  return {std::move(name), 0, false, std::move(value)};
}

// What libvirt 9.0 reports for a running Qiao VM (one tap, the cloud-init CD-ROM).
std::vector<DomainStatField> runningFields() {
  return {num("state.state", 1),
          num("state.reason", 1),
          num("cpu.time", 2'500'000'000),
          num("cpu.user", 1'000'000'000),
          num("cpu.system", 500'000'000),
          num("balloon.current", 524288),
          num("balloon.maximum", 524288),
          num("balloon.rss", 200000),
          num("balloon.unused", 400000),
          num("balloon.last-update", 1700000000),
          num("vcpu.current", 2),
          num("vcpu.maximum", 2),
          num("vcpu.0.state", 1),
          num("vcpu.0.time", 123),
          num("net.count", 1),
          text("net.0.name", "qt-0a1b2c3d"),
          num("net.0.rx.bytes", 1000),
          num("net.0.rx.pkts", 10),
          num("net.0.rx.errs", 1),
          num("net.0.rx.drop", 2),
          num("net.0.tx.bytes", 3000),
          num("net.0.tx.pkts", 30),
          num("net.0.tx.errs", 3),
          num("net.0.tx.drop", 4),
          num("block.count", 2),
          text("block.0.name", "vda"),
          text("block.0.path", "/var/lib/qiao/volumes/acme/data1"),
          num("block.0.rd.reqs", 5),
          num("block.0.rd.bytes", 4096),
          num("block.0.wr.reqs", 6),
          num("block.0.wr.bytes", 8192),
          num("block.0.fl.reqs", 7),
          text("block.1.name", "sda"),
          text("block.1.path", "/var/lib/qiao/seeds/u.iso"),
          num("block.1.rd.bytes", 512)};
}

TEST(ParseDomainStats, ReadsEveryGroup) {
  DomainStats s = parseDomainStats("acme.web1", runningFields());
  EXPECT_EQ(s.name, "acme.web1");
  EXPECT_EQ(s.state, DomainState::kRunning);
  EXPECT_EQ(s.cpu_time_ns, 2'500'000'000u);
  EXPECT_EQ(s.cpu_user_ns, 1'000'000'000u);
  EXPECT_EQ(s.cpu_system_ns, 500'000'000u);
  EXPECT_EQ(s.vcpus_current, 2);
  EXPECT_EQ(s.memory_current_kib, 524288u);
  EXPECT_EQ(s.memory_max_kib, 524288u);
  EXPECT_EQ(s.memory_rss_kib, 200000u);
  EXPECT_EQ(s.memory_unused_kib, 400000u);
  EXPECT_FALSE(s.memory_available_kib.has_value()) << "not reported: stays unknown, not 0";
  EXPECT_EQ(s.memory_last_update_s, 1700000000);
  ASSERT_EQ(s.nics.size(), 1u);
  EXPECT_EQ(s.nics[0].device, "qt-0a1b2c3d");
  EXPECT_EQ(s.nics[0].rx_bytes, 1000u);
  EXPECT_EQ(s.nics[0].rx_packets, 10u);
  EXPECT_EQ(s.nics[0].rx_errors, 1u);
  EXPECT_EQ(s.nics[0].rx_drops, 2u);
  EXPECT_EQ(s.nics[0].tx_bytes, 3000u);
  EXPECT_EQ(s.nics[0].tx_packets, 30u);
  EXPECT_EQ(s.nics[0].tx_errors, 3u);
  EXPECT_EQ(s.nics[0].tx_drops, 4u);
  ASSERT_EQ(s.disks.size(), 2u);
  EXPECT_EQ(s.disks[0].target, "vda");
  EXPECT_EQ(s.disks[0].path, "/var/lib/qiao/volumes/acme/data1");
  EXPECT_EQ(s.disks[0].read_ops, 5u);
  EXPECT_EQ(s.disks[0].read_bytes, 4096u);
  EXPECT_EQ(s.disks[0].write_ops, 6u);
  EXPECT_EQ(s.disks[0].write_bytes, 8192u);
  EXPECT_EQ(s.disks[0].flush_ops, 7u);
  EXPECT_EQ(s.disks[1].target, "sda");
}

TEST(ParseDomainStats, ShutoffHasOnlyItsState) {
  DomainStats s = parseDomainStats("acme.off", {num("state.state", 5), num("state.reason", 2)});
  EXPECT_EQ(s.state, DomainState::kShutoff);
  EXPECT_EQ(s.cpu_time_ns, 0u);
  EXPECT_TRUE(s.nics.empty());
  EXPECT_TRUE(s.disks.empty());
  EXPECT_FALSE(s.cpu_user_ns.has_value());
}

TEST(ParseDomainStats, OddIndexesAndCountsAreBounded) {
  DomainStats s = parseDomainStats(
      "x", {num("net.count", 1), text("net.0.name", "qt-1"), num("net.1.rx.bytes", 5),
            num("net.99999999.rx.bytes", 5), num("net.x.rx.bytes", 5), num("net..rx.bytes", 5),
            num("block.7.rd.bytes", 9)});
  ASSERT_EQ(s.nics.size(), 1u) << "beyond libvirt's count, and absurd indexes, are dropped";
  EXPECT_EQ(s.nics[0].device, "qt-1");
  ASSERT_EQ(s.disks.size(), 8u) << "no block.count: what was named is kept";
  EXPECT_EQ(s.disks[7].read_bytes, 9u);
}

// QEMU 7.2's answer for a virtio-blk on an anonymous BlockBackend (Qiao's RBD disks) and for
// one of libvirt's disks.
json blockstatsAnswer() {
  return json::parse(R"([
    {"device": "", "qdev": "/machine/peripheral/qd-00aa11bb22cc33dd/virtio-backend",
     "node-name": "qd-00aa11bb22cc33dd",
     "stats": {"rd_bytes": 10485760, "wr_bytes": 2048, "rd_operations": 40,
               "wr_operations": 2, "flush_operations": 1, "rd_total_time_ns": 5}},
    {"device": "", "qdev": "virtio-disk0", "node-name": "libvirt-1-format",
     "stats": {"rd_bytes": 1, "wr_bytes": 1, "rd_operations": 1, "wr_operations": 1,
               "flush_operations": 1}},
    {"device": "", "qdev": "no-stats"}
  ])");
}

TEST(ParseQmpBlockstats, ByQdevIdAndNodeName) {
  auto m = parseQmpBlockstats(blockstatsAnswer());
  ASSERT_TRUE(m.contains("qd-00aa11bb22cc33dd"));
  EXPECT_EQ(m["qd-00aa11bb22cc33dd"].read_bytes, 10485760u);
  EXPECT_EQ(m["qd-00aa11bb22cc33dd"].read_ops, 40u);
  EXPECT_EQ(m["qd-00aa11bb22cc33dd"].write_bytes, 2048u);
  EXPECT_EQ(m["qd-00aa11bb22cc33dd"].write_ops, 2u);
  EXPECT_EQ(m["qd-00aa11bb22cc33dd"].flush_ops, 1u);
  EXPECT_TRUE(m.contains("virtio-disk0"));
  EXPECT_TRUE(m.contains("libvirt-1-format"));
  EXPECT_FALSE(m.contains("no-stats"));
  EXPECT_FALSE(m.contains("virtio-backend"));
  EXPECT_TRUE(parseQmpBlockstats(json::object()).empty());
  EXPECT_TRUE(parseQmpBlockstats(json::parse(R"([1, "x", {"stats": 3}])")).empty());
}

std::vector<VmStatsDisk> disks() {
  return {{"root", "rbd", "qd-00aa11bb22cc33dd", "vda"},
          {"data1", "local", "/var/lib/qiao/volumes/acme/data1", "vdb"},
          {"", "seed", "/var/lib/qiao/seeds/u.iso", "sda"}};
}
std::vector<VmStatsNic> nics() {
  return {{"52:54:00:00:00:01", "net1", "10.0.0.5", "qt-0a1b2c3d"},
          {"52:54:00:00:00:02", "net2", "10.1.0.5", "qt-gone"}};
}

TEST(MergeVmFigures, NamesEveryFigureByVolumeAndMac) {
  Result<json> qmp = blockstatsAnswer();
  VmFigures f = mergeVmFigures("acme", "web1", parseDomainStats("acme.web1", runningFields()),
                               disks(), nics(), &qmp);
  ASSERT_EQ(f.disks.size(), 3u);
  ASSERT_TRUE(f.disks[0].figures.has_value());
  EXPECT_EQ(f.disks[0].figures->read_bytes, 10485760u) << "the RBD disk from QMP";
  ASSERT_TRUE(f.disks[1].figures.has_value());
  EXPECT_EQ(f.disks[1].figures->write_bytes, 8192u)
      << "the file disk from libvirt, by its path although its target differs from the spec's";
  ASSERT_TRUE(f.disks[2].figures.has_value());
  EXPECT_EQ(f.disks[2].figures->read_bytes, 512u);
  ASSERT_EQ(f.nics.size(), 2u);
  ASSERT_TRUE(f.nics[0].figures.has_value());
  EXPECT_EQ(f.nics[0].figures->tx_packets, 30u);
  EXPECT_FALSE(f.nics[1].figures.has_value());
  ASSERT_EQ(f.missing.size(), 1u);
  EXPECT_EQ(f.missing[0].part, "nic 52:54:00:00:00:02");

  json j = vmFiguresToJson(f);
  EXPECT_EQ(j["vm"], "web1");
  EXPECT_EQ(j["tenant"], "acme");
  EXPECT_EQ(j["state"], "running");
  EXPECT_DOUBLE_EQ(j["cpu"]["time_seconds"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(j["cpu"]["user_seconds"].get<double>(), 1.0);
  EXPECT_EQ(j["cpu"]["vcpus"], 2);
  EXPECT_EQ(j["memory"]["maximum_bytes"], uint64_t{524288} * 1024);
  EXPECT_EQ(j["memory"]["rss_bytes"], uint64_t{200000} * 1024);
  EXPECT_EQ(j["memory"]["guest_unused_bytes"], uint64_t{400000} * 1024);
  EXPECT_TRUE(j["memory"]["guest_available_bytes"].is_null());
  EXPECT_EQ(j["disks"][0]["volume"], "root");
  EXPECT_EQ(j["disks"][0]["backend"], "rbd");
  EXPECT_EQ(j["disks"][0]["device"], "qd-00aa11bb22cc33dd");
  EXPECT_EQ(j["disks"][0]["read_ops"], 40);
  EXPECT_EQ(j["disks"][1]["device"], "vdb");
  EXPECT_TRUE(j["disks"][2]["volume"].is_null());
  EXPECT_EQ(j["disks"][2]["backend"], "seed");
  EXPECT_EQ(j["nics"][0]["mac"], "52:54:00:00:00:01");
  EXPECT_EQ(j["nics"][0]["network"], "net1");
  EXPECT_EQ(j["nics"][0]["rx_bytes"], 1000);
  EXPECT_EQ(j["nics"][0]["tx_drops"], 4);
  EXPECT_TRUE(j["nics"][1]["rx_bytes"].is_null());
  ASSERT_EQ(j["missing"].size(), 1u);
}

TEST(MergeVmFigures, AQmpFailureKeepsLibvirtsFiguresAndSaysWhatIsMissing) {
  Result<json> qmp = std::unexpected(Error{ErrorCode::kTimeout, "qmp", "no reply in 5000 ms", ""});
  VmFigures f = mergeVmFigures("acme", "web1", parseDomainStats("acme.web1", runningFields()),
                               disks(), {nics()[0]}, &qmp);
  EXPECT_FALSE(f.disks[0].figures.has_value());
  EXPECT_TRUE(f.disks[1].figures.has_value());
  EXPECT_TRUE(f.nics[0].figures.has_value());
  EXPECT_EQ(f.domain.cpu_time_ns, 2'500'000'000u);
  ASSERT_EQ(f.missing.size(), 1u);
  EXPECT_EQ(f.missing[0].part, "disk root");
  EXPECT_NE(f.missing[0].reason.find("no reply in 5000 ms"), std::string::npos)
      << f.missing[0].reason;
  json j = vmFiguresToJson(f);
  EXPECT_TRUE(j["disks"][0]["read_bytes"].is_null());
  EXPECT_EQ(j["disks"][1]["read_bytes"], 4096);

  // QMP not asked at all: the RBD disks are missing, saying so.
  VmFigures g = mergeVmFigures("acme", "web1", parseDomainStats("acme.web1", runningFields()),
                               disks(), {}, nullptr);
  ASSERT_EQ(g.missing.size(), 1u);
  EXPECT_EQ(g.missing[0].reason, "QMP was not asked");
}

TEST(MergeVmFigures, ADeviceQemuDoesNotHaveIsMissingNotZero) {
  Result<json> qmp = json::array();
  VmFigures f = mergeVmFigures("acme", "web1", parseDomainStats("acme.web1", runningFields()),
                               {disks()[0]}, {}, &qmp);
  EXPECT_FALSE(f.disks[0].figures.has_value());
  ASSERT_EQ(f.missing.size(), 1u);
  EXPECT_NE(f.missing[0].reason.find("qd-00aa11bb22cc33dd"), std::string::npos);
}

// Every ask keeps to the timeout it is given (as QMP channels do) and uses all of it: the
// first batch takes 200 ms, the second is given what the 400 ms budget has left (200 ms less
// the time the first took beyond its 200), and the third's turn comes after it is spent:
// skipped, never asked.
TEST(AskWithinBudget, AsksAFewAtATimeAndSkipsWhatTheBudgetCannotCover) {
  using std::chrono::milliseconds;
  std::mutex mu;
  std::set<size_t> asked, skipped;
  std::vector<milliseconds> given(9);
  std::atomic<int> running{0}, most{0};
  const auto start = std::chrono::steady_clock::now();
  WorkQueue pool("test-stats", 3);
  askWithinBudget(
      pool, 9, 3, milliseconds(200), milliseconds(400),
      [&](size_t i, milliseconds timeout) {
        const int now = ++running;
        for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
        }
        std::this_thread::sleep_for(timeout);
        --running;
        std::lock_guard lock(mu);
        asked.insert(i);
        given[i] = timeout;
      },
      [&](size_t i) {
        std::lock_guard lock(mu);
        skipped.insert(i);
      });
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_EQ(asked, (std::set<size_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(skipped, (std::set<size_t>{6, 7, 8}));
  EXPECT_EQ(most.load(), 3) << "three at a time";
  for (size_t i : {0, 1, 2}) EXPECT_EQ(given[i], milliseconds(200)) << i;
  for (size_t i : {3, 4, 5}) {
    EXPECT_LE(given[i], milliseconds(200)) << i;
    EXPECT_GT(given[i], milliseconds(0)) << i;
  }
  EXPECT_LT(took, milliseconds(1000)) << "bounded by the budget, not by 3 x 200 ms";
}

TEST(AskWithinBudget, QuickAsksAreAllMade) {
  std::atomic<int> asked{0}, skipped{0};
  WorkQueue pool("test-stats", 8);
  askWithinBudget(
      pool, 20, 8, std::chrono::milliseconds(2000), std::chrono::milliseconds(4000),
      [&](size_t, std::chrono::milliseconds) { ++asked; }, [&](size_t) { ++skipped; });
  EXPECT_EQ(asked.load(), 20);
  EXPECT_EQ(skipped.load(), 0);
}

}  // namespace
}  // namespace qiao
