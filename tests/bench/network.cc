// bench_network: Qiao's tenant-network work on the stack's real Open vSwitch (ovsdb-server at
// /var/run/openvswitch/db.sock, userspace datapath) next to the floor of the same work done
// directly with the command-line tools:
//   1. NIC plug: Fabric::plug of N ports onto a bridge that already has B ports (tap by ioctl,
//      OVS port over OVSDB, the flows that change in one ovs-ofctl bundle) vs `ip tuntap
//      add` + `ip link set up` + `ovs-vsctl add-port` (same ofport_request and external_ids) +
//      `ovs-ofctl add-flows` of just that port's flows, on a second bridge with the same B ports
//      and flows: p50/p95/p99/max each, the ratio, and where Qiao's time goes;
//   2. re-sync after `ovs-ofctl del-flows` with P ports: Fabric::check() called directly (R
//      times), and the time until every flow is back when the Fabric's own loop runs (2R wipes,
//      every 1000 ms and every 200 ms; flow_count polled with `ovs-ofctl dump-aggregate`);
//   3. flows per port, per network and fixed, and one full replace bundle at P ports;
//   4. peak RSS of this process.
// Networks have dhcp=false (no dnsmasq). Every bridge (qb*-<pid>) and tap (qb<pid>...) is this
// process's own and is deleted at the end, on a failure, on SIGINT/SIGTERM, and when the run
// passes --max-seconds.
// Usage: bench_network [--n N] [--base B] [--ports P] [--networks K] [--repeat R]
//                      [--max-seconds S] [--verbose]     (defaults: 50, 20, 500, 10, 5, 1200)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/bench_util.h"
#include "base/log.h"
#include "base/process.h"
#include "network/dhcp.h"
#include "network/fabric.h"
#include "network/flows.h"
#include "network/ipam.h"
#include "network/netdev.h"
#include "network/switch.h"

using namespace qiao;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;

