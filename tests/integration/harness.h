// The integration tests' harness: a real qiaod (the built binary) on the real libvirtd that
// the `stack` fixture started, with its own cluster, PKI, state directory and port, so that
// tests never touch the demo's qiaod or each other's VMs. Identities are issued with the real
// `qiaod pki issue`. The test guest (scripts/build-test-guest) is found through
// QIAO_TEST_GUEST_DIR or <build>/test-guest.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/client/client.h"
#include "storage/volume_driver.h"

namespace qiao::testing {

std::string sourceDir();
std::string buildDir();
std::string qiaodBinary();
std::string qiaoctlBinary();
std::string testGuestDir();  // holds vmlinuz and initrd.img
bool testGuestAvailable();
std::string randomSuffix(size_t chars = 6);

// Runs a command by argv; returns exit code and output (stdout+stderr when merge_stderr).
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult runCommand(const std::vector<std::string>& argv, int timeout_ms = 60000,
                         const std::string& stdin_data = {},
                         const std::vector<std::string>& extra_env = {});
// scripts/simcluster with `args`, run with this tree's qiaod and qiaoctl.
CommandResult simclusterCommand(const std::vector<std::string>& args, int timeout_ms = 120000);
// `qiaod join` run from this machine as the host `name` at `address` (libvirt's test driver,
// accelerator tcg: no KVM probe), with `token` and every file under `dir`; `extra` arguments
// appended (--port ...).
CommandResult joinFromHere(const std::string& endpoint, const std::string& name,
                           const std::string& address, const std::string& dir,
                           const std::string& token, const std::vector<std::string>& extra = {});
// KEY=VALUE lines (`simcluster env`) as a map; other lines are skipped.
std::map<std::string, std::string> parseKeyValueLines(const std::string& text);

// Names of all libvirt domains (virsh list --all --name), for "nothing changed" checks.
std::vector<std::string> libvirtDomains();

struct Identity {
  std::string name;
  std::string cert, key, ca;
  std::string config_file;  // a qiaoctl config for this identity
};

// Runs the calling thread in another network namespace (/run/netns/NAME) while it lives:
// sockets made meanwhile (an ApiClient's connection) stay in that namespace.
class NetnsScope {
 public:
  // "" = stay where we are. A namespace that cannot be entered throws when `required`, else
  // (destructors) leaves the thread where it is.
  explicit NetnsScope(const std::string& netns_path, bool required = true);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  int saved_ = -1;
};

// A simulated compute host (scripts/simhost): its own network namespace, Open vSwitch and
// libvirtd. up() starts it (with an underlay address on br-phy when given); the destructor
// takes it down with all it runs.
class SimHost {
 public:
  explicit SimHost(std::string name, std::string underlay = {});
  ~SimHost();
  SimHost(const SimHost&) = delete;
  SimHost& operator=(const SimHost&) = delete;
  // Starts several at once, each fresh (what a killed run left of a host of that name is taken
  // down first); false with the output on failure.
  static bool upAll(const std::vector<SimHost*>& hosts, std::string* output);
  static CommandResult link(const SimHost& a, const SimHost& b);

  const std::string& name() const { return name_; }
  const std::string& netns() const { return netns_; }  // /run/netns/...
  // `simhost env`'s values: OVS_DB_SOCKET, LIBVIRT_URI, ...
  std::string env(const std::string& key) const;
  // The argv prefix that runs a program inside the host.
  std::vector<std::string> exec() const;
  CommandResult run(const std::vector<std::string>& argv, int timeout_ms = 60000) const;
  // qiaod.toml lines of a daemon on this host: its libvirtd, its OVS's br-int, tunnels.
  std::string qiaodConfig(const std::vector<std::string>& tunnel_peers = {}) const;

 private:
  std::string name_, underlay_, netns_;
  std::map<std::string, std::string> env_;
};

class Qiaod {
 public:
  // `extra_config` is appended to the generated qiaod.toml; `listen` is api.listen's array.
  explicit Qiaod(std::string extra_config = {}, std::string listen = "\"127.0.0.1:0\"");
  ~Qiaod();  // stops qiaod and deletes every VM of its cluster it left behind

  const std::string& cluster() const { return cluster_; }
  const std::string& dir() const { return dir_; }
  const std::string& configFile() const { return config_file_; }
  std::string endpoint() const { return "https://" + address_; }
  pid_t pid() const { return pid_; }

