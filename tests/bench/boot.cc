// bench_boot: time from create to the guest's boot marker on its serial console, through the
// API, for x86_64 bios, x86_64 uefi and aarch64 uefi under TCG, next to the same domain XML
// defined and started with virsh (the floor), whose console log is watched the same way.
// Usage: bench_boot [--runs N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace qiao;
using namespace qiao::testing;
using nlohmann::json;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;

namespace {

constexpr const char* kMarker = "QIAO-TEST-GUEST booted";

bool fileHas(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str().find(needle) != std::string::npos;
}

struct Case {
  std::string label, arch, firmware, guest_dir, console;
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--runs") runs = std::stoi(argv[i + 1]);
  }
  const std::vector<Case> cases = {
      {"x86_64 bios", "x86_64", "bios", buildDir() + "/test-guest", "ttyS0"},
      {"x86_64 uefi", "x86_64", "uefi", buildDir() + "/test-guest", "ttyS0"},
      {"aarch64 uefi", "aarch64", "uefi", buildDir() + "/test-guest-aarch64", "ttyAMA0"},
  };
  Qiaod q;
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "boot" + randomSuffix(4);
  std::printf("== create -> boot marker, TCG, median of %d runs\n", runs);
  std::printf("%-14s %12s %12s %8s\n", "case", "qiao (ms)", "virsh (ms)", "ratio");
  int n = 0;
  for (const auto& k : cases) {
    std::vector<double> api, floor;
    for (int r = 0; r < runs; ++r) {
      const std::string name = "b" + std::to_string(n++);
      json spec = {{"name", name},
                   {"tenant", tenant},
                   {"arch", k.arch},
                   {"firmware", k.firmware},
                   {"memory_mib", 512},
                   {"boot",
                    {{"kernel", std::filesystem::canonical(k.guest_dir + "/vmlinuz").string()},
                     {"initrd", std::filesystem::canonical(k.guest_dir + "/initrd.img").string()},
                     {"cmdline", "console=" + k.console + " quiet"}}}};
      auto t0 = Clock::now();
      auto created = call(c, "POST", "/v1/vms", spec.dump());
      if (created.status != 202) {
        std::fprintf(stderr, "create failed: %s\n", created.raw.c_str());
        return 1;
      }
      // The console log file is watched as the floor's is (every 20 ms).
      auto vm = call(c, "GET", "/v1/vms/" + name + "?tenant=" + tenant);
      const std::string log =
          q.dir() + "/state/console/" + vm.body.value("uuid", std::string()) + ".log";
      auto until = Clock::now() + std::chrono::seconds(120);
      while (!fileHas(log, kMarker) && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!fileHas(log, kMarker)) {
        std::fprintf(stderr, "%s: no boot marker\n", k.label.c_str());
        return 1;
      }
      api.push_back(ms(Clock::now() - t0));

      // The floor: the same XML under another name, with its own log and NVRAM files.
      auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "--inactive",
                             tenant + "." + name}).out;
      const std::string fname = "floor-" + tenant + "-" + name;
      const std::string flog = q.dir() + "/" + fname + ".log";
      xml = std::regex_replace(xml, std::regex("<uuid>[^<]*</uuid>"), "");
      xml = std::regex_replace(xml, std::regex("<metadata>[\\s\\S]*</metadata>"), "");
      xml = std::regex_replace(xml, std::regex("<name>[^<]*</name>"), "<name>" + fname + "</name>");
      xml = std::regex_replace(xml, std::regex("file=['\"][^'\"]*\\.log['\"]"), "file='" + flog + "'");
      xml = std::regex_replace(xml, std::regex("(<nvram[^>]*>)[^<]*(</nvram>)"),
                               "$1" + q.dir() + "/" + fname + "_VARS.fd$2");
      const std::string file = q.dir() + "/" + fname + ".xml";
      std::ofstream(file) << xml;
      auto f0 = Clock::now();
      runCommand({"virsh", "-q", "-c", "qemu:///system", "define", file});
      runCommand({"virsh", "-q", "-c", "qemu:///system", "start", fname});
      auto deadline = Clock::now() + std::chrono::seconds(120);
      while (!fileHas(flog, kMarker) && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      floor.push_back(ms(Clock::now() - f0));
      runCommand({"virsh", "-c", "qemu:///system", "destroy", fname});
      runCommand({"virsh", "-c", "qemu:///system", "undefine", "--nvram", fname});
      auto del = call(c, "DELETE", "/v1/vms/" + name + "?tenant=" + tenant + "&force=true");
      if (del.status == 202) waitTask(c, del.body["id"]);
    }
    std::printf("%-14s %12.0f %12.0f %7.2fx\n", k.label.c_str(), percentile(api, 50), percentile(floor, 50),
                percentile(api, 50) / percentile(floor, 50));
  }
  std::printf("(goal: <= 1.1x the floor each)\n");
  return 0;
}
