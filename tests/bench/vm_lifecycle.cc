// bench_vm_lifecycle: qiaod's VM lifecycle next to the floor of doing the same with virsh.
//   1. create+start of N VMs through the API (POST /v1/vms, wait for the task) versus
//      `virsh define` + `virsh start` of the same domain XML: p50/p95 each and the ratio;
//   2. qiaod's resident memory with those N VMs running;
//   3. GET /v1/vms with M defined VMs: p50/p99 over K requests (a page of 100, and all M).
// Usage: bench_vm_lifecycle [--vms N] [--list-vms M] [--requests K]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace qiao;
using namespace qiao::testing;
using nlohmann::json;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;

namespace {

long rssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

json spec(const std::string& name, const std::string& tenant) {
  return {{"name", name}, {"tenant", tenant}, {"vcpus", 1}, {"memory_mib", 64}};
}

void virsh(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"virsh", "-q", "-c", "qemu:///system"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runCommand(argv);
  if (r.exit_code != 0) {
    std::fprintf(stderr, "virsh %s failed: %s\n", args[0].c_str(), r.err.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20, list_vms = 1000, requests = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--vms") n = std::stoi(argv[i + 1]);
    else if (a == "--list-vms") list_vms = std::stoi(argv[i + 1]);
    else if (a == "--requests") requests = std::stoi(argv[i + 1]);
  }
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "bench" + randomSuffix(4);

  // 1. Through the API.
  std::vector<double> api_ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto r = call(c, "POST", "/v1/vms", spec("vm" + std::to_string(i), tenant).dump());
    if (r.status != 202) {
      std::fprintf(stderr, "create failed: %s\n", r.raw.c_str());
      return 1;
    }
    // Polled every 5 ms, so that the figure is the task's, not the polling's.
    auto task = waitTask(c, r.body["id"], std::chrono::seconds(120), std::chrono::milliseconds(5));
    api_ms.push_back(ms(Clock::now() - t0));
    if (task["state"] != "succeeded") {
      std::fprintf(stderr, "task failed: %s\n", task.dump().c_str());
      return 1;
    }
  }
  long rss = rssKib(q.pid());

  // The floor: the same XML (renamed, new UUID, no Qiao metadata) with virsh.
  auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "--inactive",
                         tenant + ".vm0"}).out;
  xml = std::regex_replace(xml, std::regex("<uuid>[^<]*</uuid>"), "");
  xml = std::regex_replace(xml, std::regex("<metadata>[\\s\\S]*</metadata>"), "");
  std::vector<double> virsh_ms;
  std::string dir = q.dir();
  for (int i = 0; i < n; ++i) {
    std::string name = "floor-" + tenant + "-" + std::to_string(i);
    std::string file = dir + "/floor.xml";
    std::string renamed = std::regex_replace(xml, std::regex("<name>[^<]*</name>"),
                                             "<name>" + name + "</name>");
    std::ofstream(file) << std::regex_replace(renamed, std::regex("file=['\"][^'\"]*\\.log['\"]"),
                                              "file=\"" + dir + "/" + name + ".log\"");
    auto t0 = Clock::now();
    virsh({"define", file});
    virsh({"start", name});
    virsh_ms.push_back(ms(Clock::now() - t0));
  }
  for (int i = 0; i < n; ++i) {
    std::string name = "floor-" + tenant + "-" + std::to_string(i);
    runCommand({"virsh", "-c", "qemu:///system", "destroy", name});
    runCommand({"virsh", "-c", "qemu:///system", "undefine", name});
  }

  std::printf("== create+start of %d VMs (TCG, 64 MiB, no disk)\n", n);
  std::printf("qiao API   p50 %8.1f ms   p95 %8.1f ms\n", percentile(api_ms, 50),
              percentile(api_ms, 95));
  std::printf("virsh      p50 %8.1f ms   p95 %8.1f ms   (define + start, floor)\n",
              percentile(virsh_ms, 50), percentile(virsh_ms, 95));
  std::printf("ratio      p50 %8.2fx       p95 %8.2fx       (goal <= 1.2x)\n",
              percentile(api_ms, 50) / percentile(virsh_ms, 50),
              percentile(api_ms, 95) / percentile(virsh_ms, 95));
  std::printf("== qiaod resident memory with %d running VMs: %.1f MiB (goal < 30 MiB)\n", n,
              static_cast<double>(rss) / 1024.0);

  // Stop the running ones (cheaper for the machine), then define more for the list test.
  for (int i = 0; i < n; ++i) {
    auto r = call(c, "POST", "/v1/vms/vm" + std::to_string(i) + "/actions/force-stop?tenant=" + tenant);
    if (r.status == 202) waitTask(c, r.body["id"]);
  }
  auto t_define = Clock::now();
  for (int i = n; i < list_vms; ++i) {
    auto r = call(c, "POST", "/v1/vms?start=false", spec("vm" + std::to_string(i), tenant).dump());
    if (r.status != 202) {
      std::fprintf(stderr, "create failed: %s\n", r.raw.c_str());
      return 1;
    }
    if (i % 50 == 0 || i == list_vms - 1) waitTask(c, r.body["id"]);
  }
  // Wait for every task to finish.
  for (;;) {
    auto running = call(c, "GET", "/v1/tasks?state=running");
    auto queued = call(c, "GET", "/v1/tasks?state=queued");
    if (running.body["items"].empty() && queued.body["items"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  double define_s = ms(Clock::now() - t_define) / 1000.0;
  for (const std::string& target : {std::string("/v1/vms"), std::string("/v1/vms?limit=1000")}) {
    std::vector<double> get_ms;
    for (int i = 0; i < requests; ++i) {
      auto t0 = Clock::now();
      auto r = c.request("GET", target);
      get_ms.push_back(ms(Clock::now() - t0));
      if (!r || r->status != 200) {
        std::fprintf(stderr, "GET failed\n");
        return 1;
      }
    }
    std::printf("== GET %s with %d defined VMs, %d requests: p50 %.2f ms  p99 %.2f ms (goal p99 < 20 ms)\n",
                target.c_str(), list_vms, requests, percentile(get_ms, 50),
                percentile(get_ms, 99));
  }
  std::printf("   (defining %d more VMs through the API took %.1f s)\n", list_vms - n, define_s);
  std::printf("== qiaod resident memory with %d defined VMs: %.1f MiB\n", list_vms,
              static_cast<double>(rssKib(q.pid())) / 1024.0);
  return 0;
}
