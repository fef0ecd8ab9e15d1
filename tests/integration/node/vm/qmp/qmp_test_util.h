// What the QMP integration test and the online-operations bench share: a QEMU (or
// qemu-storage-daemon) run as a child process with its QMP socket in a temporary directory,
// killed at the end, and a tiny transient libvirt domain made with virsh and destroyed at the
// end. Unix sockets and libvirtd only: nothing reaches a network.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/process.h"

namespace qiao::qmptest {

inline std::string makeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

inline bool waitForPath(const std::string& path, std::chrono::milliseconds max) {
  const auto deadline = std::chrono::steady_clock::now() + max;
  struct stat st {};
  while (::stat(path.c_str(), &st) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

inline std::string readWhole(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process by argv (no shell), in its own process group, its output in `log`. It dies
// with the test (PR_SET_PDEATHSIG) and is killed by the destructor: SIGTERM, then SIGKILL.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      int null = ::open("/dev/null", O_RDONLY);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (null >= 0) ::dup2(null, 0);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() { kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return readWhole(log_); }

  bool alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// `qemu-system-x86_64 -machine none` with its QMP monitor on DIR/qmp.sock.
inline std::vector<std::string> qemuNoneArgv(const std::string& socket) {
  return {"qemu-system-x86_64", "-machine", "none", "-nodefaults",
          "-display",           "none",     "-qmp", "unix:" + socket + ",server=on,wait=off"};
}

inline std::vector<std::string> storageDaemonArgv(const std::string& socket) {
  return {"qemu-storage-daemon", "--chardev", "socket,path=" + socket + ",server=on,wait=off,id=c",
          "--monitor", "chardev=c"};
}

inline ProcessResult virsh(const std::vector<std::string>& args, int timeout_ms = 60000) {
  ProcessOptions options;
  options.argv = {"virsh", "-c", "qemu:///system"};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.timeout_ms = timeout_ms;
  auto result = runProcess(options);
  if (!result) {
    ProcessResult failed;
    failed.err = result.error().message;
    return failed;
  }
  return *result;
}

inline bool libvirtdUp() { return virsh({"version"}, 10000).exit_code == 0; }

// A transient TCG domain with no disks and no network (SeaBIOS finds nothing to boot and
// waits), started by virsh create and destroyed by the destructor.
class TransientDomain {
 public:
  explicit TransientDomain(std::string name) : name_(std::move(name)) {
    dir_ = makeTempDir("qiao-qmp-dom");
    const std::string xml_path = dir_ + "/domain.xml";
    std::ofstream(xml_path) << "<domain type='qemu'>\n"
                               "  <name>" +
                                   name_ +
                                   "</name>\n"
                                   "  <memory unit='MiB'>64</memory>\n"
                                   "  <vcpu>1</vcpu>\n"
                                   "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
                                   "  <on_poweroff>destroy</on_poweroff>\n"
                                   "  <on_reboot>destroy</on_reboot>\n"
                                   "  <on_crash>destroy</on_crash>\n"
                                   "  <devices>\n"
                                   "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                                   "    <controller type='usb' model='none'/>\n"
                                   "    <memballoon model='none'/>\n"
                                   "  </devices>\n"
                                   "</domain>\n";
    auto created = virsh({"create", xml_path});
    error_ = created.exit_code == 0 ? "" : created.message();
    if (error_.empty()) uuid_ = trim(virsh({"domuuid", name_}).out);
  }
  ~TransientDomain() {
    if (error_.empty()) virsh({"destroy", name_});
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  TransientDomain(const TransientDomain&) = delete;
  TransientDomain& operator=(const TransientDomain&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const std::string& uuid() const { return uuid_; }

 private:
  static std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  std::string name_, dir_, error_, uuid_;
};

}  // namespace qiao::qmptest