namespace {

double maxOf(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

// ---- What this process made, and its removal (at the end, and on every way out) ----------

std::string g_tap_prefix;            // "qb<pid>": every tap of this run starts with it
std::vector<std::string> g_bridges;  // filled before anything is made
std::string g_tmp;                   // this run's scratch folder
std::mutex g_cleanup_mutex;
bool g_cleaned = false;
std::atomic<int> g_signal{0};

ProcessResult run(const std::vector<std::string>& argv, const std::string& input = {},
                  int timeout_ms = 30000) {
  ProcessOptions p;
  p.argv = argv;
  p.stdin_data = input;
  p.timeout_ms = timeout_ms;
  p.max_output_bytes = 64 << 20;
  auto r = runProcess(p);
  if (!r) {
    ProcessResult failed;
    failed.err = r.error().describe();
    return failed;
  }
  return *r;
}

void cleanup() {
  std::lock_guard lock(g_cleanup_mutex);
  if (g_cleaned) return;
  g_cleaned = true;
  for (const auto& b : g_bridges) {
    // Retried: ovs-vswitchd or ovsdb-server may be restarting (other tests on this machine).
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (run({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", b}).exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    // A netdev bridge's own port is a tap that a vswitchd killed mid-run leaves behind.
    if (linkExists(b)) run({"ip", "link", "delete", b});
  }
  std::vector<std::string> taps;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    std::string name = e.path().filename().string();
    if (!g_tap_prefix.empty() && name.rfind(g_tap_prefix, 0) == 0) taps.push_back(name);
  }
  for (const auto& t : taps) {
    if (!removeTap(t) || linkExists(t)) run({"ip", "link", "delete", t});
  }
  if (!g_tmp.empty()) std::filesystem::remove_all(g_tmp, ec);
}

[[noreturn]] void die(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fprintf(stderr, "bench_network: ");
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  cleanup();
  std::_Exit(1);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

ProcessResult mustRun(const std::vector<std::string>& argv, const std::string& input = {}) {
  auto r = run(argv, input);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    die("%s: %s", cmd.c_str(), trimmed(r.err.empty() ? r.out : r.err).c_str());
  }
  return r;
}

void must(const Status& s, const std::string& what) {
  if (!s) die("%s: %s", what.c_str(), s.error().describe().c_str());
}

// ---- Timing doubles around the real Switch, FlowInstaller and taps -----------------------

struct Spent {
  double tap = 0, ovsdb = 0, replace = 0, dump = 0;
};

class Meter {
 public:
  template <typename F>
  auto time(double Spent::*field, F&& f) {
    auto t0 = Clock::now();
    auto r = f();
    std::lock_guard lock(mutex_);
    spent_.*field += ms(Clock::now() - t0);
    return r;
  }
  Spent snapshot() {
    std::lock_guard lock(mutex_);
    return spent_;
  }

 private:
  std::mutex mutex_;
  Spent spent_;
};

class TimedSwitch : public Switch {
 public:
  TimedSwitch(Switch& inner, Meter& meter) : inner_(inner), meter_(meter) {}
  Status ping() override { return inner_.ping(); }
  Status ensureBridge(const std::string& b, const std::string& d,
                      const std::string& mode) override {
    return meter_.time(&Spent::ovsdb, [&] { return inner_.ensureBridge(b, d, mode); });
  }
  Status ensurePort(const std::string& b, const SwitchPort& p) override {
    return meter_.time(&Spent::ovsdb, [&] { return inner_.ensurePort(b, p); });
  }
  Status removePort(const std::string& b, const std::string& n) override {
    return meter_.time(&Spent::ovsdb, [&] { return inner_.removePort(b, n); });
  }
  Result<std::vector<SwitchPortState>> listPorts(const std::string& b) override {
    return meter_.time(&Spent::ovsdb, [&] { return inner_.listPorts(b); });
  }
  void setChangeHandler(std::function<void()> h) override { inner_.setChangeHandler(std::move(h)); }

 private:
  Switch& inner_;
  Meter& meter_;
};

class TimedFlows : public FlowInstaller {
 public:
  TimedFlows(FlowInstaller& inner, Meter& meter) : inner_(inner), meter_(meter) {}
  Status replace(const std::string& b, const std::vector<std::string>& f) override {
    return meter_.time(&Spent::replace, [&] { return inner_.replace(b, f); });
  }
  Status update(const std::string& b, const std::vector<std::string>& from,
                const std::vector<std::string>& to) override {
    return meter_.time(&Spent::replace, [&] { return inner_.update(b, from, to); });
  }
  Result<std::vector<std::string>> dump(const std::string& b) override {
    return meter_.time(&Spent::dump, [&] { return inner_.dump(b); });
  }
  Status flushZone(int zone, const std::string& address) override {
    return inner_.flushZone(zone, address);
  }

 private:
  FlowInstaller& inner_;
  Meter& meter_;
};

TapOps timedTaps(Meter& meter) {
  TapOps host = TapOps::host();
  return {host.exists,
          [&meter, ensure = host.ensure](const std::string& name, int mtu) {
            return meter.time(&Spent::tap, [&] { return ensure(name, mtu); });
          },
          host.remove};
}

// ---- The model: K networks, ports spread over them ---------------------------------------

std::vector<NetworkDef> makeNetworks(int count) {
  std::vector<NetworkDef> nets;
  for (int k = 0; k < count; ++k) {
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08x-be0c-4000-8000-%012x", static_cast<unsigned>(getpid()),
                  k);
    NetworkDef n;
    n.uuid = uuid;
    n.tenant = "bench";
    n.name = "n" + std::to_string(k);
    n.local_id = k + 1;
    n.subnet = Ipv4Subnet{(10u << 24) | (77u << 16) | (static_cast<uint32_t>(k) << 8), 24};
    n.gateway = formatIpv4(n.subnet.network + 1);
    n.dhcp = false;
    nets.push_back(n);
  }
  return nets;
}

// Port i of a set ('q' Qiao's, 'f' the floor's, 's' the re-sync's): its tap qb<pid><tag><i>,
// ofport_request i+1, network i mod K, a MAC and an address of its own.
PortDef makePort(char tag, int i, const std::vector<NetworkDef>& nets) {
  const NetworkDef& n = nets[i % nets.size()];
  char id[40], mac[24];
  std::snprintf(id, sizeof id, "%08x-be0c-4%02x0-8000-%012x", static_cast<unsigned>(getpid()),
                static_cast<unsigned char>(tag), i);
  std::snprintf(mac, sizeof mac, "02:51:b0:%02x:%02x:%02x", static_cast<unsigned char>(tag),
                (i >> 8) & 255, i & 255);
  PortDef p;
  p.uuid = id;
  p.tenant = n.tenant;
  p.network_uuid = n.uuid;
  p.vm_uuid = std::string(id).replace(9, 4, "0000");
  p.vm_name = "vm" + std::to_string(i);
  p.name = g_tap_prefix + tag + std::to_string(i);
  p.mac = mac;
  p.ip = formatIpv4(n.subnet.network + 10 + static_cast<uint32_t>(i / nets.size()));
  p.ofport = i + 1;
  return p;
}

std::vector<FlowPort> flowPorts(const std::vector<PortDef>& ports,
                                const std::vector<NetworkDef>& nets) {
  std::vector<FlowPort> out;
  for (const auto& p : ports) {
    int64_t local = 0;
    for (const auto& n : nets) {
      if (n.uuid == p.network_uuid) local = n.local_id;
    }
    out.push_back({p.name, p.ofport, local, p.mac, {p.ip}, false});
  }
  return out;
}

long flowCount(const std::string& bridge) {
  auto r = run({"ovs-ofctl", "-O", "OpenFlow14", "dump-aggregate", bridge});
  auto at = r.out.find("flow_count=");
  if (r.exit_code != 0 || at == std::string::npos) return -1;
  return std::stol(r.out.substr(at + 11));
}

// ---- The floor: the same plug with the command-line tools ----------------------------------

void floorPlug(const std::string& bridge, const PortDef& p, const std::string& flows_file) {
  mustRun({"ip", "tuntap", "add", "dev", p.name, "mode", "tap"});
  mustRun({"ip", "link", "set", p.name, "up"});
  mustRun({"ovs-vsctl", "--timeout=10", "add-port", bridge, p.name, "--", "set", "Interface",
           p.name, "ofport_request=" + std::to_string(p.ofport), "external_ids:iface-id=" + p.uuid,
           "external_ids:attached-mac=\"" + p.mac + "\"", "external_ids:vm-id=" + p.vm_uuid,
           "external_ids:qiao-tenant=" + p.tenant, "external_ids:qiao-network=" + p.network_uuid});
  if (!flows_file.empty()) {
    mustRun({"ovs-ofctl", "-O", "OpenFlow14", "add-flows", bridge, flows_file});
  }
}

void writeFlows(const std::string& file, const std::vector<std::string>& flows) {
  std::ofstream out(file, std::ios::trunc);
  for (const auto& f : flows) out << f << "\n";
  if (!out) die("cannot write %s", file.c_str());
}

// The flows `after` has that `before` has not: a new port's own, and its network's flood flow
// (same match as the old one, so add-flows replaces it).
std::vector<std::string> added(std::vector<std::string> before, std::vector<std::string> after) {
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  std::vector<std::string> out;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

Spent minus(const Spent& a, const Spent& b) {
  return {a.tap - b.tap, a.ovsdb - b.ovsdb, a.replace - b.replace, a.dump - b.dump};
}

// p50 of each part of a set of calls.
void printParts(const std::vector<Spent>& parts) {
  std::vector<double> tap, ovsdb, replace, dump;
  for (const auto& s : parts) {
    tap.push_back(s.tap);
    ovsdb.push_back(s.ovsdb);
    replace.push_back(s.replace);
    dump.push_back(s.dump);
  }
  std::printf("    parts, p50: tap %.1f ms, OVSDB %.1f ms, bundle %.1f ms, dumps %.1f ms\n",
              percentile(tap, 50), percentile(ovsdb, 50), percentile(replace, 50),
              percentile(dump, 50));
}

void printLatency(const char* what, const std::vector<double>& v) {
  std::printf("  %-7s p50 %7.1f  p95 %7.1f  p99 %7.1f  max %7.1f ms\n", what, percentile(v, 50),
              percentile(v, 95), percentile(v, 99), maxOf(v));
}

}  // namespace

int main(int argc, char** argv) {
  int n = 50, base = 20, sync_ports = 500, networks = 10, repeat = 5, max_seconds = 1200;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> int {
      if (i + 1 >= argc) die("%s needs a value", flag.c_str());
      return std::stoi(argv[++i]);
    };
    if (flag == "--n") {
      n = value();
    } else if (flag == "--base") {
      base = value();
    } else if (flag == "--ports") {
      sync_ports = value();
    } else if (flag == "--networks") {
      networks = value();
    } else if (flag == "--repeat") {
      repeat = value();
    } else if (flag == "--max-seconds") {
      max_seconds = value();
    } else if (flag == "--verbose") {
      verbose = true;
    } else if (flag == "--help" || flag == "-h") {
      std::printf(
          "Usage: bench_network [--n N] [--base B] [--ports P] [--networks K] [--repeat R]\n"
          "                     [--max-seconds S] [--verbose]\n"
          "  --n N          ports plugged and timed (default 50)\n"
          "  --base B       ports on the bridges before (default 20)\n"
          "  --ports P      ports of the re-sync runs (default 500)\n"
          "  --networks K   networks the ports are spread over (default 10, at most 250)\n"
          "  --repeat R     re-sync runs (default 5; the loop runs 2R wipes)\n"
          "  --max-seconds S  stops (and cleans up) after S seconds (default 1200)\n"
          "Against the stack's Open vSwitch; needs root. See tests/bench/network.cc.\n");
      return 0;
    } else {
      die("unknown flag %s (see the head of tests/bench/network.cc)", flag.c_str());
    }
  }
  if (n < 1 || base < 0 || sync_ports < 1 || networks < 1 || networks > 250 || repeat < 1) {
    die("bad flags");
  }
  if (base + n > 9999 || sync_ports > 9999) die("at most 9999 ports (tap names <= 15 bytes)");
  if ((std::max(base + n, sync_ports) + networks - 1) / networks + 10 > 254) {
    die("too many ports per /24 network: raise --networks");
  }
  Logger::setLevel(verbose ? LogLevel::kInfo : LogLevel::kError);

  const std::string pid = std::to_string(getpid());
  g_tap_prefix = "qb" + pid;
  const std::string plug_bridge = "qbench-" + pid;    // Qiao's plugs
  const std::string floor_bridge = "qbfloor-" + pid;  // the floor's
  const std::string sync_bridge = "qbsync-" + pid;    // re-sync and bundles
  g_bridges = {plug_bridge, floor_bridge, sync_bridge};

  // Every way out removes what this run made: SIGINT/SIGTERM and the time limit go through the
  // watchdog, failures through die(), the normal end through cleanup().
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, [](int s) { g_signal = s; });
  std::atomic<bool> finished{false};
  const auto deadline = Clock::now() + std::chrono::seconds(max_seconds);
  std::thread watchdog([&] {
    while (!finished) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (g_signal != 0) die("signal %d: stopped", g_signal.load());
      if (Clock::now() > deadline)
        die("still running after --max-seconds %d: stopped", max_seconds);
    }
  });

