// bench_host_scale: what N running VMs on one host cost qiaod, and how fast it stays.
// A qiaod of the bench's own (harness Qiaod: its own port on 127.0.0.1, state folder and
// cluster; volumes on the stack's Ceph) runs N small VMs: SeaBIOS, 64 MiB, one vCPU, one blank
// 1 GiB RBD volume (nothing to boot: the guest idles in the BIOS), TCG. Each VM gets one online
// operation (GET /v1/vms/{vm}/stats: QEMU's query-blockstats through its kept QMP monitor).
// Figures, with one VM and with N:
//   - qiaod's threads, RSS, open fds, and libvirt connections (its unix sockets whose peer is
//     libvirtd's socket, from `ss -xp`);
//   - GET /v1/vms?tenant=... (all N in one page) p50/p99/max over --get-n calls;
//   - GET /metrics p50/p99/max over --metrics-n scrapes, next to `virsh domstats --raw` of the
//     same domains (one process per call) as the floor;
//   - qiaod restarted (SIGTERM, start): until it serves, and until its log says the VMs are
//     reconciled with libvirt ("ready: ...").
// Everything it makes (VMs, volumes) is deleted at the end, also after an error, SIGINT/SIGTERM
// or --max-seconds. Traffic: 127.0.0.1 and local unix sockets only.
// Usage: bench_host_scale [--n N] [--get-n N] [--metrics-n N] [--parallel N] [--max-seconds S]
//                         (defaults: 100, 200, 20, 4, 2400)
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace qiao;
using namespace qiao::testing;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;
using nlohmann::json;

namespace {

struct Options {
  int n = 100;
  int get_n = 200;
  int metrics_n = 20;
  int parallel = 4;
  int max_seconds = 2400;
};

// Domains are named TENANT.VM on the shared libvirtd: a tenant of this run only.
const std::string kTenant = "scale-" + randomSuffix(6);
std::atomic<bool> g_stop{false};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_host_scale: %s\nusage: bench_host_scale [--n N] [--get-n N] "
               "[--metrics-n N] [--parallel N] [--max-seconds S]\n",
               why);
  std::exit(2);
}

Options parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    int v = std::atoi(argv[++i]);
    if (v <= 0) usage(("not a positive number after " + a).c_str());
    if (a == "--n") o.n = v;
    else if (a == "--get-n") o.get_n = v;
    else if (a == "--metrics-n") o.metrics_n = v;
    else if (a == "--parallel") o.parallel = v;
    else if (a == "--max-seconds") o.max_seconds = v;
    else usage(("unknown option " + a).c_str());
  }
  return o;
}

// A /proc/PID/status field's number ("Threads", "VmRSS" in kB).
long statusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

int openFds(pid_t pid) {
  int n = 0;
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// qiaod's unix sockets whose peer is a socket libvirtd accepted on /run/libvirt/libvirt-sock.
// `ss -xpn` columns: netid state recv-q send-q local-path local-inode peer-path peer-inode users.
int libvirtConnections(pid_t pid) {
  auto r = runCommand({"ss", "-xpn"}, 30000);
  if (r.exit_code != 0) return -1;
  std::set<std::string> client_inodes;  // the peers of libvirtd's accepted sockets
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.size() < 8) continue;
    if (w[4] == "/run/libvirt/libvirt-sock") client_inodes.insert(w[7]);
    rows.push_back(std::move(w));
  }
  const std::string mine = "pid=" + std::to_string(pid) + ",";
  int n = 0;
  for (const auto& w : rows) {
    if (w.size() >= 9 && w[8].find(mine) != std::string::npos && client_inodes.count(w[5])) ++n;
  }
  return n;
}

struct Footprint {
  long threads, rss_kib;
  int fds, libvirt;
};

Footprint footprint(pid_t pid) {
  return {statusField(pid, "Threads"), statusField(pid, "VmRSS"), openFds(pid),
          libvirtConnections(pid)};
}

void printFootprint(const char* what, const Footprint& f) {
  std::printf("%-28s threads %4ld  RSS %7.1f MiB  fds %5d  libvirt connections %3d\n", what,
              f.threads, static_cast<double>(f.rss_kib) / 1024.0, f.fds, f.libvirt);
  std::fflush(stdout);
}

std::string vmName(int i) { return "s" + std::to_string(i); }

json vmSpec(int i) {
  return {{"name", vmName(i)},
          {"tenant", kTenant},
          {"vcpus", 1},
          {"memory_mib", 64},
          {"firmware", "bios"},
          {"disks", json::array({{{"volume", vmName(i)}}})},
          {"labels", {{"bench", "host-scale"}}}};
}

// A request answered 202 with a task, followed until the task succeeded.
void mustSucceed(ApiClient& c, const std::string& method, const std::string& target,
                 const std::string& body) {
  auto r = call(c, method, target, body);
  if (r.status != 202) {
    throw std::runtime_error(method + " " + target + ": " + std::to_string(r.status) + " " + r.raw);
  }
  auto task = waitTask(c, r.body.value("id", ""), std::chrono::seconds(600));
  if (task.value("state", "") != "succeeded") {
    throw std::runtime_error(method + " " + target + ": task " + task.dump());
  }
}

