// /metrics' text: the per-VM series with their labels (escaped as the text format asks), disks
// and NICs only where figures were read.
#include "node/api/metrics.h"

#include <gtest/gtest.h>

namespace qiao {
namespace {

bool hasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsRender, PerVmSeriesWithLabels) {
  VmFigures vm;
  vm.tenant = "acme";
  vm.name = "we\"b\\1";
  vm.domain.state = DomainState::kRunning;
  vm.domain.cpu_time_ns = 1'500'000'000;
  vm.domain.vcpus_current = 2;
  vm.domain.memory_max_kib = 1024;
  vm.domain.memory_current_kib = 512;
  vm.domain.memory_rss_kib = 100;
  vm.domain.memory_usable_kib = 300;
  vm.disks.push_back({{"data1", "local", "/v/data1", "vdb"}, BlockFigures{10, 1, 20, 2, 3}});
  vm.disks.push_back({{"root", "rbd", "qd-1", "vda"}, std::nullopt});
  DomainNicStats nic;
  nic.device = "qt-1";
  nic.rx_bytes = 7;
  nic.tx_packets = 9;
  vm.nics.push_back({{"52:54:00:00:00:01", "net\n1", "10.0.0.2", "qt-1"}, nic});
  vm.missing.push_back({"disk root", "QMP query-blockstats failed: no reply in 2000 ms"});
  VmFigures off;
  off.tenant = "acme";
  off.name = "off";
  off.domain.state = DomainState::kShutoff;

  Metrics metrics;
  std::string text = metrics.render({{"running", 1}, {"shutoff", 1}}, {vm, off});
  const std::string l = R"(tenant="acme",vm="we\"b\\1")";
  EXPECT_TRUE(hasLine(text, "qiao_vm_cpu_seconds_total{" + l + "} 1.5")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_vcpus{" + l + "} 2")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_memory_max_bytes{" + l + "} 1048576")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_memory_current_bytes{" + l + "} 524288")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_memory_rss_bytes{" + l + "} 102400")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_memory_guest_usable_bytes{" + l + "} 307200")) << text;
  EXPECT_EQ(text.find("qiao_vm_memory_guest_unused_bytes{"), std::string::npos)
      << "not reported: no sample";
  const std::string d = l + R"(,volume="data1",backend="local")";
  EXPECT_TRUE(hasLine(text, "qiao_vm_disk_read_bytes_total{" + d + "} 10")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_disk_read_ops_total{" + d + "} 1")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_disk_write_bytes_total{" + d + "} 20")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_disk_write_ops_total{" + d + "} 2")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_disk_flush_ops_total{" + d + "} 3")) << text;
  EXPECT_EQ(text.find(R"(volume="root")"), std::string::npos) << "no figures: no sample";
  EXPECT_TRUE(hasLine(text, "qiao_vm_figures_missing{" + l + R"(,part="disk root"} 1)")) << text;
  EXPECT_EQ(text.find("QMP query-blockstats failed"), std::string::npos)
      << "the reason is no label (one series per part, whatever the reason)";
  const std::string n = l + R"(,mac="52:54:00:00:00:01",network="net\n1")";
  EXPECT_TRUE(hasLine(text, "qiao_vm_nic_rx_bytes_total{" + n + "} 7")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_nic_tx_packets_total{" + n + "} 9")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE qiao_vm_nic_tx_bytes_total counter")) << text;
  EXPECT_TRUE(hasLine(text, "qiao_vm_cpu_seconds_total{tenant=\"acme\",vm=\"off\"} 0")) << text;
  EXPECT_EQ(text.find("qiao_vm_vcpus{tenant=\"acme\",vm=\"off\"}"), std::string::npos);
  // Every family once.
  EXPECT_EQ(text.find("# TYPE qiao_vm_cpu_seconds_total"),
            text.rfind("# TYPE qiao_vm_cpu_seconds_total"));
}

}  // namespace
}  // namespace qiao
