// bench_online_ops: the operations Qiao performs on running guests, each next to its floor.
// One case per section; later work adds hot-plug and block-copy cases here.
//   qmp-roundtrip: one QMP command (query-status) and its reply, p50/p99/max (after a warm-up
//     of min(200, n/10) calls per path, not counted) of
//     1. a raw unix-socket write/read loop on `qemu-system-x86_64 -machine none` (the floor);
//     2. QmpSocketChannel::execute on the same QEMU, one caller, then 4 callers at once;
//     3. LibvirtQmpChannel::execute on a transient libvirt guest (qemu:///system), next to
//        virDomainQemuMonitorCommand called in a loop on this thread (its floor);
//     4. `virsh qemu-monitor-command DOMAIN '{"execute":"query-status"}'`, a process per call
//        (the floor of the libvirt path as an operator would run it).
// QEMU is this process's child (killed at the end); the guest is `qbench-qmp-<pid>`, 64 MiB,
// TCG, no disks, no network, destroyed at the end, on SIGINT/SIGTERM, and after --max-seconds.
// Unix sockets and libvirtd only.
// Usage: bench_online_ops [--case NAME]... [--n N] [--libvirt-n N] [--virsh-n N]
//                         [--max-seconds S]          (defaults: all, 2000, 500, 30, 600)
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/handle.h"
#include "base/log.h"
#include "node/qmp/libvirt_qmp_channel.h"
#include "node/qmp/qmp_socket.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/qmp/qmp_test_util.h"

using namespace qiao;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;
using std::chrono::milliseconds;

namespace {

struct Options {
  std::vector<std::string> cases;
  int n = 2000;
  int libvirt_n = 500;
  int virsh_n = 30;
  int max_seconds = 600;
};

std::atomic<bool> g_interrupted{false};
Clock::time_point g_deadline;

bool keepGoing() { return !g_interrupted && Clock::now() < g_deadline; }

void printRow(const char* what, const std::vector<double>& samples) {
  if (samples.empty()) {
    std::printf("  %-44s %6s\n", what, "skipped");
    return;
  }
  std::printf("  %-44s %6zu %9.3f %9.3f %9.3f\n", what, samples.size(), percentile(samples, 50),
              percentile(samples, 99), percentile(samples, 100));
}

void printHeader() {
  std::printf("  %-44s %6s %9s %9s %9s\n", "path", "n", "p50 ms", "p99 ms", "max ms");
}

// ---- qmp-roundtrip ---------------------------------------------------------------------------

// Calls made before measuring, on every path alike: the first ones pay for caches and for the
// QEMU that just started.
int warmup(int n) { return std::min(200, n / 10); }

// The floor: blocking write and read on QEMU's socket, with nothing but finding the newline.
std::vector<double> rawSocketLoop(const std::string& path, int n) {
  std::vector<double> samples;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return samples;
  std::string buffer;
  auto readLine = [&]() -> bool {
    for (;;) {
      auto nl = buffer.find('\n');
      if (nl != std::string::npos) {
        buffer.erase(0, nl + 1);
        return true;
      }
      char chunk[4096];
      ssize_t got = ::read(fd.get(), chunk, sizeof chunk);
      if (got <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(got));
    }
  };
  auto writeAll = [&](const std::string& text) {
    return ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  };
  if (!readLine() || !writeAll("{\"execute\":\"qmp_capabilities\"}\n") || !readLine()) {
    return samples;
  }
  const std::string command = "{\"execute\":\"query-status\",\"id\":1}\n";
  for (int i = 0; i < warmup(n) + n && keepGoing(); ++i) {
    auto start = Clock::now();
    if (!writeAll(command) || !readLine()) break;
    if (i >= warmup(n)) samples.push_back(ms(Clock::now() - start));
  }
  return samples;
}

// The floor of the passthrough: libvirt's C call on this thread, on a connection of its own.
std::vector<double> directLibvirtLoop(const std::string& domain_name, int n) {
  std::vector<double> samples;
  CPtr<virConnect, virConnectClose> conn(virConnectOpen("qemu:///system"));
  if (!conn) return samples;
  CPtr<virDomain, virDomainFree> dom(virDomainLookupByName(conn.get(), domain_name.c_str()));
  if (!dom) return samples;
  for (int i = 0; i < warmup(n) + n && keepGoing(); ++i) {
    char* reply = nullptr;
    auto start = Clock::now();
    if (virDomainQemuMonitorCommand(dom.get(), "{\"execute\":\"query-status\"}", &reply, 0) < 0) {
      break;
    }
    if (i >= warmup(n)) samples.push_back(ms(Clock::now() - start));
    std::free(reply);
  }
  return samples;
}

std::vector<double> channelLoop(QmpChannel& channel, int n, const char* what) {
  std::vector<double> samples;
  for (int i = 0; i < warmup(n) + n && keepGoing(); ++i) {
    auto start = Clock::now();
    auto result = channel.execute("query-status", {}, milliseconds(10000));
    if (!result) {
      std::fprintf(stderr, "%s: %s\n", what, result.error().describe().c_str());
      break;
    }
    if (i >= warmup(n)) samples.push_back(ms(Clock::now() - start));
  }
  return samples;
}

std::vector<double> concurrentLoop(QmpChannel& channel, int callers, int n) {
  std::vector<std::vector<double>> per(callers);
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] { per[t] = channelLoop(channel, n / callers, "concurrent"); });
  }
  for (auto& thread : threads) thread.join();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  return all;
}