  if (run({"ovs-vsctl", "--timeout=5", "show"}).exit_code != 0) {
    die("Open vSwitch is not running (scripts/stack up --no-qiaod)");
  }
  const std::string ovs_version = trimmed(run({"ovs-vswitchd", "--version"}).out);
  const std::string tmp = g_tmp = "/tmp/bench_network." + pid;
  std::filesystem::create_directories(tmp);

  auto real_switch = makeOvsdbSwitch(SwitchOptions{});
  auto real_flows = makeOfctlInstaller(OfctlOptions{});
  Meter meter;
  TimedSwitch sw(*real_switch, meter);
  TimedFlows flows(*real_flows, meter);
  DhcpServers dhcp(tmp + "/dhcp");  // unused: every network has dhcp=false
  const std::vector<NetworkDef> nets = makeNetworks(networks);

  std::printf("bench_network: %s, %d networks (dhcp off), netdev datapath, pid %s\n",
              ovs_version.substr(0, ovs_version.find('\n')).c_str(), networks, pid.c_str());

  // 1. NIC plug, Qiao next to the floor, alternating which goes first.
  std::vector<double> qiao_ms, floor_ms;
  std::vector<Spent> parts;
  size_t plug_flows = 0;
  {
    FabricOptions options;
    options.bridge = plug_bridge;
    options.taps = timedTaps(meter);
    Fabric fabric(options, sw, flows, dhcp);
    for (const auto& net : nets) {
      // The Switch does not wait for ovs-vswitchd to make a new bridge, so the first flow install
      // can find no bridge yet (kUnavailable; the fabric keeps the network): tried again.
      Status added = fabric.addNetwork(net);
      for (int t = 0; !added && added.error().code == ErrorCode::kUnavailable && t < 50; ++t) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        added = fabric.addNetwork(net);
      }
      must(added, "adding network " + net.name);
    }

