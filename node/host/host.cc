#include "node/host/host.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "base/process.h"

namespace qiao {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// ARM's "CPU implementer"/"CPU part" ids, for the servers Qiao runs on.
std::string armCpuName(const std::string& implementer, const std::string& part) {
  static const std::map<std::pair<std::string, std::string>, std::string> known = {
      {{"0x48", "0xd01"}, "HiSilicon Kunpeng 920"},
      {{"0x70", "0x662"}, "Phytium FT-2000+/64"},
      {{"0x70", "0x663"}, "Phytium S2500"},
      {{"0x41", "0xd08"}, "ARM Cortex-A72"},
      {{"0x41", "0xd0c"}, "ARM Neoverse N1"},
      {{"0x41", "0xd40"}, "ARM Neoverse V1"},
      {{"0x41", "0xd49"}, "ARM Neoverse N2"},
  };
  auto it = known.find({implementer, part});
  if (it != known.end()) return it->second;
  if (implementer == "0x70") return "Phytium (part " + part + ")";
  return "implementer " + implementer + " part " + part;
}

}  // namespace

HostFacts readHostFacts() {
  HostFacts f;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  f.hostname = host;
  utsname u{};
  uname(&u);
  f.arch = u.machine;
  if (f.arch == "arm64") f.arch = "aarch64";
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  f.cores = cores > 0 ? static_cast<int>(cores) : 0;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string implementer, part;
  for (std::string line; std::getline(cpuinfo, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "model name" && f.cpu_model.empty()) f.cpu_model = value;
    if (key == "CPU implementer" && implementer.empty()) implementer = value;
    if (key == "CPU part" && part.empty()) part = value;
  }
  if (f.cpu_model.empty() && !implementer.empty()) f.cpu_model = armCpuName(implementer, part);
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream in(line.substr(9));
      uint64_t kib = 0;
      in >> kib;
      f.memory_bytes = kib * 1024;
    }
  }
  f.kvm_device = access("/dev/kvm", F_OK) == 0;
  return f;
}

HostFirmware readHostFirmware() {
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::string text;
    std::getline(in, text, '\0');
    return trim(text);
  };
  HostFirmware f;
  f.boot_mode = access("/sys/firmware/efi", F_OK) == 0 ? "uefi" : "bios";
  f.secure_boot = "unknown";
  if (f.boot_mode == "bios") {
    f.secure_boot = "disabled";
  } else {
    // efivarfs: 4 bytes of attributes, then the value.
    std::ifstream sb("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                     std::ios::binary);
    char buf[5] = {};
    if (sb.read(buf, 5)) f.secure_boot = buf[4] == 1 ? "enabled" : "disabled";
  }
  f.bios_vendor = read("/sys/class/dmi/id/bios_vendor");
  f.bios_version = read("/sys/class/dmi/id/bios_version");
  f.bios_date = read("/sys/class/dmi/id/bios_date");
  f.system_vendor = read("/sys/class/dmi/id/sys_vendor");
  f.product_name = read("/sys/class/dmi/id/product_name");
  f.device_tree_model = read("/proc/device-tree/model");
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("microcode", 0) == 0 && line.find(':') != std::string::npos) {
      f.microcode = trim(line.substr(line.find(':') + 1));
      break;
    }
  }
  return f;
}

AccelProbe probeKvm(const std::string& arch, int timeout_ms, const std::string& kernel_in) {
  AccelProbe probe;
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    probe.reason = access("/dev/kvm", F_OK) == 0 ? "/dev/kvm cannot be opened" : "no /dev/kvm";
    return probe;
  }
  ::close(fd);
  std::string kernel = kernel_in;
  if (kernel.empty()) {
    struct utsname u {};
    if (::uname(&u) == 0) kernel = std::string("/boot/vmlinuz-") + u.release;
    if (::access(kernel.c_str(), R_OK) != 0) kernel.clear();
  }
  const bool arm = arch == "aarch64";
  std::string program = arm ? "qemu-system-aarch64" : "qemu-system-x86_64";
  std::string machine = arm ? "virt,gic-version=host,accel=kvm" : "q35,accel=kvm";
  ProcessOptions options;
  options.argv = {program,   "-machine", machine, "-cpu",     "host", "-nodefaults",
                  "-display", "none",    "-no-user-config", "-monitor", "none"};
  if (kernel.empty()) {
    // A healthy KVM keeps this halted QEMU alive until we stop it; a broken one aborts while
    // setting up the vCPU.
    options.argv.insert(options.argv.end(), {"-S", "-serial", "none"});
    options.timeout_ms = std::clamp(timeout_ms, 500, 5000);
  } else {
    // A kernel without a root file system panics and, with -no-reboot, QEMU exits: about a
    // second on a healthy KVM. A nested KVM that starts QEMU without running it prints nothing.
    options.argv.insert(options.argv.end(),
                        {"-m", "256", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
                         "-append",
                         std::string("panic=-1 root=/dev/qiao-kvm-probe console=") +
                             (arm ? "ttyAMA0" : "ttyS0")});
    options.timeout_ms = std::max(1000, timeout_ms);
  }
  auto result = runProcess(options);
  if (!result) {
    probe.reason = "cannot run " + program + ": " + result.error().message;
    return probe;
  }
  if (!kernel.empty()) {
    if (result->out.find("Linux version") != std::string::npos) {
      probe.kvm_usable = true;
      probe.reason = "KVM booted " + kernel + " on this host";
      return probe;
    }
    std::string first = result->err.substr(0, result->err.find('\n'));
    probe.reason = "KVM cannot run guests here: " + kernel + " under " + program +
                   " -cpu host printed nothing in " + std::to_string(options.timeout_ms / 1000) +
                   " s" + (first.empty() ? "" : " (" + first + ")") +
                   " (a nested KVM that starts guests but does not run them?)";
    return probe;
  }
  if (result->timed_out) {
    probe.kvm_usable = true;
    probe.reason = "KVM runs a halted -cpu host guest on this host (no kernel to boot: "
                   "vm.kvm_probe_kernel)";
    return probe;
  }
  std::string first = result->err.substr(0, result->err.find('\n'));
  probe.reason = "KVM cannot run guests here: " + program + " -cpu host " +
                 (result->term_signal != 0 ? "aborted" : "exited") +
                 (first.empty() ? "" : " (" + first + ")");
  return probe;
}

Result<AccelChoice> chooseAccelerator(std::string_view configured, const AccelProbe& probe) {
  if (configured == "tcg") return AccelChoice{"tcg", "vm.accelerator is tcg"};
  if (configured == "kvm") {
    if (probe.kvm_usable) return AccelChoice{"kvm", "vm.accelerator is kvm; " + probe.reason};
    return makeError(ErrorCode::kUnavailable, "host",
                     "vm.accelerator is kvm, but " + probe.reason +
                         "; set vm.accelerator to auto or tcg");
  }
  if (configured != "auto") {
    return makeError(ErrorCode::kInvalidArgument, "host",
                     "vm.accelerator must be auto, kvm or tcg");
  }
  if (probe.kvm_usable) return AccelChoice{"kvm", probe.reason};
  return AccelChoice{"tcg", probe.reason + "; guests are emulated (TCG)"};
}

}  // namespace qiao
