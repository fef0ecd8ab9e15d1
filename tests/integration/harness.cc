#include "tests/integration/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "base/process.h"

namespace qiao::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

[[noreturn]] void die(const std::string& message) { throw std::runtime_error(message); }

}  // namespace

std::string sourceDir() { return envOr("QIAO_SOURCE_DIR", QIAO_TEST_SOURCE_DIR); }
std::string buildDir() { return envOr("QIAO_BUILD_DIR", QIAO_TEST_BUILD_DIR); }
std::string qiaodBinary() { return buildDir() + "/node/qiaod"; }
std::string qiaoctlBinary() { return buildDir() + "/node/cli/qiaoctl"; }

CommandResult simclusterCommand(const std::vector<std::string>& args, int timeout_ms) {
  std::vector<std::string> argv = {sourceDir() + "/scripts/simcluster"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv, timeout_ms, {},
                    {"QIAOD_BIN=" + qiaodBinary(), "QIAOCTL_BIN=" + qiaoctlBinary()});
}

CommandResult joinFromHere(const std::string& endpoint, const std::string& name,
                           const std::string& address, const std::string& dir,
                           const std::string& token, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {qiaodBinary(),
                                   "--config",
                                   dir + "/qiaod.toml",
                                   "join",
                                   "--endpoint",
                                   endpoint,
                                   "--name",
                                   name,
                                   "--address",
                                   address,
                                   "--accelerator",
                                   "tcg",
                                   "--libvirt-uri",
                                   "test:///default",
                                   "--pki-dir",
                                   dir + "/pki",
                                   "--state-dir",
                                   dir + "/state",
                                   "--ceph-dir",
                                   dir + "/ceph"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return runCommand(argv, 60000, {}, {"QIAO_JOIN_TOKEN=" + token});
}

std::map<std::string, std::string> parseKeyValueLines(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}
std::string testGuestDir() { return envOr("QIAO_TEST_GUEST_DIR", buildDir() + "/test-guest"); }
bool testGuestAvailable() {
  return fs::exists(testGuestDir() + "/vmlinuz") && fs::exists(testGuestDir() + "/initrd.img");
}

std::string randomSuffix(size_t chars) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  for (size_t i = 0; i < chars; ++i) out += kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return out;
}

CommandResult runCommand(const std::vector<std::string>& argv, int timeout_ms,
                         const std::string& stdin_data, const std::vector<std::string>& extra_env) {
  ProcessOptions options;
  options.argv = argv;
  options.timeout_ms = timeout_ms;
  options.stdin_data = stdin_data;
  options.extra_env = extra_env;
  auto result = runProcess(options);
  if (!result) die("cannot run " + argv.at(0) + ": " + result.error().describe());
  return {result->timed_out ? -1 : result->exit_code, result->out, result->err};
}

std::vector<std::string> libvirtDomains() {
  auto r = runCommand({"virsh", "-c", "qemu:///system", "list", "--all", "--name"});
  std::vector<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) names.push_back(line);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Qiaod::Qiaod(std::string extra_config, std::string listen)
    : extra_config_(std::move(extra_config)) {
  cluster_ = "it-" + randomSuffix(8);
  dir_ = fs::temp_directory_path().string() + "/qiao-" + cluster_;
  fs::create_directories(dir_ + "/state");
  config_file_ = dir_ + "/qiaod.toml";
  // A test's own [api] keys join the listen address in one table (TOML has one per name).
  const std::string api_table = "[api]\nlisten = [" + listen + "]\n";
  if (auto at = extra_config_.find("[api]\n"); at != std::string::npos) {
    extra_config_.replace(at, 6, api_table);
  }
  std::ofstream(config_file_)
      << (extra_config_.find(api_table) == std::string::npos ? api_table : std::string())
      << "[pki]\ndir = \"" << dir_ << "/pki\"\n"
      << "[state]\ndir = \"" << dir_
      << "/state\"\n"
      // TCG unless the test says otherwise (the KVM probe).
      << (extra_config_.find("[vm]") == std::string::npos
              ? "[vm]\naccelerator = \"tcg\"\nshutdown_timeout_s = 30\n"
              : std::string())
      << "[log]\nlevel = \"debug\"\n"
      // Volumes in the test's own folder unless the test says where.
      << (extra_config_.find("[storage]") == std::string::npos
              ? "[storage]\nbackend = \"local\"\nlocal_dir = \"" + dir_ + "/volumes\"\n"
              : std::string())
      // No networks unless the test asks (each its own bridge).
      << (extra_config_.find("[network]") == std::string::npos ? "[network]\nmode = \"off\"\n"
                                                               : std::string())
      << extra_config_;
  auto init = admin({"pki", "init", "--cluster", cluster_, "--dir", dir_ + "/pki"});
  if (init.exit_code != 0) die("qiaod pki init failed: " + init.out + init.err);
}