int caseQmpRoundtrip(const Options& options) {
  std::printf("\n== qmp-roundtrip: query-status, one command and its reply\n");
  const std::string dir = qmptest::makeTempDir("qbench-qmp");
  const std::string socket = dir + "/qmp.sock";
  int rc = 0;
  {
    qmptest::ChildProcess qemu(qmptest::qemuNoneArgv(socket), dir + "/qemu.log");
    if (!qmptest::waitForPath(socket, std::chrono::seconds(20))) {
      std::fprintf(stderr, "QEMU did not make its socket: %s\n", qemu.log().c_str());
      return 1;
    }
    std::printf("direct socket: qemu-system-x86_64 -machine none\n");
    printHeader();
    auto raw = rawSocketLoop(socket, options.n);
    printRow("raw socket write/read loop (floor)", raw);
    {
      QmpRuntime runtime;
      QmpSocketOptions socket_options;
      socket_options.path = socket;
      QmpSocketChannel channel(runtime, socket_options);
      // The first call connects: not part of the round trip.
      if (auto first = channel.execute("query-status"); !first) {
        std::fprintf(stderr, "QmpSocketChannel: %s\n", first.error().describe().c_str());
        rc = 1;
      } else {
        auto one = channelLoop(channel, options.n, "QmpSocketChannel");
        printRow("QmpSocketChannel::execute, 1 caller", one);
        auto four = concurrentLoop(channel, 4, options.n);
        printRow("QmpSocketChannel::execute, 4 callers at once", four);
        if (!raw.empty() && !one.empty()) {
          std::printf("  channel/raw p50: %.2fx\n", percentile(one, 50) / percentile(raw, 50));
        }
      }
    }
  }
  std::filesystem::remove_all(dir);

  std::printf("libvirt passthrough: transient guest on qemu:///system\n");
  printHeader();
  if (!qmptest::libvirtdUp()) {
    std::printf("  libvirtd is not running (scripts/stack up --no-qiaod): skipped\n");
    return rc;
  }
  qmptest::TransientDomain domain("qbench-qmp-" + std::to_string(::getpid()));
  if (!domain.ok()) {
    std::fprintf(stderr, "cannot start the guest: %s\n", domain.error().c_str());
    return 1;
  }
  LibvirtQmpOptions libvirt_options;
  libvirt_options.domain = domain.name();
  LibvirtQmpChannel channel(libvirt_options);
  std::vector<double> passthrough;
  if (auto first = channel.execute("query-status", {}, milliseconds(20000)); !first) {
    std::fprintf(stderr, "LibvirtQmpChannel: %s\n", first.error().describe().c_str());
    rc = 1;
  } else {
    passthrough = channelLoop(channel, options.libvirt_n, "LibvirtQmpChannel");
  }
  printRow("LibvirtQmpChannel::execute, 1 caller", passthrough);
  printRow("virDomainQemuMonitorCommand loop (floor)",
           directLibvirtLoop(domain.name(), options.libvirt_n));
  std::vector<double> virsh;
  for (int i = 0; i < options.virsh_n && keepGoing(); ++i) {
    auto start = Clock::now();
    auto result = qmptest::virsh(
        {"qemu-monitor-command", domain.name(), "{\"execute\":\"query-status\"}"}, 20000);
    if (result.exit_code != 0) {
      std::fprintf(stderr, "virsh qemu-monitor-command: %s\n", result.message().c_str());
      break;
    }
    virsh.push_back(ms(Clock::now() - start));
  }
  printRow("virsh qemu-monitor-command, a process a call", virsh);
  return rc;
}

// ---- cases -----------------------------------------------------------------------------------

struct Case {
  const char* name;
  std::function<int(const Options&)> run;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"qmp-roundtrip", caseQmpRoundtrip},
  };
  return all;
}

void onSignal(int) { g_interrupted = true; }

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--case")
      options.cases.push_back(value());
    else if (arg == "--n")
      options.n = std::stoi(value());
    else if (arg == "--libvirt-n")
      options.libvirt_n = std::stoi(value());
    else if (arg == "--virsh-n")
      options.virsh_n = std::stoi(value());
    else if (arg == "--max-seconds")
      options.max_seconds = std::stoi(value());
    else {
      std::fprintf(stderr,
                   "usage: bench_online_ops [--case NAME]... [--n N] [--libvirt-n N] "
                   "[--virsh-n N] [--max-seconds S]\ncases:");
      for (const auto& c : cases()) std::fprintf(stderr, " %s", c.name);
      std::fprintf(stderr, "\n");
      return 2;
    }
  }
  Logger::setLevel(LogLevel::kWarn);
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  g_deadline = Clock::now() + std::chrono::seconds(options.max_seconds);
  int rc = 0;
  for (const auto& c : cases()) {
    if (!options.cases.empty() &&
        std::find(options.cases.begin(), options.cases.end(), c.name) == options.cases.end()) {
      continue;
    }
    rc |= c.run(options);
  }
  if (g_interrupted) std::printf("\ninterrupted: figures above are partial\n");
  return rc;
}