// Makes VMs [from, to): a volume, then the VM (started), `parallel` at a time.
void makeVms(Qiaod& q, int from, int to, int parallel) {
  std::atomic<int> next{from};
  std::mutex err_mutex;
  std::string first_error;
  std::vector<std::thread> workers;
  for (int w = 0; w < parallel; ++w) {
    workers.emplace_back([&] {
      ApiClient c = q.adminClient();
      for (int i = next++; i < to && !g_stop; i = next++) {
        try {
          mustSucceed(c, "POST", "/v1/volumes",
                      json{{"name", vmName(i)}, {"tenant", kTenant}, {"size_gib", 1}}.dump());
          mustSucceed(c, "POST", "/v1/vms", vmSpec(i).dump());
          auto vm = waitVm(c, vmName(i), kTenant,
                           [](const json& v) { return v.value("state", "") == "running"; },
                           std::chrono::seconds(300));
          if (vm.value("state", "") != "running") throw std::runtime_error("not running: " + vm.dump());
          // The online operation: the kept monitor answers query-blockstats.
          auto stats = call(c, "GET", "/v1/vms/" + vmName(i) + "/stats?tenant=" + kTenant);
          if (stats.status != 200) throw std::runtime_error("stats: " + stats.raw);
        } catch (const std::exception& e) {
          std::lock_guard lock(err_mutex);
          if (first_error.empty()) first_error = vmName(i) + ": " + e.what();
          g_stop = true;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  if (!first_error.empty()) throw std::runtime_error(first_error);
}

void printLatency(const char* what, const std::vector<double>& v) {
  std::printf("%-36s n %4zu  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", what, v.size(),
              percentile(v, 50), percentile(v, 99), percentile(v, 100));
  std::fflush(stdout);
}

std::vector<double> timeCalls(int n, const std::function<void()>& one) {
  std::vector<double> out;
  for (int i = 0; i < n && !g_stop; ++i) {
    auto t0 = Clock::now();
    one();
    out.push_back(ms(Clock::now() - t0));
  }
  return out;
}

void cleanUp(Qiaod& q, int n) {
  ApiClient c = q.adminClient();
  for (int i = 0; i < n; ++i) {
    auto r = call(c, "DELETE", "/v1/vms/" + vmName(i) + "?tenant=" + kTenant + "&force=true");
    if (r.status == 202) waitTask(c, r.body.value("id", ""), std::chrono::seconds(300));
  }
  for (int i = 0; i < n; ++i) {
    auto r = call(c, "DELETE", "/v1/volumes/" + vmName(i) + "?tenant=" + kTenant);
    if (r.status == 202) waitTask(c, r.body.value("id", ""), std::chrono::seconds(300));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parseArgs(argc, argv);
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::thread watchdog([&o] {
    for (int s = 0; s < o.max_seconds && !g_stop; ++s) std::this_thread::sleep_for(std::chrono::seconds(1));
    g_stop = true;
  });
  watchdog.detach();

  std::printf("bench_host_scale: %d VMs (SeaBIOS, 64 MiB, 1 vCPU, a 1 GiB RBD volume each, TCG)\n",
              o.n);
  Qiaod q(stackCephConfig() + "\n[vm]\ncpu_overcommit_percent = 10000\n");
  int made = 0;
  int rc = 0;
  try {
    q.start();
    printFootprint("qiaod, no VM", footprint(q.pid()));
    makeVms(q, 0, 1, 1);
    made = 1;
    Footprint one = footprint(q.pid());
    printFootprint("qiaod, 1 VM", one);

    auto t0 = Clock::now();
    made = o.n;  // what cleanUp looks for, even when makeVms stops half way
    makeVms(q, 1, o.n, o.parallel);
    std::printf("%d VMs created, started and asked once in %.1f s\n", o.n - 1,
                ms(Clock::now() - t0) / 1000.0);
    Footprint many = footprint(q.pid());
    printFootprint(("qiaod, " + std::to_string(o.n) + " VMs").c_str(), many);
    std::printf("RSS at %d VMs / RSS at 1 VM: %.2f\n", o.n,
                static_cast<double>(many.rss_kib) / static_cast<double>(one.rss_kib));

    ApiClient c = q.adminClient();
    printLatency("GET /v1/vms (one page of all)", timeCalls(o.get_n, [&] {
                   auto r = call(c, "GET", "/v1/vms?tenant=" + kTenant + "&limit=1000");
                   if (r.status != 200 || r.body["items"].size() != static_cast<size_t>(o.n)) {
                     throw std::runtime_error("list: " + r.raw.substr(0, 300));
                   }
                 }));
    printLatency("GET /metrics", timeCalls(o.metrics_n, [&] {
                   auto r = c.request("GET", "/metrics");
                   if (!r || r->status != 200) throw std::runtime_error("metrics failed");
                 }));
    std::vector<std::string> domstats = {"virsh", "-c", "qemu:///system", "domstats", "--raw"};
    for (int i = 0; i < o.n; ++i) domstats.push_back(kTenant + "." + vmName(i));
    printLatency("floor: virsh domstats --raw (N doms)", timeCalls(o.metrics_n, [&] {
                   auto r = runCommand(domstats, 60000);
                   if (r.exit_code != 0) throw std::runtime_error("virsh domstats: " + r.err);
                 }));
    printFootprint(("qiaod, " + std::to_string(o.n) + " VMs, after").c_str(), footprint(q.pid()));

    // Restart: until it serves, and until the VMs are reconciled (its log says "ready").
    q.stopGracefully();
    const std::string log = q.dir() + "/qiaod.log";
    const size_t log_before = readFile(log).size();
    auto r0 = Clock::now();
    q.start();
    double serving = ms(Clock::now() - r0);
    double ready = -1;
    while (ms(Clock::now() - r0) < 120000 && !g_stop) {
      if (readFile(log).find("\"msg\":\"ready:", log_before) != std::string::npos) {
        ready = ms(Clock::now() - r0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::printf("restart with %d running VMs: serving after %.0f ms, reconciled after %.0f ms\n",
                o.n, serving, ready);
    printFootprint("qiaod, restarted", footprint(q.pid()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_host_scale: %s\n", e.what());
    rc = 1;
  }
  g_stop = false;
  if (q.running()) cleanUp(q, made);
  return rc;
}