void Qiaod::placeOn(const SimHost& host) {
  launcher_ = host.exec();
  netns_ = host.netns();
}

Qiaod::~Qiaod() {
  // On a simulated host, its guests are also removed by `simhost down` (the sweep by virsh
  // below sees the stack's libvirtd only).
  NetnsScope in_host(netns_, /*required=*/false);
  // Leave no guest behind: every domain of this test's cluster is removed.
  if (!running()) {
    try {
      start();
    } catch (...) {
    }
  }
  if (running()) {
    try {
      auto client = adminClient();
      auto list = call(client, "GET", "/v1/vms?limit=1000");
      if (list.status == 200) {
        for (const auto& vm : list.body["items"]) {
          std::string target = "/v1/vms/" + vm["name"].get<std::string>() +
                               "?tenant=" + vm["tenant"].get<std::string>() + "&force=true";
          auto del = call(client, "DELETE", target);
          if (del.status == 202) waitTask(client, del.body["id"], std::chrono::seconds(60));
        }
      }
    } catch (...) {
    }
    stopGracefully();
  }
  // Anything still carrying our cluster's name in libvirt goes too (a test that failed
  // half way must not leak guests into the next one).
  for (const auto& name : libvirtDomains()) {
    auto xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", name});
    if (xml.out.find("<qiao:cluster>" + cluster_ + "</qiao:cluster>") != std::string::npos) {
      runCommand({"virsh", "-c", "qemu:///system", "destroy", name});
      runCommand({"virsh", "-c", "qemu:///system", "undefine", "--nvram", name});
    }
  }
  if (std::getenv("QIAO_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

CommandResult Qiaod::admin(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {qiaodBinary(), "--config", config_file_};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv);
}

void Qiaod::start(const std::vector<std::string>& env) {
  if (running()) return;
  const std::string addr_file = dir_ + "/state/qiaod.addr";
  fs::remove(addr_file);
  // Everything the child needs is made before fork(): it only calls async-signal-safe
  // functions (this process has threads).
  std::vector<std::string> args = launcher_;
  for (const std::string a :
       {qiaodBinary(), std::string("--config"), config_file_, std::string("run")}) {
    args.push_back(a);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copy = env;
  const std::string log_path = dir_ + "/qiaod.log";
  pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      dup2(log, 1);
      dup2(log, 2);
    }
    // Nothing of the test's but stdio: a lock the test runs under (flock) must not outlive it
    // in a qiaod a killed test leaves behind.
    close_range(3, ~0U, 0);
    for (auto& e : env_copy) putenv(e.data());
    execvp(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string addr = readFile(addr_file);
    if (!addr.empty() && addr.find('\n') != std::string::npos) {
      address_ = addr.substr(0, addr.find('\n'));
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      die("qiaod exited during start; log:\n" + readFile(dir_ + "/qiaod.log"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  die("qiaod did not start serving within 30 s; log:\n" + readFile(dir_ + "/qiaod.log"));
}

bool Qiaod::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void Qiaod::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void Qiaod::stopGracefully() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 300; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill9();
}

const Identity& Qiaod::identity(const std::string& name, const std::string& role,
                                const std::vector<std::string>& tenants) {
  auto it = identities_.find(name);
  if (it != identities_.end()) return it->second;
  std::string out = dir_ + "/identities";
  fs::create_directories(out);
  std::vector<std::string> args = {"pki", "issue",  "--kind", "user",  "--name",
                                   name,  "--role", role,     "--out", out};
  for (const auto& t : tenants) {
    args.push_back("--tenant");
    args.push_back(t);
  }
  auto issued = admin(args);
  if (issued.exit_code != 0) die("qiaod pki issue failed: " + issued.out + issued.err);
  Identity id;
  id.name = name;
  id.cert = out + "/" + name + ".crt";
  id.key = out + "/" + name + ".key";
  id.ca = dir_ + "/pki/ca.crt";
  id.config_file = out + "/" + name + ".toml";
  std::ofstream(id.config_file) << "endpoint = \"" << endpoint() << "\"\nca = \"" << id.ca
                                << "\"\ncert = \"" << id.cert << "\"\nkey = \"" << id.key << "\"\n";
  return identities_.emplace(name, id).first->second;
}

ApiClient Qiaod::client(const Identity& id) {
  ClientConfig config;
  config.endpoint = endpoint();
  config.ca = id.ca;
  config.cert = id.cert;
  config.key = id.key;
  config.timeout_ms = 30000;
  auto client = ApiClient::create(config);
  if (!client) die("cannot make an API client: " + client.error().describe());
  return std::move(*client);
}

ApiClient Qiaod::adminClient() { return client(identity("admin", "admin")); }

CommandResult Qiaod::qiaoctl(const Identity& id, const std::vector<std::string>& args,
                             const std::string& stdin_data) {
  // The endpoint may have changed since the identity's config was written (restarts).
  std::ofstream(id.config_file) << "endpoint = \"" << endpoint() << "\"\nca = \"" << id.ca
                                << "\"\ncert = \"" << id.cert << "\"\nkey = \"" << id.key << "\"\n";
  std::vector<std::string> argv = {qiaoctlBinary(), "--config", id.config_file};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv, 180000, stdin_data);
}

JsonResponse call(ApiClient& client, const std::string& method, const std::string& target,
                  const std::string& body) {
  auto response = client.request(method, target, body);
  if (!response) die(method + " " + target + ": " + response.error().describe());
  JsonResponse out;
  out.status = response->status;
  out.raw = response->body;
  out.body = json::parse(response->body, nullptr, false);
  return out;
}

json waitTask(ApiClient& client, const std::string& id, std::chrono::seconds timeout,
              std::chrono::milliseconds poll) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  json task;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = call(client, "GET", "/v1/tasks/" + id);
    if (r.status != 200) die("GET task " + id + " answered " + std::to_string(r.status) + r.raw);
    task = r.body;
    std::string state = task["state"];
    if (state == "succeeded" || state == "failed" || state == "cancelled") return task;
    std::this_thread::sleep_for(poll);
  }
  die("task " + id + " did not finish in time: " + task.dump());
}

json waitVm(ApiClient& client, const std::string& name, const std::string& tenant,
            const std::function<bool(const json&)>& pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  json vm;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = call(client, "GET", "/v1/vms/" + name + "?tenant=" + tenant);
    vm = r.status == 200 ? r.body : json(nullptr);
    if (pred(vm)) return vm;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return vm;
}

int countOccurrences(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::string waitConsole(ApiClient& client, const std::string& name, const std::string& tenant,
                        const std::string& needle, int count, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = client.request(
        "GET", "/v1/vms/" + name + "/console-log?tenant=" + tenant + "&tail_bytes=1048576");
    if (r && r->status == 200) {
      text = r->body;
      if (countOccurrences(text, needle) >= count) return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return text;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kStackCephDir = "/var/lib/qiao-ceph";

std::string stackCephConfig() {
  return "[storage]\nbackend = \"rbd\"\nceph_conf = \"" + kStackCephDir + "/ceph.conf\"\n" +
         "ceph_keyring = \"" + kStackCephDir + "/client.qiao.keyring\"\nceph_pool = \"qiao\"\n" +
         "ceph_other_pools = [\"qiao-b\"]\n" + "ceph_timeout_s = 20\n";
}

NetnsScope::NetnsScope(const std::string& netns_path, bool required) {
  if (netns_path.empty()) return;
  saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  const bool entered = saved_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
  if (target >= 0) ::close(target);
  if (entered) return;
  if (saved_ >= 0) ::close(saved_);
  saved_ = -1;
  if (required) die("cannot enter network namespace " + netns_path);
}

NetnsScope::~NetnsScope() {
  if (saved_ < 0) return;
  // Back where the thread was; a thread left in a test host's namespace would talk to the
  // wrong world from here on.
  if (setns(saved_, CLONE_NEWNET) != 0) std::abort();
  ::close(saved_);
}

namespace {
std::string simhostScript() { return sourceDir() + "/scripts/simhost"; }
}  // namespace

SimHost::SimHost(std::string name, std::string underlay)
    : name_(std::move(name)), underlay_(std::move(underlay)) {}

SimHost::~SimHost() { runCommand({simhostScript(), "down", name_}, 120000); }

bool SimHost::upAll(const std::vector<SimHost*>& hosts, std::string* output) {
  std::vector<CommandResult> results(hosts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < hosts.size(); ++i) {
    threads.emplace_back([&, i] {
      runCommand({simhostScript(), "down", hosts[i]->name_}, 120000);
      std::vector<std::string> argv = {simhostScript(), "up", hosts[i]->name_};
      if (!hosts[i]->underlay_.empty()) {
        argv.push_back("--underlay");
        argv.push_back(hosts[i]->underlay_);
      }
      results[i] = runCommand(argv, 240000);
    });
  }
  for (auto& t : threads) t.join();
  bool ok = true;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (output) *output += results[i].out + results[i].err;
    if (results[i].exit_code != 0) {
      ok = false;
      continue;
    }
    auto env = runCommand({simhostScript(), "env", hosts[i]->name_});
    std::istringstream lines(env.out);
    for (std::string line; std::getline(lines, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) hosts[i]->env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    hosts[i]->netns_ = hosts[i]->env("SIM_NETNS_PATH");
    if (env.exit_code != 0 || hosts[i]->netns_.empty()) ok = false;
  }
  return ok;
}

CommandResult SimHost::link(const SimHost& a, const SimHost& b) {
  return runCommand({simhostScript(), "link", a.name_, b.name_});
}

std::string SimHost::env(const std::string& key) const {
  auto it = env_.find(key);
  return it == env_.end() ? std::string() : it->second;
}

std::vector<std::string> SimHost::exec() const { return {simhostScript(), "exec", name_, "--"}; }

CommandResult SimHost::run(const std::vector<std::string>& argv, int timeout_ms) const {
  std::vector<std::string> full = exec();
  full.insert(full.end(), argv.begin(), argv.end());
  return runCommand(full, timeout_ms);
}

std::string SimHost::qiaodConfig(const std::vector<std::string>& tunnel_peers) const {
  std::string peers;
  for (const auto& p : tunnel_peers) peers += (peers.empty() ? "\"" : ", \"") + p + "\"";
  const std::string underlay_ip = underlay_.substr(0, underlay_.find('/'));
  return "[libvirt]\nuri = \"" + env("SIM_LIBVIRT_URI") + "\"\n" +
         "[network]\nmode = \"ovs\"\novsdb_socket = \"" + env("SIM_OVSDB_SOCKET") +
         "\"\nbridge = \"br-int\"\ncheck_interval_ms = 500\nrun_dir = \"" + env("SIM_STATE_DIR") +
         "/dhcp\"\n" +
         (underlay_ip.empty()
              ? std::string()
              : "tunnel_ip = \"" + underlay_ip + "\"\ntunnel_peers = [" + peers + "]\n");
}

std::string stackNetworkConfig(const std::string& bridge) {
  return "[network]\nmode = \"ovs\"\nbridge = \"" + bridge + "\"\ncheck_interval_ms = 500\n";
}

std::unique_ptr<VolumeDriver> stackCeph() {
  RbdOptions options;
  options.conf = kStackCephDir + "/ceph.conf";
  options.keyring = kStackCephDir + "/client.qiao.keyring";
  auto driver = makeRbdDriver(options);
  return driver ? std::move(*driver) : nullptr;
}

bool waitAllTasksDone(ApiClient& c, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto queued = call(c, "GET", "/v1/tasks?state=queued");
    auto running = call(c, "GET", "/v1/tasks?state=running");
    if (queued.body["items"].empty() && running.body["items"].empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

namespace {

// After a request failed: qiaod may be dying (a failpoint's SIGKILL) but not yet reaped.
bool diesSoon(Qiaod& q) {
  for (int i = 0; i < 40; ++i) {
    if (!q.running()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

bool runUntilDeath(Qiaod& q, ApiClient& c, const std::string& method, const std::string& target,
                   const std::string& body) {
  auto r = c.request(method, target, body);
  if (!r) return diesSoon(q);
  if (r->status != 202) {
    ADD_FAILURE() << method << " " << target << " answered " << r->status << " " << r->body;
    return false;
  }
  auto id = json::parse(r->body)["id"].get<std::string>();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!q.running()) return true;
    auto t = c.request("GET", "/v1/tasks/" + id);
    if (!t) return diesSoon(q);
    auto task = json::parse(t->body, nullptr, false);
    if (task.is_object() && (task["state"] == "succeeded" || task["state"] == "failed")) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "task " << id << " neither finished nor killed qiaod";
  return false;
}

std::string bannerScript(const std::string& name, const std::string& peer) {
  return "(while true; do nc -l -p 7000 -e echo BANNER-" + name +
         "; done) & i=0; while [ $i -lt 90 ]; do r=$(nc -w 2 " + peer +
         " 7000 </dev/null); if [ -n \"$r\" ]; then echo \"GOT $r\"; break; fi; i=$((i+1));"
         " sleep 1; done; if ping -c 3 -W 2 " +
         peer +
         " >/dev/null 2>&1; then echo PING-ok; else echo PING-fail; fi; echo DONE; sleep 900";
}

std::string guestRun(const std::string& script) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "qiao.run=";
  size_t i = 0;
  for (; i + 2 < script.size(); i += 3) {
    uint32_t v =
        (uint8_t(script[i]) << 16) | (uint8_t(script[i + 1]) << 8) | uint8_t(script[i + 2]);
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  if (i + 1 == script.size()) {
    uint32_t v = uint8_t(script[i]) << 16;
    out += std::string{kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == script.size()) {
    uint32_t v = (uint8_t(script[i]) << 16) | (uint8_t(script[i + 1]) << 8);
    out += std::string{kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63],
                       kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

json guestSpec(const std::string& name, const std::string& tenant,
               const std::string& extra_cmdline) {
  std::string cmdline = "console=ttyS0 quiet qiao.name=" + name;
  if (!extra_cmdline.empty()) cmdline += " " + extra_cmdline;
  return {{"name", name},
          {"tenant", tenant},
          {"vcpus", 1},
          {"memory_mib", 256},
          {"boot",
           {{"kernel", testGuestDir() + "/vmlinuz"},
            {"initrd", testGuestDir() + "/initrd.img"},
            {"cmdline", cmdline}}},
          {"labels", {{"test", "integration"}}}};
}

}  // namespace qiao::testing
