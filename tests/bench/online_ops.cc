// bench_online_ops: the operations Qiao performs on running guests, each next to its floor.
// One case per section.
//   qmp-roundtrip: one QMP command (query-status) and its reply, p50/p99/max (after a warm-up
//     of min(200, n/10) calls per path, not counted) of
//     1. a raw unix-socket write/read loop on `qemu-system-x86_64 -machine none` (the floor);
//     2. QmpSocketChannel::execute on the same QEMU, one caller, then 4 callers at once;
//     3. LibvirtQmpChannel::execute on a transient libvirt guest (qemu:///system), next to
//        virDomainQemuMonitorCommand called in a loop on this thread (its floor);
//     4. `virsh qemu-monitor-command DOMAIN '{"execute":"query-status"}'`, a process per call
//        (the floor of the libvirt path as an operator would run it).
//   QEMU is this process's child (killed at the end); the guest is `qbench-qmp-<pid>`, 64 MiB,
//   TCG, no disks, no network, destroyed at the end, on SIGINT/SIGTERM, and after --max-seconds.
//   hotplug: a 1 GiB RBD disk plugged into a running test guest and unplugged again, p50/p99/max
//     of each (one warm-up round per path, not counted), the two paths taking turns:
//     1. through the API of a qiaod of the bench's own (harness Qiaod: its own port on 127.0.0.1
//        and state folder, volumes on the stack's Ceph): POST /v1/vms/{vm}/disks and DELETE
//        /v1/vms/{vm}/disks/{volume}, each until its task is done, on --hotplug-n volumes;
//     2. the floor: `virsh attach-device DOMAIN disk.xml --live` and `virsh detach-device ...
//        --live` (a process per call) of a libvirt RBD network disk on an image of the pool's
//        default namespace, into the same guest (same QEMU); the detach also until `virsh
//        domblklist` no longer lists the disk.
//     After each plug and unplug the bench waits, untimed, for the guest to report the disk
//     come or gone. While the API's disk is plugged, a GET /metrics (whose RBD disk series
//     must be there) is timed next to `virsh domstats DOMAIN` + `virsh qemu-monitor-command
//     DOMAIN query-blockstats`. Everything it makes (the VM, the volumes and their RBD
//     namespace, the floor's images, the libvirt ceph secret) is removed at the end, also
//     after an error, SIGINT/SIGTERM or --max-seconds.
//   block-copy: a full copy of a 1 GiB volume filled with random data, MiB/s of each round
//     (the two paths taking turns, --copy-n rounds each):
//     1. through the API of a qiaod of the bench's own: POST /v1/volumes/{name}/copy until its
//        task is done (the volume is attached to no VM: the copy runs in a qemu-storage-daemon,
//        blockdev-backup sync=full), the copy deleted after each round;
//     2. the floor: `qemu-img convert -n -f raw -O raw` from the same image into an image made
//        beforehand in the same namespace (`rbd create`), removed after each round.
//     The volume, the copies, the floor's images and the tenant's namespace are removed at
//     the end, also after an error, SIGINT/SIGTERM or --max-seconds.
// Unix sockets, libvirtd, and the stack's Ceph and the bench's qiaod on 127.0.0.1 only.
// Usage: bench_online_ops [--case NAME]... [--n N] [--libvirt-n N] [--virsh-n N]
//                         [--hotplug-n N] [--copy-n N] [--max-seconds S]
//                         (defaults: all cases, 2000, 500, 30, 10, 3, 600)
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
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/handle.h"
#include "base/log.h"
#include "node/vm/qmp/libvirt_qmp_channel.h"
#include "node/vm/qmp/qmp_socket.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"
#include "tests/integration/node/vm/qmp/qmp_test_util.h"

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
  int hotplug_n = 10;
  int copy_n = 3;
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

// ---- hotplug ---------------------------------------------------------------------------------

namespace it = qiao::testing;
using nlohmann::json;

// How long the guest may take to report a disk come or gone (it looks every second).
constexpr auto kGuestReports = std::chrono::seconds(30);
constexpr const char* kDiskCame = "QIAO-TEST-GUEST blk vd";
constexpr const char* kDiskWent = "QIAO-TEST-GUEST blk-gone vd";

std::chrono::seconds secondsLeft(std::chrono::seconds at_most) {
  auto left = std::chrono::duration_cast<std::chrono::seconds>(g_deadline - Clock::now());
  return std::clamp(left, std::chrono::seconds(1), at_most);
}