    mustRun({"ovs-vsctl", "--timeout=10", "add-br", floor_bridge, "--", "set", "Bridge",
             floor_bridge, "datapath_type=netdev", "fail_mode=secure"});
    std::vector<PortDef> floor_ports;
    for (int i = 0; i < base; ++i) {
      must(fabric.plug(makePort('q', i, nets)), "plugging a base port");
      floor_ports.push_back(makePort('f', i, nets));
      floorPlug(floor_bridge, floor_ports.back(), "");
    }
    const std::string file = tmp + "/port.flows";
    writeFlows(file, buildFlows(flowPorts(floor_ports, nets)));
    mustRun({"ovs-ofctl", "-O", "OpenFlow14", "add-flows", floor_bridge, file});

    for (int i = base; i < base + n; ++i) {
      const PortDef q = makePort('q', i, nets);
      const PortDef f = makePort('f', i, nets);
      auto before = buildFlows(flowPorts(floor_ports, nets));
      floor_ports.push_back(f);
      writeFlows(file, added(before, buildFlows(flowPorts(floor_ports, nets))));
      auto plugQiao = [&] {
        Spent s0 = meter.snapshot();
        auto t0 = Clock::now();
        must(fabric.plug(q), "Fabric::plug " + q.name);
        qiao_ms.push_back(ms(Clock::now() - t0));
        parts.push_back(minus(meter.snapshot(), s0));
      };
      auto plugFloor = [&] {
        auto t0 = Clock::now();
        floorPlug(floor_bridge, f, file);
        floor_ms.push_back(ms(Clock::now() - t0));
      };
      if (i % 2 == 0) {
        plugQiao();
        plugFloor();
      } else {
        plugFloor();
        plugQiao();
      }
    }
    plug_flows = buildFlows(flowPorts(floor_ports, nets)).size();
    const long on_qiao = flowCount(plug_bridge), on_floor = flowCount(floor_bridge);
    if (on_qiao != static_cast<long>(plug_flows) || on_floor != static_cast<long>(plug_flows)) {
      die("after the plugs: %ld flows on %s, %ld on %s, %zu expected", on_qiao, plug_bridge.c_str(),
          on_floor, floor_bridge.c_str(), plug_flows);
    }
  }
  std::printf("\n1. NIC plug: %d ports onto a bridge with %d (ending at %zu flows)\n", n, base,
              plug_flows);
  std::printf("   Qiao: Fabric::plug (tap ioctl + OVSDB port + diff bundle + dump)\n");
  std::printf(
      "   floor: ip tuntap add + ip link set up + ovs-vsctl add-port + ovs-ofctl "
      "add-flows (the port's flows only)\n");
  printLatency("qiao", qiao_ms);
  printLatency("floor", floor_ms);
  std::printf("  ratio   p50 %6.2fx  p95 %6.2fx  p99 %6.2fx  max %6.2fx   (goal <= 1.5x)\n",
              percentile(qiao_ms, 50) / percentile(floor_ms, 50),
              percentile(qiao_ms, 95) / percentile(floor_ms, 95),
              percentile(qiao_ms, 99) / percentile(floor_ms, 99), maxOf(qiao_ms) / maxOf(floor_ms));
  printParts(parts);
  {
    // Qiao's plug grows with the bridge (its bundle and dump carry every flow); the floor's not.
    const size_t k = std::min<size_t>(10, qiao_ms.size());
    auto head = [&](const std::vector<double>& v) {
      return percentile(std::vector<double>(v.begin(), v.begin() + k), 50);
    };
    auto tail = [&](const std::vector<double>& v) {
      return percentile(std::vector<double>(v.end() - k, v.end()), 50);
    };
    std::printf(
        "  first %zu plugs p50: qiao %.1f ms, floor %.1f ms; last %zu: qiao %.1f ms, floor "
        "%.1f ms\n",
        k, head(qiao_ms), head(floor_ms), k, tail(qiao_ms), tail(floor_ms));
  }
  run({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", plug_bridge});
  run({"ovs-vsctl", "--timeout=10", "--if-exists", "del-br", floor_bridge});
  for (int i = 0; i < base + n; ++i) {
    removeTap(makePort('q', i, nets).name);
    const std::string f = makePort('f', i, nets).name;
    if (!removeTap(f) || linkExists(f)) run({"ip", "link", "delete", f});
  }

  // 2. Re-sync after a flow wipe with P ports.
  std::vector<PortDef> ports;
  for (int i = 0; i < sync_ports; ++i) ports.push_back(makePort('s', i, nets));
  const size_t expected = buildFlows(flowPorts(ports, nets)).size();
  auto t_taps = Clock::now();
  for (const auto& p : ports) must(ensureTap(p.name, 1500), "creating tap " + p.name);
  const double taps_ms = ms(Clock::now() - t_taps);
  FabricOptions sync_options;
  sync_options.bridge = sync_bridge;
  double first_check_s = 0;
  size_t first_changes = 0;
  std::vector<double> idle_ms, check_ms, loop_ms[2];
  std::vector<Spent> idle_parts, check_parts;
  const int intervals[2] = {1000, 200};
  {
    Fabric fabric(sync_options, sw, flows, dhcp);
    fabric.load(nets, ports);
    auto t0 = Clock::now();
    auto first = fabric.check();
    first_check_s = ms(Clock::now() - t0) / 1000;
    if (!first && first.error().code == ErrorCode::kUnavailable) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // as above: a new bridge
      first = fabric.check();
    }
    if (!first) die("first check: %s", first.error().describe().c_str());
    first_changes = first->changes.size();
    for (int r = 0; r < repeat; ++r) {
      Spent s0 = meter.snapshot();
      t0 = Clock::now();
      auto idle = fabric.check();
      idle_ms.push_back(ms(Clock::now() - t0));
      idle_parts.push_back(minus(meter.snapshot(), s0));
      if (!idle || !idle->clean()) die("a check with nothing to repair changed something");
    }
    if (flowCount(sync_bridge) != static_cast<long>(expected)) die("flows missing after check");
    for (int r = 0; r < repeat; ++r) {
      mustRun({"ovs-ofctl", "del-flows", sync_bridge});
      Spent s0 = meter.snapshot();
      t0 = Clock::now();
      auto repaired = fabric.check();
      check_ms.push_back(ms(Clock::now() - t0));
      check_parts.push_back(minus(meter.snapshot(), s0));
      if (!repaired) die("check after the wipe: %s", repaired.error().describe().c_str());
      if (repaired->clean()) die("check after the wipe repaired nothing");
      const long back = flowCount(sync_bridge);
      if (back != static_cast<long>(expected))
        die("%ld flows after check, %zu expected", back, expected);
    }
  }
  Fabric::Counters loop_counters[2];
  for (int k = 0; k < 2; ++k) {
    FabricOptions options = sync_options;
    options.check_interval_ms = intervals[k];
    Fabric fabric(options, sw, flows, dhcp);
    fabric.load(nets, ports);
    if (auto c = fabric.check(); !c) die("check: %s", c.error().describe().c_str());
    fabric.start();
    const Fabric::Counters c0 = fabric.counters();
    // The wipes land at phases spread evenly over the loop's period (its wait and an idle
    // check), counted from the end of an idle check: counters() takes the fabric's lock, so it
    // returns only between checks.
    const double period = intervals[k] + percentile(idle_ms, 50);
    const int wipes = 2 * repeat;
    for (int r = 0; r < wipes; ++r) {
      const int64_t done = fabric.counters().checks;
      while (fabric.counters().checks < done + 1) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::this_thread::sleep_for(
          std::chrono::microseconds(static_cast<int64_t>(period * 1000 * (r + 0.5) / wipes)));
      mustRun({"ovs-ofctl", "del-flows", sync_bridge});
      auto t0 = Clock::now();
      while (flowCount(sync_bridge) != static_cast<long>(expected)) {
        if (Clock::now() - t0 > std::chrono::seconds(30)) {
          die("flows not back 30 s after the wipe (loop every %d ms)", intervals[k]);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      loop_ms[k].push_back(ms(Clock::now() - t0));
    }
    const Fabric::Counters c1 = fabric.counters();
    loop_counters[k] = {c1.checks - c0.checks, c1.repairs - c0.repairs,
                        c1.flow_installs - c0.flow_installs};
    fabric.stop();
  }
  std::printf("\n2. Re-sync after `ovs-ofctl del-flows` with %d ports (%zu flows), %d times\n",
              sync_ports, expected, repeat);
  std::printf(
      "  %d taps made (ioctl) in %.0f ms; first check (%zu changes: ports added, flows "
      "installed) %.2f s\n",
      sync_ports, taps_ms, first_changes, first_check_s);
  std::printf("  check, nothing to repair   p50 %7.1f  max %7.1f ms\n", percentile(idle_ms, 50),
              maxOf(idle_ms));
  printParts(idle_parts);
  std::printf("  check() after the wipe     p50 %7.1f  max %7.1f ms   (goal < 2000 ms)\n",
              percentile(check_ms, 50), maxOf(check_ms));
  printParts(check_parts);
  for (int k = 0; k < 2; ++k) {
    std::printf(
        "  loop every %4d ms, %zu wipes: all flows back after  p50 %7.1f  max %7.1f ms  "
        "(%lld checks, %lld repairs, %lld installs)\n",
        intervals[k], loop_ms[k].size(), percentile(loop_ms[k], 50), maxOf(loop_ms[k]),
        static_cast<long long>(loop_counters[k].checks),
        static_cast<long long>(loop_counters[k].repairs),
        static_cast<long long>(loop_counters[k].flow_installs));
  }

  // 3. Flows per port, and one full replace bundle at P ports.
  const size_t fixed = buildFlows({}).size();
  const std::vector<FlowPort> one = flowPorts({makePort('s', 0, nets)}, nets);
  const size_t per_port = buildFlows(one).size() - fixed - 1;  // minus its network's flood flow
  const std::vector<std::string> all = buildFlows(flowPorts(ports, nets));
  std::vector<double> bundle_ms, dump_ms;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = Clock::now();
    must(real_flows->replace(sync_bridge, all), "replace");
    bundle_ms.push_back(ms(Clock::now() - t0));
    t0 = Clock::now();
    auto dumped = real_flows->dump(sync_bridge);
    dump_ms.push_back(ms(Clock::now() - t0));
    if (!dumped || dumped->size() != all.size()) die("dump after replace");
  }
  size_t bundle_bytes = 0;
  for (const auto& f : all) bundle_bytes += f.size() + 5;
  std::printf(
      "\n3. Flows: %zu fixed + %zu per guest port (one IP) + 1 per network: %zu at %d "
      "ports / %d networks\n",
      fixed, per_port, all.size(), sync_ports, networks);
  std::printf("  one full replace bundle (%zu flows, %.0f KiB): p50 %7.1f  max %7.1f ms\n",
              all.size(), bundle_bytes / 1024.0, percentile(bundle_ms, 50), maxOf(bundle_ms));
  std::printf("  dump of Qiao's flows afterwards:               p50 %7.1f  max %7.1f ms\n",
              percentile(dump_ms, 50), maxOf(dump_ms));

  // 4. Peak RSS.
  long hwm_kib = 0;
  {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmHWM:", 0) == 0) hwm_kib = std::stol(line.substr(6));
    }
  }
  std::printf("\n4. Peak RSS of this process (VmHWM): %.1f MiB\n", hwm_kib / 1024.0);

  finished = true;
  watchdog.join();
  cleanup();
  return 0;
}
