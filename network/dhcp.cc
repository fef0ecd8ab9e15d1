#include "network/dhcp.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/files.h"
#include "base/log.h"
#include "base/process.h"
#include "network/netdev.h"

namespace qiao {

namespace fs = std::filesystem;

namespace {

// Writes when different; true when it changed the file.
Result<bool> writeIfChanged(const std::string& path, const std::string& text) {
  if (fs::exists(path) && readTextFile(path) == text) return false;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) return makeError(ErrorCode::kInternal, "dhcp", "cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), 0644);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return makeError(ErrorCode::kInternal, "dhcp", "cannot write " + path);
  }
  return true;
}

}  // namespace

DhcpServers::DhcpServers(std::string run_dir, std::string program)
    : run_dir_(std::move(run_dir)), program_(std::move(program)) {}

int DhcpServers::pidOf(const std::string& key) const {
  std::string text = readTextFile(dirOf(key) + "/pid");
  int pid = std::atoi(text.c_str());
  if (pid <= 1 || ::kill(pid, 0) != 0) return 0;
  std::string comm = readTextFile("/proc/" + std::to_string(pid) + "/comm");
  return comm.starts_with("dnsmasq") ? pid : 0;
}

bool DhcpServers::running(const std::string& key) const { return pidOf(key) != 0; }

Status DhcpServers::ensure(const DhcpConfig& c) {
  const std::string ns = netnsOf(c);
  const std::string address = c.ip + "/" + std::to_string(c.subnet.prefix);
  // A serving dnsmasq behind its veth only needs its files (every plug comes here): the
  // namespace and the veth are set up when either is missing, as after a reboot.
  if (!linkExists(c.outer) || !running(c.key)) {
    if (auto s = ensureVethIntoNetns(c.outer, c.inner, ns, c.mac, address, c.mtu); !s) return s;
  }

  const std::string dir = dirOf(c.key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  ::chmod(run_dir_.c_str(), 0755);
  ::chmod(dir.c_str(), 0755);

  std::string hosts, names;
  for (const auto& h : c.hosts) {
    hosts += h.mac + "," + h.ip + (h.hostname.empty() ? "" : "," + h.hostname) + "\n";
    if (!h.hostname.empty()) {
      names += h.ip + " " + h.hostname + (c.domain.empty() ? "" : "." + c.domain) + " " +
               h.hostname + "\n";
    }
  }
  std::string opts;
  if (!c.gateway.empty()) opts += "option:router," + c.gateway + "\n";
  std::string dns;
  for (const auto& d : c.dns) dns += "," + d;
  opts += "option:dns-server" + (dns.empty() ? "," + c.ip : dns) + "\n";
  opts += "option:mtu," + std::to_string(c.mtu) + "\n";
  if (!c.domain.empty()) opts += "option:domain-name," + c.domain + "\n";

  bool changed = false;
  for (const auto& [file, text] : {std::pair{"hosts", hosts}, {"names", names}, {"opts", opts}}) {
    auto w = writeIfChanged(dir + "/" + file, text);
    if (!w) return std::unexpected(w.error());
    changed = changed || *w;
  }

  std::vector<std::string> argv = {
      "ip", "netns", "exec", ns, program_, "--conf-file=/dev/null",
      "--pid-file=" + dir + "/pid", "--interface=" + c.inner, "--bind-interfaces",
      "--except-interface=lo",
      "--dhcp-range=" + formatIpv4(c.subnet.network) + ",static," +
          formatIpv4(c.subnet.mask()) + ",12h",
      "--dhcp-hostsfile=" + dir + "/hosts", "--dhcp-optsfile=" + dir + "/opts",
      "--addn-hosts=" + dir + "/names", "--leasefile-ro", "--dhcp-authoritative", "--no-resolv",
      "--no-hosts", "--user=nobody", "--group=nogroup", "--quiet-dhcp",
      "--log-facility=" + dir + "/log"};
  if (!c.domain.empty()) {
    argv.push_back("--domain=" + c.domain);
    argv.push_back("--local=/" + c.domain + "/");
  }
  std::string args_text;
  for (const auto& a : argv) args_text += a + "\n";
  auto args_changed = writeIfChanged(dir + "/args", args_text);
  if (!args_changed) return std::unexpected(args_changed.error());

  int pid = pidOf(c.key);
  if (pid != 0 && *args_changed) {
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 40 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pid = 0;
  }
  if (pid == 0) return start(c, argv);
  if (changed) ::kill(pid, SIGHUP);  // re-reads the hosts, options and names files
  return {};
}

Status DhcpServers::start(const DhcpConfig& c, const std::vector<std::string>& argv) {
  std::error_code ec;
  fs::remove(dirOf(c.key) + "/pid", ec);
  ProcessOptions p;
  p.argv = argv;
  p.timeout_ms = 10000;
  auto r = runProcess(p);  // dnsmasq forks into the background once it is serving
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0) {
    return makeError(ErrorCode::kInternal, "dhcp",
                     "dnsmasq for network " + c.key + " did not start: " + r->message());
  }
  for (int i = 0; i < 40; ++i) {
    if (pidOf(c.key) != 0) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return makeError(ErrorCode::kInternal, "dhcp",
                   "dnsmasq for network " + c.key + " exited after starting (see " +
                       dirOf(c.key) + "/log)");
}

Status DhcpServers::remove(const DhcpConfig& c) {
  if (int pid = pidOf(c.key); pid != 0) {
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 40 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
  }
  if (auto s = removeLink(c.outer); !s) return s;
  if (auto s = removeNetns(netnsOf(c)); !s) return s;
  std::error_code ec;
  fs::remove_all(dirOf(c.key), ec);
  return {};
}

}  // namespace qiao