ProcessResult runTool(std::vector<std::string> argv, int timeout_ms = 60000) {
  ProcessOptions options;
  options.argv = std::move(argv);
  options.timeout_ms = timeout_ms;
  auto result = runProcess(options);
  if (result) return *result;
  ProcessResult failed;
  failed.err = result.error().message;
  return failed;
}

// The stack's Ceph as client.qiao (the user qiaod runs as, with its caps).
ProcessResult rbd(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      "rbd",  "--conf",    it::kStackCephDir + "/ceph.conf",          "--id",
      "qiao", "--keyring", it::kStackCephDir + "/client.qiao.keyring"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runTool(argv);
}

// The monitor's address from the stack's ceph.conf ("mon host = [v1:127.0.0.1:6789]"); the
// bench talks to loopback only, so anything else is refused ("").
std::pair<std::string, std::string> loopbackMon() {
  const std::string conf = it::readFile(it::kStackCephDir + "/ceph.conf");
  std::smatch line, addr;
  if (!std::regex_search(conf, line, std::regex("mon[ _]host\\s*=\\s*([^\\n]*)"))) return {};
  const std::string value = line[1];
  if (!std::regex_search(value, addr, std::regex("(127\\.\\d+\\.\\d+\\.\\d+):(\\d+)"))) return {};
  return {addr[1], addr[2]};
}

std::string cephKey() {
  const std::string keyring = it::readFile(it::kStackCephDir + "/client.qiao.keyring");
  std::smatch key;
  if (!std::regex_search(keyring, key, std::regex("key\\s*=\\s*(\\S+)"))) return {};
  return key[1];
}

std::string newUuid() {
  std::string uuid = it::readFile("/proc/sys/kernel/random/uuid");
  while (!uuid.empty() && uuid.back() == '\n') uuid.pop_back();
  return uuid;
}

// A built qiaod and the stack's Ceph, which the API cases need; says which is missing.
bool qiaodAndCephHere() {
  if (!std::filesystem::exists(it::qiaodBinary())) {
    std::printf("  no qiaod at %s (build it, or set QIAO_BUILD_DIR): skipped\n",
                it::qiaodBinary().c_str());
    return false;
  }
  if (rbd({"ls", "qiao"}).exit_code != 0) {
    std::printf("  the stack's Ceph does not answer (scripts/stack up --no-qiaod): skipped\n");
    return false;
  }
  return true;
}

// The floor's disk: what libvirt makes of it is what Qiao plugs (a raw RBD node with
// writeback cache and discard, a virtio-blk-pci device on a free PCIe root port), minus the
// RBD namespace, which libvirt 9.0 cannot name.
std::string floorDiskXml(const std::string& image, const std::string& mon_ip,
                         const std::string& mon_port, const std::string& secret_uuid) {
  std::string xml = "<disk type='network' device='disk'>\n";
  xml += "  <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>\n";
  xml += "  <source protocol='rbd' name='qiao/" + image + "'>\n";
  xml += "    <host name='" + mon_ip + "' port='" + mon_port + "'/>\n";
  xml += "    <auth username='qiao'><secret type='ceph' uuid='" + secret_uuid + "'/></auth>\n";
  xml += "  </source>\n";
  xml += "  <target dev='vdb' bus='virtio'/>\n";
  xml += "</disk>\n";
  return xml;
}

// Everything the hotplug case makes, removed by the destructor whatever came before (an
// error, SIGINT, the deadline), each part on its own so that one failure leaves no more than
// itself behind, which is then named.
struct HotplugRun {
  explicit HotplugRun(it::Qiaod& qiaod) : qiaod(qiaod) {}
  ~HotplugRun() { cleanUp(); }
  HotplugRun(const HotplugRun&) = delete;
  HotplugRun& operator=(const HotplugRun&) = delete;

  it::Qiaod& qiaod;
  std::string tenant, vm, domain, dir;
  bool vm_made = false;
  std::vector<std::string> volumes;  // through the API, in the tenant's RBD namespace
  std::vector<std::string> images;   // the floor's, in the pool's default namespace
  std::string secret_uuid;           // a libvirt ceph secret, ephemeral
  std::string floor_disk_xml;        // a floor disk that may still be in the guest