  // Runs qiaod inside a simulated host (before start): its API is then reached from that
  // host's network namespace (NetnsScope, which the destructor enters itself).
  void placeOn(const SimHost& host);
  const std::string& netns() const { return netns_; }

  // Starts qiaod and waits until it serves. `env` adds variables (QIAO_FAILPOINT=...).
  void start(const std::vector<std::string>& env = {});
  void kill9();  // SIGKILL, and reaps it
  void stopGracefully();
  bool running();
  // Runs `qiaod --config <ours> ARGS...`.
  CommandResult admin(const std::vector<std::string>& args);

  // Issues (once) and returns an identity. role admin|operator|viewer.
  const Identity& identity(const std::string& name, const std::string& role,
                           const std::vector<std::string>& tenants = {});
  ApiClient client(const Identity& id);
  ApiClient adminClient();

  // Runs qiaoctl as this identity.
  CommandResult qiaoctl(const Identity& id, const std::vector<std::string>& args,
                        const std::string& stdin_data = {});

 private:
  std::string dir_;
  std::string cluster_;
  std::string config_file_;
  std::string address_;
  std::string extra_config_;
  pid_t pid_ = -1;
  std::map<std::string, Identity> identities_;
  std::vector<std::string> launcher_;  // argv prefix (a simulated host's exec)
  std::string netns_;
};

// JSON helpers over ApiClient.
struct JsonResponse {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};
JsonResponse call(ApiClient& client, const std::string& method, const std::string& target,
                  const std::string& body = {});
// Polls the task until it is finished; returns the final task JSON.
nlohmann::json waitTask(ApiClient& client, const std::string& id,
                        std::chrono::seconds timeout = std::chrono::seconds(120),
                        std::chrono::milliseconds poll = std::chrono::milliseconds(100));
// Polls until pred(vm json) or timeout; returns the last VM JSON (null when 404).
nlohmann::json waitVm(ApiClient& client, const std::string& name, const std::string& tenant,
                      const std::function<bool(const nlohmann::json&)>& pred,
                      std::chrono::seconds timeout = std::chrono::seconds(60));
// Polls the console log until it contains `needle` `count` times; returns the log.
std::string waitConsole(ApiClient& client, const std::string& name, const std::string& tenant,
                        const std::string& needle, int count = 1,
                        std::chrono::seconds timeout = std::chrono::seconds(90));
int countOccurrences(const std::string& haystack, const std::string& needle);

std::string readFile(const std::string& path);

// The stack's Ceph (scripts/ceph-stack): the qiaod.toml lines that keep volumes on it, and a
// Ceph client of the test's own (client.qiao) to look behind qiaod's back.
extern const std::string kStackCephDir;
std::string stackCephConfig();
std::unique_ptr<VolumeDriver> stackCeph();
// The [network] section of a qiaod on the stack's Open vSwitch with a bridge of its own (each
// daemon owns its bridge's flows; the test deletes the bridge at its end).
std::string stackNetworkConfig(const std::string& bridge);

// Waits until no task is queued or running; false on timeout.
bool waitAllTasksDone(ApiClient& client, std::chrono::seconds timeout);
// Sends a request that answers 202 and a task, then follows the task until it ends or the
// daemon dies (crash tests). True when the daemon died.
bool runUntilDeath(Qiaod& qiaod, ApiClient& client, const std::string& method,
                   const std::string& target, const std::string& body);

// The kernel-command-line word that makes the test guest run `script` (busybox sh) after boot
// (after its DHCP lease with qiao.dhcp=1); its output comes to the console as
// "QIAO-TEST-GUEST run: <line>", then "QIAO-TEST-GUEST run exit=<code>".
std::string guestRun(const std::string& script);

// The guest script of the cross-host tests: serves "BANNER-<name>" on TCP 7000 (busybox nc,
// again and again), then asks `peer` until it answers, printing "GOT <answer>", then whether
// ping passes ("PING-ok" or "PING-fail") and "DONE".
std::string bannerScript(const std::string& name, const std::string& peer);

// A VM spec that boots the test guest directly (admins only: it names host paths).
nlohmann::json guestSpec(const std::string& name, const std::string& tenant,
                         const std::string& extra_cmdline = {});

}  // namespace qiao::testing