  void cleanUp() {
    std::vector<std::string> left;
    auto attempt = [&](const std::string& what, const std::function<bool()>& undo) {
      bool done = false;
      try {
        done = undo();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "hotplug cleanup, %s: %s\n", what.c_str(), e.what());
      }
      if (!done) left.push_back(what);
    };
    if (!floor_disk_xml.empty()) {
      // Let go by libvirt before the VM goes, so that no watch is left on the image.
      attempt("the floor's disk in " + domain, [&] {
        qmptest::virsh({"detach-device", domain, floor_disk_xml, "--live"}, 30000);
        return true;
      });
    }
    const bool api_made = vm_made || !volumes.empty();
    bool qiaod_up = false;
    if (api_made) {
      // A Ctrl-C reaches qiaod too (our process group): it is started again to undo its part.
      attempt("qiaod", [&] {
        qiaod.start();
        auto c = qiaod.adminClient();
        it::waitAllTasksDone(c, std::chrono::seconds(60));
        qiaod_up = true;
        return true;
      });
    }
    auto finished = [&](const std::string& method, const std::string& target) {
      auto c = qiaod.adminClient();
      auto r = it::call(c, method, target);
      if (r.status == 404) return true;
      if (r.status != 202) {
        std::fprintf(stderr, "hotplug cleanup: %s %s: %s\n", method.c_str(), target.c_str(),
                     r.raw.c_str());
        return false;
      }
      auto task = it::waitTask(c, r.body.value("id", ""), std::chrono::seconds(180));
      if (task["state"] == "succeeded") return true;
      std::fprintf(stderr, "hotplug cleanup: %s %s: %s\n", method.c_str(), target.c_str(),
                   task.dump().c_str());
      return false;
    };
    if (vm_made) {
      attempt("vm " + tenant + "/" + vm, [&] {
        return qiaod_up &&
               finished("DELETE", "/v1/vms/" + vm + "?tenant=" + tenant + "&force=true");
      });
    }
    const size_t volumes_left = left.size();
    for (const auto& volume : volumes) {
      attempt("volume " + tenant + "/" + volume, [&] {
        return qiaod_up && finished("DELETE", "/v1/volumes/" + volume + "?tenant=" + tenant);
      });
    }
    if (!volumes.empty() && left.size() == volumes_left) {
      // The namespace qiaod made for the tenant's volumes, empty now.
      attempt("rbd namespace qiao/" + tenant, [&] {
        return rbd({"namespace", "remove", "qiao/" + tenant}).exit_code == 0;
      });
    }
    for (const auto& image : images) {
      attempt("rbd image qiao/" + image, [&] {
        // A QEMU killed with its VM keeps a watch until the OSD drops it (30 s).
        const auto until = Clock::now() + std::chrono::seconds(45);
        for (;;) {
          auto removed = rbd({"rm", "--no-progress", "qiao/" + image});
          if (removed.exit_code == 0) return true;
          if (Clock::now() > until) {
            std::fprintf(stderr, "hotplug cleanup: rbd rm qiao/%s: %s\n", image.c_str(),
                         removed.message().c_str());
            return false;
          }
          std::this_thread::sleep_for(std::chrono::seconds(2));
        }
      });
    }
    if (!secret_uuid.empty()) {
      attempt("libvirt secret " + secret_uuid, [&] {
        return qmptest::virsh({"secret-undefine", secret_uuid}, 30000).exit_code == 0;
      });
    }
    if (!dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
    if (left.empty()) {
      std::printf("  cleaned up: vm, volumes, images, secret\n");
    } else {
      for (const auto& what : left) {
        std::fprintf(stderr, "hotplug: left behind: %s\n", what.c_str());
      }
    }
  }
};

struct HotplugSamples {
  std::vector<double> api_attach, api_detach;
  std::vector<double> virsh_attach, virsh_detach_return, virsh_detach_gone;
  // A /metrics scrape while the API's disk is plugged, and its floor: `virsh domstats` and
  // `virsh qemu-monitor-command DOMAIN query-blockstats`, one after the other.
  std::vector<double> api_metrics, virsh_metrics;
  int virsh_request_sent = 0;  // detaches virsh answered before the guest let the disk go
};

int measureHotplug(HotplugRun& run, const Options& options, HotplugSamples& out) {
  it::Qiaod& qiaod = run.qiaod;
  auto c = qiaod.adminClient();
  const std::string suffix = it::randomSuffix(6);
  run.tenant = "qbhp" + suffix;
  run.vm = "hp";
  run.domain = run.tenant + "." + run.vm;
  const int n = std::max(1, options.hotplug_n);

  auto succeeded = [&](const std::string& method, const std::string& target,
                       const std::string& body, const std::function<void()>& on_accepted,
                       std::chrono::seconds timeout) -> bool {
    auto r = it::call(c, method, target, body);
    if (r.status != 202) {
      std::fprintf(stderr, "hotplug: %s %s: %d %s\n", method.c_str(), target.c_str(), r.status,
                   r.raw.c_str());
      return false;
    }
    if (on_accepted) on_accepted();
    auto task = it::waitTask(c, r.body.value("id", ""), timeout, milliseconds(20));
    if (task["state"] == "succeeded") return true;
    std::fprintf(stderr, "hotplug: %s %s: %s\n", method.c_str(), target.c_str(),
                 task.dump().c_str());
    return false;
  };

  // 1. The guest (reporting its block devices as they come and go), the volumes.
  if (!succeeded(
          "POST", "/v1/vms", it::guestSpec(run.vm, run.tenant, "qiao.watchblk=1").dump(),
          [&] { run.vm_made = true; }, std::chrono::seconds(180))) {
    return 1;
  }
  int came = 0, went = 0;  // the guest's reports so far
  {
    const std::string booted = "QIAO-TEST-GUEST booted";
    auto text =
        it::waitConsole(c, run.vm, run.tenant, booted, 1, secondsLeft(std::chrono::seconds(180)));
    if (it::countOccurrences(text, booted) < 1) {
      if (!keepGoing()) return 0;
      std::fprintf(stderr, "hotplug: the guest did not boot; its console:\n%s\n", text.c_str());
      return 1;
    }
    came = it::countOccurrences(text, kDiskCame);
    went = it::countOccurrences(text, kDiskWent);
  }
  for (int i = 0; i < n && keepGoing(); ++i) {
    const std::string name = "v" + std::to_string(i);
    if (!succeeded(
            "POST", "/v1/volumes",
            json{{"name", name}, {"tenant", run.tenant}, {"size_gib", 1}}.dump(),
            [&] { run.volumes.push_back(name); }, std::chrono::seconds(120))) {
      return 1;
    }
  }

  // 2. The floor's secret and images.
  const auto [mon_ip, mon_port] = loopbackMon();
  const std::string key = cephKey();
  if (mon_ip.empty() || key.empty()) {
    std::fprintf(stderr,
                 "hotplug: no loopback monitor address in %s/ceph.conf or no key in "
                 "client.qiao.keyring\n",
                 it::kStackCephDir.c_str());
    return 1;
  }
  run.dir = qmptest::makeTempDir("qbench-hp");  // 0700
  {
    const std::string uuid = newUuid();
    const std::string xml_path = run.dir + "/secret.xml";
    std::ofstream(xml_path) << "<secret ephemeral='yes' private='yes'>\n"
                            << "  <uuid>" << uuid << "</uuid>\n"
                            << "  <description>bench_online_ops hotplug floor, undefined at "
                               "its end</description>\n"
                            << "  <usage type='ceph'><name>qbench-hotplug-" << suffix
                            << "</name></usage>\n"
                            << "</secret>\n";
    auto defined = qmptest::virsh({"secret-define", xml_path}, 30000);
    if (defined.exit_code != 0) {
      std::fprintf(stderr, "hotplug: virsh secret-define: %s\n", defined.message().c_str());
      return 1;
    }
    run.secret_uuid = uuid;
    // The key through a file of this folder, never on a command line.
    const std::string key_path = run.dir + "/key";
    std::ofstream(key_path) << key;
    auto set = qmptest::virsh({"secret-set-value", uuid, "--file", key_path}, 30000);
    std::filesystem::remove(key_path);
    if (set.exit_code != 0) {
      std::fprintf(stderr, "hotplug: virsh secret-set-value: %s\n", set.message().c_str());
      return 1;
    }
  }
  std::vector<std::string> floor_xml;
  for (int i = 0; i < n && keepGoing(); ++i) {
    const std::string image = "qbench-hp-" + suffix + "-" + std::to_string(i);
    auto made = rbd({"create", "--size", "1024", "qiao/" + image});
    if (made.exit_code != 0) {
      std::fprintf(stderr, "hotplug: rbd create qiao/%s: %s\n", image.c_str(),
                   made.message().c_str());
      return 1;
    }
    run.images.push_back(image);
    floor_xml.push_back(run.dir + "/disk-" + std::to_string(i) + ".xml");
    std::ofstream(floor_xml.back()) << floorDiskXml(image, mon_ip, mon_port, run.secret_uuid);
  }
  if (!keepGoing()) return 0;

  // 3. The rounds. The guest reports each disk come and go before the next step (untimed).
  const std::string console =
      "/v1/vms/" + run.vm + "/console-log?tenant=" + run.tenant + "&tail_bytes=1048576";
  auto guestReports = [&](bool plugged) -> bool {
    const char* needle = plugged ? kDiskCame : kDiskWent;
    const int want = ++(plugged ? came : went);
    const auto until = Clock::now() + kGuestReports;
    // Not it::waitConsole: a Ctrl-C stops qiaod too, and this must not wait for it then.
    while (!g_interrupted && Clock::now() < until) {
      auto r = c.request("GET", console);
      if (r && r->status == 200 && it::countOccurrences(r->body, needle) >= want) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    if (!g_interrupted) {
      std::fprintf(stderr, "hotplug: the guest did not report a disk %s within %lld s\n",
                   plugged ? "come" : "gone", static_cast<long long>(kGuestReports.count()));
    }
    return false;
  };
  auto apiTimed = [&](const std::string& method, const std::string& target, const std::string& body,
                      double* took) -> bool {
    auto start = Clock::now();
    auto r = it::call(c, method, target, body);
    if (r.status != 202) {
      std::fprintf(stderr, "hotplug: %s %s: %d %s\n", method.c_str(), target.c_str(), r.status,
                   r.raw.c_str());
      return false;
    }
    // Polled every 5 ms, so that the figure is the task's, not the polling's.
    auto task = it::waitTask(c, r.body.value("id", ""), std::chrono::seconds(120), milliseconds(5));
    *took = ms(Clock::now() - start);
    if (task["state"] == "succeeded") return true;
    std::fprintf(stderr, "hotplug: %s %s: %s\n", method.c_str(), target.c_str(),
                 task.dump().c_str());
    return false;
  };
  auto virshTimed = [&](const std::vector<std::string>& args, double* took,
                        std::string* said = nullptr) -> bool {
    auto start = Clock::now();
    auto r = qmptest::virsh(args, 60000);
    *took = ms(Clock::now() - start);
    if (said != nullptr) *said = r.out;
    if (r.exit_code == 0) return true;
    std::fprintf(stderr, "hotplug: virsh %s: %s\n", args[0].c_str(), r.message().c_str());
    return false;
  };

  auto apiRound = [&](size_t k, bool counted) -> bool {
    const std::string volume = run.volumes[k];
    double attach = 0, detach = 0;
    if (!apiTimed("POST", "/v1/vms/" + run.vm + "/disks?tenant=" + run.tenant,
                  json{{"volume", volume}}.dump(), &attach) ||
        !guestReports(true)) {
      return false;
    }
    if (counted) {
      // /metrics with the disk plugged: its RBD series must be there (read from QEMU).
      auto start = Clock::now();
      auto scraped = c.request("GET", "/metrics");
      const double took = ms(Clock::now() - start);
      const std::string series = "volume=\"" + volume + "\",backend=\"rbd\"";
      if (!scraped || scraped->status != 200 || scraped->body.find(series) == std::string::npos) {
        std::fprintf(stderr, "hotplug: GET /metrics has no series of the plugged disk %s\n",
                     volume.c_str());
        return false;
      }
      double domstats = 0, blockstats = 0;
      if (!virshTimed({"domstats", run.domain}, &domstats) ||
          !virshTimed({"qemu-monitor-command", run.domain, R"({"execute":"query-blockstats"})"},
                      &blockstats)) {
        return false;
      }
      out.api_metrics.push_back(took);
      out.virsh_metrics.push_back(domstats + blockstats);
    }
    if (!apiTimed("DELETE", "/v1/vms/" + run.vm + "/disks/" + volume + "?tenant=" + run.tenant, "",
                  &detach) ||
        !guestReports(false)) {
      return false;
    }
    if (counted) {
      out.api_attach.push_back(attach);
      out.api_detach.push_back(detach);
    }
    return true;
  };
  auto floorRound = [&](size_t k, bool counted) -> bool {
    const std::string& xml = floor_xml[k];
    const std::string& image = run.images[k];
    double attach = 0, returned = 0;
    run.floor_disk_xml = xml;
    if (!virshTimed({"attach-device", run.domain, xml, "--live"}, &attach) || !guestReports(true)) {
      return false;
    }
    const auto start = Clock::now();
    std::string said;
    if (!virshTimed({"detach-device", run.domain, xml, "--live"}, &returned, &said)) return false;
    const bool request_only = said.find("request sent") != std::string::npos;
    double gone = -1;
    while (Clock::now() - start < std::chrono::seconds(30)) {
      auto listed = qmptest::virsh({"domblklist", run.domain}, 30000);
      if (listed.exit_code == 0 && listed.out.find(image) == std::string::npos) {
        gone = ms(Clock::now() - start);
        break;
      }
    }
    if (gone < 0) {
      std::fprintf(stderr, "hotplug: %s still lists qiao/%s 30 s after virsh detach-device\n",
                   run.domain.c_str(), image.c_str());
      return false;
    }
    run.floor_disk_xml.clear();
    if (!guestReports(false)) return false;
    if (counted) {
      out.virsh_attach.push_back(attach);
      out.virsh_detach_return.push_back(returned);
      out.virsh_detach_gone.push_back(gone);
      if (request_only) ++out.virsh_request_sent;
    }
    return true;
  };

  // A warm-up round per path (i = -1, on the first volume and image), then n counted ones; the
  // path that goes first alternates, so that neither always follows the other.
  bool api_ok = true, floor_ok = true;
  for (int i = -1; i < n && keepGoing() && (api_ok || floor_ok); ++i) {
    const size_t k = i < 0 ? 0 : static_cast<size_t>(i);
    for (int turn = 0; turn < 2 && keepGoing(); ++turn) {
      if ((turn == 0) == (i % 2 == 0)) {
        if (api_ok) api_ok = apiRound(k, i >= 0);
      } else {
        if (floor_ok) floor_ok = floorRound(k, i >= 0);
      }
    }
  }
  return api_ok && floor_ok ? 0 : 1;
}

int caseHotplug(const Options& options) {
  std::printf("\n== hotplug: a 1 GiB RBD disk plugged into a running guest, then unplugged\n");
  if (!qmptest::libvirtdUp()) {
    std::printf("  libvirtd is not running (scripts/stack up --no-qiaod): skipped\n");
    return 0;
  }
  if (!it::testGuestAvailable()) {
    std::printf(
        "  no test guest in %s (scripts/build-test-guest --out DIR, or "
        "QIAO_TEST_GUEST_DIR): skipped\n",
        it::testGuestDir().c_str());
    return 0;
  }
  if (!qiaodAndCephHere()) return 0;
  HotplugSamples samples;
  int rc = 0;
  try {
    it::Qiaod qiaod(it::stackCephConfig());
    qiaod.start();
    HotplugRun run(qiaod);  // removed before qiaod stops
    try {
      rc = measureHotplug(run, options, samples);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hotplug: %s\n", e.what());
      rc = 1;
    }
    std::printf(
        "guest: test guest, TCG, 256 MiB, q35; volumes and images 1 GiB on the "
        "stack's Ceph\n");
    printHeader();
    printRow("API POST .../disks, to the task's end", samples.api_attach);
    printRow("virsh attach-device --live (floor)", samples.virsh_attach);
    printRow("API DELETE .../disks/V, to the task's end", samples.api_detach);
    printRow("virsh detach-device --live, its return", samples.virsh_detach_return);
    printRow("  ... until domblklist drops it (floor)", samples.virsh_detach_gone);
    printRow("API GET /metrics, the disk plugged", samples.api_metrics);
    printRow("virsh domstats + query-blockstats (floor)", samples.virsh_metrics);
    if (!samples.api_attach.empty() && !samples.virsh_attach.empty()) {
      std::printf(
          "  API/virsh p50: attach %.2fx, detach %.2fx (against virsh until gone; %.2fx "
          "against its return)   (goal <= 1.2x)\n",
          percentile(samples.api_attach, 50) / percentile(samples.virsh_attach, 50),
          percentile(samples.api_detach, 50) / percentile(samples.virsh_detach_gone, 50),
          percentile(samples.api_detach, 50) / percentile(samples.virsh_detach_return, 50));
    }
    if (!samples.api_metrics.empty() && !samples.virsh_metrics.empty()) {
      std::printf("  API/virsh p50: /metrics %.2fx\n",
                  percentile(samples.api_metrics, 50) / percentile(samples.virsh_metrics, 50));
    }
    if (!samples.virsh_detach_return.empty()) {
      std::printf(
          "  virsh detach-device answered \"request sent\" (before the guest let go) "
          "%d of %zu times\n",
          samples.virsh_request_sent, samples.virsh_detach_return.size());
    }
    std::printf(
        "  API: from the request to the task's end (polled every 5 ms): attach = volume claimed,\n"
        "    spec and libvirt definition rewritten, qom-list, query-named-block-nodes,\n"
        "    blockdev-add x2, query-pci, device_add; detach = device_del and the guest's\n"
        "    DEVICE_DELETED, blockdev-del x2, spec and definition rewritten, volume released.\n"
        "  virsh: a process per call (connect to libvirtd, one API call); attach = libvirt's\n"
        "    object-add of the key, blockdev-add x2, device_add, live only (the persistent\n"
        "    definition stays as it is); detach = device_del, libvirt waiting (up to 5 s) for\n"
        "    DEVICE_DELETED, blockdev-del; \"until domblklist\" adds the `virsh domblklist`\n"
        "    processes run back to back from the detach's start until the disk is not listed.\n"
        "  /metrics: one libvirt bulk stats call and query-blockstats through the VM's kept\n"
        "    monitor (the bench's qiaod has this one VM); its floor is two virsh processes.\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotplug: %s\n", e.what());
    return 1;
  }
  return rc;
}

// ---- block-copy ------------------------------------------------------------------------------

constexpr int64_t kCopyBytes = int64_t{1} << 30;

// What the block-copy case makes, removed by the destructor whatever came before.
struct CopyRun {
  explicit CopyRun(it::Qiaod& qiaod) : qiaod(qiaod) {}
  ~CopyRun() { cleanUp(); }
  CopyRun(const CopyRun&) = delete;
  CopyRun& operator=(const CopyRun&) = delete;

  it::Qiaod& qiaod;
  std::string tenant;
  std::vector<std::string> volumes;  // through the API
  std::vector<std::string> images;   // the floor's, "<tenant>/<image>"

  void cleanUp() {
    std::vector<std::string> left;
    if (!volumes.empty()) {
      try {
        qiaod.start();  // a Ctrl-C reaches qiaod too (our process group)
        auto c = qiaod.adminClient();
        it::waitAllTasksDone(c, std::chrono::seconds(120));
        for (const auto& v : volumes) {
          auto r = it::call(c, "DELETE", "/v1/volumes/" + v + "?tenant=" + tenant);
          if (r.status == 404) continue;
          if (r.status != 202 || it::waitTask(c, r.body.value("id", ""))["state"] != "succeeded") {
            left.push_back("volume " + tenant + "/" + v);
          }
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "block-copy cleanup: %s\n", e.what());
        left.push_back("the volumes of tenant " + tenant);
      }
    }
    for (const auto& image : images) {
      if (rbd({"rm", "--no-progress", "qiao/" + image}).exit_code != 0 &&
          rbd({"info", "qiao/" + image}).exit_code == 0) {
        left.push_back("rbd image qiao/" + image);
      }
    }
    if (!tenant.empty() && left.empty() && (!volumes.empty() || !images.empty())) {
      if (rbd({"namespace", "remove", "qiao/" + tenant}).exit_code != 0) {
        left.push_back("rbd namespace qiao/" + tenant);
      }
    }
    for (const auto& what : left) std::fprintf(stderr, "block-copy: left behind: %s\n", what.c_str());
    if (left.empty()) std::printf("  cleaned up: volumes, copies, images, namespace\n");
  }
};

// qemu-img's JSON name of an image of the stack's pool (the keyring comes from the conf).
std::string qemuImgRbd(const std::string& ns, const std::string& image) {
  return "json:" + nlohmann::json{{"driver", "raw"},
                                  {"file",
                                   {{"driver", "rbd"},
                                    {"pool", "qiao"},
                                    {"namespace", ns},
                                    {"image", image},
                                    {"user", "qiao"},
                                    {"conf", it::kStackCephDir + "/ceph.conf"}}}}
                       .dump();
}

int measureCopies(CopyRun& run, const Options& options, std::vector<double>& api,
                  std::vector<double>& floor) {
  auto c = run.qiaod.adminClient();
  run.tenant = "qbbc" + it::randomSuffix(6);
  const std::string source = "src";
  auto made = it::call(c, "POST", "/v1/volumes",
                       nlohmann::json{{"name", source}, {"tenant", run.tenant}, {"size_gib", 1}}
                           .dump());
  run.volumes.push_back(source);
  if (made.status != 202 || it::waitTask(c, made.body.value("id", ""))["state"] != "succeeded") {
    std::fprintf(stderr, "block-copy: cannot make the source volume: %s\n", made.raw.c_str());
    return 1;
  }
  {  // Random data in every block: nothing for either path to skip.
    auto ceph = it::stackCeph();
    auto writer = ceph->openWriter({run.tenant, "vol-" + source});
    if (!writer) {
      std::fprintf(stderr, "block-copy: %s\n", writer.error().describe().c_str());
      return 1;
    }
    std::string data(4 << 20, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int64_t offset = 0; offset < kCopyBytes; offset += static_cast<int64_t>(data.size())) {
      for (size_t i = 0; i + 8 <= data.size(); i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(&data[i], &x, 8);
      }
      if (!(*writer)->write(static_cast<uint64_t>(offset), data.data(), data.size())) return 1;
    }
    if (!(*writer)->finish()) return 1;
  }
  const double mib = static_cast<double>(kCopyBytes >> 20);
  for (int round = 0; round < std::max(1, options.copy_n); ++round) {
    if (g_interrupted || Clock::now() >= g_deadline) break;
    const std::string copy = "copy" + std::to_string(round);
    run.volumes.push_back(copy);
    auto start = Clock::now();
    auto r = it::call(c, "POST", "/v1/volumes/" + source + "/copy?tenant=" + run.tenant,
                      nlohmann::json{{"name", copy}}.dump());
    auto task = r.status == 202 ? it::waitTask(c, r.body.value("id", ""), secondsLeft(std::chrono::seconds(300)),
                                               std::chrono::milliseconds(20))
                                : nlohmann::json();
    if (task.value("state", "") != "succeeded") {
      std::fprintf(stderr, "block-copy: the API copy failed: %s %s\n", r.raw.c_str(),
                   task.dump().c_str());
      return 1;
    }
    api.push_back(mib / std::chrono::duration<double>(Clock::now() - start).count());
    auto del = it::call(c, "DELETE", "/v1/volumes/" + copy + "?tenant=" + run.tenant);
    if (del.status == 202) it::waitTask(c, del.body.value("id", ""));

    const std::string image = "floor" + std::to_string(round);
    run.images.push_back(run.tenant + "/" + image);
    if (rbd({"create", "--size", "1G", "qiao/" + run.tenant + "/" + image}).exit_code != 0) {
      std::fprintf(stderr, "block-copy: rbd create failed\n");
      return 1;
    }
    start = Clock::now();
    auto converted = runTool({"qemu-img", "convert", "-n", "-f", "raw", "-O", "raw",
                              qemuImgRbd(run.tenant, "vol-" + source),
                              qemuImgRbd(run.tenant, image)},
                             300000);
    if (converted.exit_code != 0) {
      std::fprintf(stderr, "block-copy: qemu-img convert: %s\n", converted.message().c_str());
      return 1;
    }
    floor.push_back(mib / std::chrono::duration<double>(Clock::now() - start).count());
    rbd({"rm", "--no-progress", "qiao/" + run.tenant + "/" + image});
  }
  return 0;
}

int caseBlockCopy(const Options& options) {
  std::printf("\n== block-copy: a full copy of a 1 GiB volume of random data, MiB/s\n");
  if (!qiaodAndCephHere()) return 0;
  std::vector<double> api, floor;
  int rc = 0;
  try {
    it::Qiaod qiaod(it::stackCephConfig());
    qiaod.start();
    CopyRun run(qiaod);
    rc = measureCopies(run, options, api, floor);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "block-copy: %s\n", e.what());
    rc = 1;
  }
  auto show = [](const char* what, std::vector<double> v) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    std::printf("  %-52s n=%zu  min %.0f  median %.0f  max %.0f MiB/s\n", what, v.size(),
                v.front(), v[v.size() / 2], v.back());
  };
  show("API volume copy (qemu-storage-daemon), to the task's end", api);
  show("qemu-img convert -n (floor)", floor);
  if (!api.empty() && !floor.empty()) {
    std::sort(api.begin(), api.end());
    std::sort(floor.begin(), floor.end());
    std::printf("  API/qemu-img median: %.2fx   (goal >= 0.9x)\n",
                api[api.size() / 2] / floor[floor.size() / 2]);
  }
  std::printf(
      "  API: from the request to the task's end (polled every 20 ms): the target created, a\n"
      "    qemu-storage-daemon started, both images opened, blockdev-backup sync=full, the job\n"
      "    followed, the daemon told to quit, the volume recorded. qemu-img: the copy alone\n"
      "    (its target made beforehand by `rbd create`, not timed).\n");
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
      {"hotplug", caseHotplug},
      {"block-copy", caseBlockCopy},
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
    else if (arg == "--hotplug-n")
      options.hotplug_n = std::stoi(value());
    else if (arg == "--copy-n")
      options.copy_n = std::stoi(value());
    else if (arg == "--max-seconds")
      options.max_seconds = std::stoi(value());
    else {
      std::fprintf(stderr,
                   "usage: bench_online_ops [--case NAME]... [--n N] [--libvirt-n N] "
                   "[--virsh-n N] [--hotplug-n N] [--copy-n N] [--max-seconds S]\ncases:");
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
  if (g_interrupted) {
    std::printf("\ninterrupted: figures above are partial\n");
  } else if (Clock::now() >= g_deadline) {
    std::printf("\n--max-seconds reached: figures above may be partial\n");
  }
  return rc;
}
