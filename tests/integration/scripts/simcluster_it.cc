// scripts/simcluster against the real thing: a 3-host cluster with its own Ceph comes up, the
// hosts reach each other over the underlay, and each host's qiaod answers the cluster's admin
// at its underlay address; each host tunnels to the others as membership says (no
// tunnel_peers configured), and keeps a tunnel while its peer is unreachable; the leader's host
// killed, another member leads within the lease + 2 s; `kill` leaves no process of the host
// and status reports it down; a partitioned host cannot reach Ceph (nor the admin it), heal
// (and a timed partition, by itself) gives it back; a killed host starts again; a join token
// is made (and one too long refused); h2 and h3 joined with tokens (`qiaod join`), and joins
// from here show the baseline, reused, expired, forged and wrongly pinned tokens refused; a VM
// made through h1 for h2 is h2's, listed by every member with its host, and managed through h3
// (forwarded calls); a VM without a host is placed by the leader; operators granted through
// one member act through another, and one tenant's operator sees nothing of another's VMs; a
// tenant network spans the three hosts (its segment and its guests' addresses from the
// cluster's allocators) and its guests reach each other across the tunnels; h2 is removed
// through h1 (not through itself, not an unknown host): its certificate is refused by h1 and
// h3 and its Ceph user is gone; `down` leaves no namespace, process, interface or state
// behind, and is idempotent.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/files.h"
#include "node/client/client.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_tls.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kCluster = "it-simc";

CommandResult simcluster(const std::vector<std::string>& args, int timeout_ms = 120000) {
  return simclusterCommand(args, timeout_ms);
}

// The status line of one host ("h1     up ...") or of ceph.
std::string statusLine(const std::string& status, const std::string& what) {
  std::istringstream lines(status);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(what + " ", 0) == 0) return line;
  }
  return {};
}
std::string stateOf(const std::string& status, const std::string& what) {
  std::istringstream words(statusLine(status, what));
  std::string name, state;
  words >> name >> state;
  return state;
}

// The network namespace inode of a file under /run/netns, or 0.
ino_t netnsInode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool liveProcess(const std::string& pid) {
  std::string stat = readFile("/proc/" + pid + "/stat");
  auto end = stat.rfind(") ");
  return end != std::string::npos && end + 2 < stat.size() && stat[end + 2] != 'Z';
}

// Live processes (not zombies) in any of these network namespaces, or whose command line
// contains `needle`; "pid(comm)" each.
std::vector<std::string> processesOf(const std::set<ino_t>& netns, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st {};
    bool hit = ::stat(("/proc/" + pid + "/ns/net").c_str(), &st) == 0 && netns.contains(st.st_ino);
    if (!hit && !needle.empty()) {
      std::string cmdline = readFile("/proc/" + pid + "/cmdline");
      for (auto& c : cmdline) {
        if (c == '\0') c = ' ';
      }
      hit = cmdline.find(needle) != std::string::npos &&
            cmdline.find("simcluster_it") == std::string::npos;
    }
    if (hit && liveProcess(pid)) {
      std::string comm = readFile("/proc/" + pid + "/comm");
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      out.push_back(pid + "(" + comm + ")");
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

// Takes the cluster down however the test ends.
struct ClusterGuard {
  ~ClusterGuard() { simcluster({"down", kCluster}, 180000); }
};

TEST(SimclusterScript, UpKillPartitionHealDown) {
  auto leftover = simcluster({"down", kCluster}, 180000);  // what a killed run left
  ASSERT_EQ(leftover.exit_code, 0) << leftover.out << leftover.err;
  ClusterGuard guard;

  const auto t0 = std::chrono::steady_clock::now();
  auto up = simcluster({"up", kCluster, "--hosts", "3", "--accel", "tcg"}, 400000);
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  const auto up_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("up --hosts 3: %.1f s\n", up_s);

  auto env_run = simcluster({"env", kCluster});
  ASSERT_EQ(env_run.exit_code, 0) << env_run.err;
  auto env = parseKeyValueLines(env_run.out);
  ASSERT_EQ(env["SIMC_HOSTS"], "h1 h2 h3");
  const std::vector<std::string> hosts = {"h1", "h2", "h3"};
  const std::string ceph_conf = env["SIMC_CEPH_CONF"];
  const std::string fabric = "/run/netns/" + env["SIMC_FABRIC_NETNS"];
  ASSERT_FALSE(ceph_conf.empty());

  auto status = simcluster({"status", kCluster});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(stateOf(status.out, "ceph"), "up") << status.out;
  for (const auto& host : hosts) EXPECT_EQ(stateOf(status.out, host), "up") << status.out;

  // The admin's configuration reaches each host's API at its underlay address (whose
  // certificate names that address), and each host is of this cluster.
  auto config = simcluster({"config", kCluster});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  std::string config_file = config.out.substr(0, config.out.find('\n'));
  ASSERT_TRUE(fs::exists(config_file)) << config_file;
  auto qiaoctl = [&](const std::string& host, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {qiaoctlBinary(), "--config", config_file, "--endpoint",
                                     "https://" + env["SIMC_" + host + "_ADDR"] + ":8443"};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, 30000);
  };
  for (const auto& host : hosts) {
    auto info = qiaoctl(host, {"-o", "json", "host"});
    ASSERT_EQ(info.exit_code, 0) << host << ": " << info.out << info.err;
    EXPECT_EQ(json::parse(info.out, nullptr, false).value("cluster", ""), kCluster) << info.out;
    auto vms = qiaoctl(host, {"vm", "list"});
    EXPECT_EQ(vms.exit_code, 0) << host << ": " << vms.out << vms.err;
  }

  // The hosts are members: each holds its lease, one leads. Kill the leader's host: another
  // leads within the lease (cluster.lease_s, 10 s) plus 2 s, and sees the dead one unreachable.
  auto cluster_of = [&](const std::string& host) {
    auto run = qiaoctl(host, {"-o", "json", "cluster", "status"});
    json j = json::parse(run.out, nullptr, false);
    return run.exit_code == 0 && j.is_object() ? j : json::object();
  };
  auto host_state = [&](const json& status, const std::string& name) {
    for (const auto& h : status.value("hosts", json::array())) {
      if (h.value("name", "") == name) return h.value("state", "");
    }
    return std::string("absent");
  };
  auto wait_until = [&](int seconds, const std::function<bool()>& ok) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  };
  json view;
  ASSERT_TRUE(wait_until(60,
                         [&] {
                           view = cluster_of("h2");
                           const json leader =
                               view.value("cluster", json::object()).value("leader", json());
                           return leader.is_object() && host_state(view, "h1") == "ready" &&
                                  host_state(view, "h2") == "ready" &&
                                  host_state(view, "h3") == "ready";
                         }))
      << "no leader with every host ready: " << view.dump();
  // Tunnels follow membership: each host's OVS has a vxlan and a geneve port to the other's
  // underlay address, from its host record (no tunnel_peers in any qiaod.toml); GET
  // /v1/hosts/{name} shows the address each host published.
  auto tunnels_of = [&](const std::string& host) {
    // remote_ip -> "vxlan"/"geneve" ports with this host's local_ip and an OpenFlow port.
    std::map<std::string, std::set<std::string>> out;
    auto run = runCommand({sourceDir() + "/scripts/simhost", "exec",
                           env["SIMC_" + host + "_SIMHOST"], "--", "ovs-vsctl", "--timeout=5",
                           "--format=json", "--columns=type,options,ofport", "find", "Interface",
                           "external_ids:qiao-role=tunnel"});
    json j = json::parse(run.out, nullptr, false);
    if (run.exit_code != 0 || !j.is_object()) return out;
    for (const auto& row : j.value("data", json::array())) {
      if (!row.is_array() || row.size() != 3 || !row[0].is_string()) continue;
      std::map<std::string, std::string> options;
      if (row[1].is_array() && row[1].size() == 2 && row[1][1].is_array()) {
        for (const auto& kv : row[1][1]) {
          options[kv[0].get<std::string>()] = kv[1].get<std::string>();
        }
      }
      if (options["local_ip"] == env["SIMC_" + host + "_ADDR"] && row[2].is_number_integer() &&
          row[2].get<int64_t>() > 0) {
        out[options["remote_ip"]].insert(row[0].get<std::string>());
      }
    }
    return out;
  };
  const std::set<std::string> both_types = {"vxlan", "geneve"};
  std::map<std::string, std::set<std::string>> tunnels;
  const auto tunnels_t0 = std::chrono::steady_clock::now();
  for (const auto& host : hosts) {
    EXPECT_EQ(readFile(env["SIMC_" + host + "_DIR"] + "/qiaod.toml").find("tunnel_peers"),
              std::string::npos);
    auto to_peers_only = [&] {
      tunnels = tunnels_of(host);
      if (tunnels.size() != hosts.size() - 1) return false;
      for (const auto& peer : hosts) {
        if (peer != host && tunnels[env["SIMC_" + peer + "_ADDR"]] != both_types) return false;
      }
      return true;
    };
    EXPECT_TRUE(wait_until(10, to_peers_only))
        << host << "'s tunnels are not exactly to the others: " << json(tunnels).dump();
    const std::string peer = host == "h1" ? "h2" : "h1";
    auto record = qiaoctl(host, {"-o", "json", "host", "get", peer});
    EXPECT_EQ(json::parse(record.out, nullptr, false).value("tunnel_ip", ""),
              env["SIMC_" + peer + "_ADDR"])
        << record.out << record.err;
  }
  std::printf("tunnels between the members checked in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - tunnels_t0).count());
  const std::string leader = view["cluster"]["leader"].value("host", "");
  const uint64_t epoch = view["cluster"]["leader"].value("epoch", uint64_t{0});
  ASSERT_TRUE(leader == "h1" || leader == "h2" || leader == "h3") << view.dump();
  const std::string other = leader == "h1" ? "h2" : "h1";  // a member that lives on
  ASSERT_EQ(simcluster({"kill", kCluster, leader}).exit_code, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  std::string new_leader;
  ASSERT_TRUE(wait_until(
      30,
      [&] {
        view = cluster_of(other);
        new_leader =
            view.value("cluster", json::object()).value("leader", json::object()).value("host", "");
        return !new_leader.empty() && new_leader != leader;
      }))
      << "no member took over: " << view.dump();
  const double failover_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::printf("leader %s killed: %s leads after %.1f s (lease 10 s)\n", leader.c_str(),
              new_leader.c_str(), failover_s);
  EXPECT_LE(failover_s, 12.0) << "leader failover slower than the lease + 2 s";
  EXPECT_GT(view["cluster"]["leader"].value("epoch", uint64_t{0}), epoch);
  EXPECT_EQ(host_state(view, leader), "unreachable") << view.dump();
  // An unreachable host keeps its tunnels: it may come back.
  tunnels = tunnels_of(other);
  EXPECT_EQ(tunnels[env["SIMC_" + leader + "_ADDR"]], both_types) << json(tunnels).dump();
  ASSERT_EQ(simcluster({"start", kCluster, leader}, 240000).exit_code, 0);
  EXPECT_TRUE(wait_until(60,
                         [&] {
                           view = cluster_of(leader);
                           return host_state(view, leader) == "ready" &&
                                  host_state(view, other) == "ready" &&
                                  !view["cluster"].value("this_host_leads", true);
                         }))
      << leader << " did not come back as a follower: " << view.dump();

  // The cluster's VMs. One made through h1 for h2 (an admin names the host) is h2's: every
  // member lists it with its host, its domain is on h2 alone, and calls on it through h3 are
  // forwarded to h2 (their tasks followed through h3). A VM without a host is placed by the
  // leader on the first host with room (h1, in name order); a name is one VM in the cluster; a
  // host with VMs cannot be removed.
  const auto vms_t0 = std::chrono::steady_clock::now();
  auto vm_spec = [](const std::string& name) {
    return json({{"name", name}, {"tenant", "t1"}, {"memory_mib", 64}}).dump();
  };
  auto create_vm = [&](const std::string& through, const std::string& name,
                       const std::string& host) {
    std::vector<std::string> argv = {qiaoctlBinary(),
                                     "--config",
                                     config_file,
                                     "--endpoint",
                                     "https://" + env["SIMC_" + through + "_ADDR"] + ":8443",
                                     "-o",
                                     "json",
                                     "vm",
                                     "create",
                                     "-f",
                                     "-",
                                     "--no-start",
                                     "--wait"};
    if (!host.empty()) {
      argv.push_back("--host");
      argv.push_back(host);
    }
    return runCommand(argv, 120000, vm_spec(name));
  };
  auto hosts_of_vms = [&](const std::string& through) {
    std::map<std::string, std::string> out;
    auto run = qiaoctl(through, {"-o", "json", "vm", "list", "--all"});
    json j = json::parse(run.out, nullptr, false);
    if (run.exit_code != 0 || !j.is_object()) return out;
    for (const auto& vm : j.value("items", json::array())) {
      out[vm.value("name", "")] = vm.value("host", "");
    }
    return out;
  };
  auto domstate = [&](const std::string& host, const std::string& domain) {
    auto run =
        runCommand({sourceDir() + "/scripts/simhost", "exec", env["SIMC_" + host + "_SIMHOST"],
                    "--", "virsh", "-c", "qemu:///system", "domstate", domain});
    return run.exit_code == 0 ? run.out.substr(0, run.out.find('\n')) : std::string("absent");
  };
  auto fwd1 = create_vm("h1", "fwd1", "h2");
  ASSERT_EQ(fwd1.exit_code, 0) << fwd1.out << fwd1.err;
  EXPECT_EQ(json::parse(fwd1.out, nullptr, false).value("host", ""), "h2") << fwd1.out;
  std::map<std::string, std::string> vm_hosts;
  for (const auto& member : hosts) {
    EXPECT_TRUE(wait_until(10,
                           [&] {
                             vm_hosts = hosts_of_vms(member);
                             return vm_hosts["fwd1"] == "h2";
                           }))
        << member << " lists " << json(vm_hosts).dump();
  }
  EXPECT_EQ(domstate("h2", "t1.fwd1"), "shut off");
  EXPECT_EQ(domstate("h1", "t1.fwd1"), "absent");
  EXPECT_EQ(domstate("h3", "t1.fwd1"), "absent");
  auto started_vm = qiaoctl("h3", {"vm", "start", "fwd1", "--tenant", "t1", "--wait"});
  EXPECT_EQ(started_vm.exit_code, 0) << started_vm.out << started_vm.err;
  EXPECT_EQ(domstate("h2", "t1.fwd1"), "running");
  auto stopped_vm = qiaoctl("h3", {"vm", "force-stop", "fwd1", "--tenant", "t1", "--wait"});
  EXPECT_EQ(stopped_vm.exit_code, 0) << stopped_vm.out << stopped_vm.err;
  EXPECT_EQ(domstate("h2", "t1.fwd1"), "shut off");
  auto twice = create_vm("h2", "fwd1", "");
  EXPECT_EQ(twice.exit_code, 1) << twice.out << twice.err;
  EXPECT_NE(twice.err.find("already exists"), std::string::npos) << twice.err;
  auto placed = create_vm("h2", "placed1", "");
  ASSERT_EQ(placed.exit_code, 0) << placed.out << placed.err;
  EXPECT_EQ(json::parse(placed.out, nullptr, false).value("host", ""), "h1") << placed.out;
  EXPECT_EQ(domstate("h1", "t1.placed1"), "shut off");
  auto busy_host = qiaoctl("h1", {"host", "remove", "h2"});
  EXPECT_EQ(busy_host.exit_code, 1) << busy_host.out << busy_host.err;
  EXPECT_NE(busy_host.err.find("fwd1"), std::string::npos) << busy_host.err;
  EXPECT_EQ(qiaoctl("h2", {"vm", "delete", "placed1", "--tenant", "t1", "--wait"}).exit_code, 0);
  EXPECT_EQ(qiaoctl("h1", {"vm", "delete", "fwd1", "--tenant", "t1", "--wait"}).exit_code, 0);
  EXPECT_EQ(domstate("h2", "t1.fwd1"), "absent");
  EXPECT_TRUE(wait_until(10,
                         [&] {
                           return hosts_of_vms("h1").empty() && hosts_of_vms("h2").empty() &&
                                  hosts_of_vms("h3").empty();
                         }))
      << json(hosts_of_vms("h1")).dump() << json(hosts_of_vms("h2")).dump()
      << json(hosts_of_vms("h3")).dump();
  // Roles are the cluster's: operators of t1 and t2, granted through h1 (`qiaod pki issue` on
  // a member writes the binding into the cluster), act through h2. The t2 operator sees nothing
  // of t1's VM in the cluster-wide list, nor the VM itself; the t1 operator's VM, placed by the
  // leader, is deleted through h2 by forwarding (h1 reads the t1 operator's role from the
  // cluster's bindings).
  const std::string ops_dir = env["SIMC_STATE_DIR"] + "/it-operators";
  fs::create_directories(ops_dir);
  auto operator_of = [&](const std::string& tenant) {
    const std::string who = "op-" + tenant;
    auto issued =
        runCommand({qiaodBinary(), "--config", env["SIMC_h1_DIR"] + "/qiaod.toml", "pki", "issue",
                    "--kind", "user", "--name", who, "--role", "operator", "--tenant", tenant,
                    "--dir", env["SIMC_STATE_DIR"] + "/ca", "--out", ops_dir + "/" + who},
                   60000);
    EXPECT_EQ(issued.exit_code, 0) << issued.out << issued.err;
    const std::string file = ops_dir + "/" + who + ".toml";
    std::ofstream(file) << ("endpoint = \"https://" + env["SIMC_h2_ADDR"] + ":8443\"\nca = \"" +
                            env["SIMC_CA"] + "\"\ncert = \"" + ops_dir + "/" + who + "/" + who +
                            ".crt\"\nkey = \"" + ops_dir + "/" + who + "/" + who + ".key\"\n");
    return file;
  };
  const std::string op_t1 = operator_of("t1"), op_t2 = operator_of("t2");
  auto as = [&](const std::string& file, const std::vector<std::string>& args,
                const std::string& stdin_data = {}) {
    std::vector<std::string> argv = {qiaoctlBinary(), "--config", file};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, 120000, stdin_data);
  };
  auto mine =
      as(op_t1, {"-o", "json", "vm", "create", "-f", "-", "--no-start", "--wait"}, vm_spec("iso1"));
  ASSERT_EQ(mine.exit_code, 0) << mine.out << mine.err;
  EXPECT_EQ(json::parse(mine.out, nullptr, false).value("host", ""), "h1") << mine.out;
  auto t1_list = as(op_t1, {"-o", "json", "vm", "list"});
  EXPECT_NE(t1_list.out.find("\"iso1\""), std::string::npos) << t1_list.out << t1_list.err;
  auto t2_list = as(op_t2, {"-o", "json", "vm", "list"});
  ASSERT_EQ(t2_list.exit_code, 0) << t2_list.err;
  EXPECT_EQ(json::parse(t2_list.out, nullptr, false).value("items", json::array()).size(), 0u)
      << t2_list.out;
  auto t2_get = as(op_t2, {"vm", "get", "iso1", "--tenant", "t1"});
  EXPECT_NE(t2_get.exit_code, 0) << t2_get.out;
  auto t2_delete = as(op_t2, {"vm", "delete", "iso1", "--tenant", "t1"});
  EXPECT_NE(t2_delete.exit_code, 0) << t2_delete.out;
  auto t1_delete = as(op_t1, {"vm", "delete", "iso1", "--wait"});
  EXPECT_EQ(t1_delete.exit_code, 0) << t1_delete.out << t1_delete.err;
  EXPECT_EQ(domstate("h1", "t1.iso1"), "absent");
  std::printf("cluster VMs (forwarded calls, placement) checked in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - vms_t0).count());

  // A tenant network across the hosts. t1's operator makes a vxlan network through h2 without a
  // segment id (the cluster's one allocator gives it); a guest on each host gets an address
  // from the one allocator of the network's ports (gateway .1, DHCP .2, then .3, .4 and .5,
  // each made on its host whatever that host had heard of the others), and each reaches the
  // next one's TCP banner and ping across the tunnels (a ring: every pair of hosts), through
  // the tenant's default security group (ingress from its members: the other hosts' ports are
  // members). Deleted through h1, the network leaves every host's switch.
  if (testGuestAvailable()) {
    const auto net_t0 = std::chrono::steady_clock::now();
    auto client_to = [&](const std::string& file, const std::string& host) {
      auto loaded = loadClientConfig(file);
      EXPECT_TRUE(loaded.has_value()) << loaded.error().describe();
      loaded->endpoint = "https://" + env["SIMC_" + host + "_ADDR"] + ":8443";
      loaded->timeout_ms = 30000;
      auto made = ApiClient::create(*loaded);
      EXPECT_TRUE(made.has_value()) << made.error().describe();
      return std::move(*made);
    };
    ApiClient admin1 = client_to(config_file, "h1");
    ApiClient op2 = client_to(op_t1, "h2");
    json net = {{"name", "blue"}, {"tenant", "t1"}, {"type", "vxlan"}, {"subnet", "10.70.0.0/24"}};
    auto made_net = call(op2, "POST", "/v1/networks", net.dump());
    ASSERT_EQ(made_net.status, 202) << made_net.raw;
    ASSERT_EQ(waitTask(op2, made_net.body["id"])["state"], "succeeded");
    auto seen = call(admin1, "GET", "/v1/networks/blue?tenant=t1");
    ASSERT_EQ(seen.status, 200) << seen.raw;
    EXPECT_EQ(seen.body.value("state", ""), "ready") << seen.raw;
    EXPECT_GE(seen.body.value("segment_id", 0), 1000) << seen.raw;
    const std::string net_prefix = "qd-" + seen.body.value("uuid", "").substr(0, 8);
    struct Guest {
      std::string name, host, ip, peer;
    };
    const std::vector<Guest> guests = {{"net-a", "h1", "10.70.0.3", "10.70.0.4"},
                                       {"net-b", "h2", "10.70.0.4", "10.70.0.5"},
                                       {"net-c", "h3", "10.70.0.5", "10.70.0.3"}};
    const std::map<std::string, std::string> asks = {
        {"net-a", "net-b"}, {"net-b", "net-c"}, {"net-c", "net-a"}};
    for (const auto& g : guests) {
      json spec = guestSpec(g.name, "t1", "qiao.dhcp=1 " + guestRun(bannerScript(g.name, g.peer)));
      spec["nics"] = json::array({{{"network", "blue"}}});
      spec["host"] = g.host;
      auto r = call(admin1, "POST", "/v1/vms", spec.dump());
      ASSERT_EQ(r.status, 202) << r.raw;
      ASSERT_EQ(waitTask(admin1, r.body["id"], std::chrono::seconds(180))["state"], "succeeded")
          << g.name;
    }
    for (const auto& g : guests) {
      auto vm = call(admin1, "GET", "/v1/vms/" + g.name + "?tenant=t1");
      EXPECT_EQ(vm.body.value("host", ""), g.host) << vm.raw;
      EXPECT_NE(vm.raw.find("\"" + g.ip + "\""), std::string::npos)
          << g.name << " does not have " << g.ip << ": " << vm.raw;
    }
    for (const auto& g : guests) {
      const std::string peer = asks.at(g.name);
      std::string out =
          waitConsole(admin1, g.name, "t1", "run: DONE", 1, std::chrono::seconds(240));
      EXPECT_NE(out.find("run: GOT BANNER-" + peer), std::string::npos)
          << g.name << " did not reach " << peer << ":\n"
          << out;
      EXPECT_NE(out.find("run: PING-ok"), std::string::npos) << g.name << ":\n" << out;
    }
    auto switch_ports = [&](const std::string& host) {
      return runCommand({sourceDir() + "/scripts/simhost", "exec", env["SIMC_" + host + "_SIMHOST"],
                         "--", "ovs-vsctl", "--timeout=5", "list-ports", "br-int"})
          .out;
    };
    for (const auto& g : guests) {
      EXPECT_NE(switch_ports(g.host).find(net_prefix), std::string::npos)
          << g.host << " does not carry blue: " << switch_ports(g.host);
      // The other hosts' guests are members of the default group in this host's flows.
      auto flows =
          runCommand({sourceDir() + "/scripts/simhost", "exec", env["SIMC_" + g.host + "_SIMHOST"],
                      "--", "ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "br-int", "table=31"});
      EXPECT_NE(flows.out.find("nw_src=" + g.peer), std::string::npos)
          << g.host << ": " << flows.out;
    }
    for (const auto& g : guests) {
      auto gone = call(admin1, "DELETE", "/v1/vms/" + g.name + "?tenant=t1&force=true");
      ASSERT_EQ(gone.status, 202) << gone.raw;
      EXPECT_EQ(waitTask(admin1, gone.body["id"], std::chrono::seconds(120))["state"], "succeeded");
    }
    auto net_gone = call(admin1, "DELETE", "/v1/networks/blue?tenant=t1");
    ASSERT_EQ(net_gone.status, 202) << net_gone.raw;
    EXPECT_EQ(waitTask(admin1, net_gone.body["id"])["state"], "succeeded");
    for (const auto& host : hosts) {
      EXPECT_TRUE(
          wait_until(20, [&] { return switch_ports(host).find(net_prefix) == std::string::npos; }))
          << host << " still carries blue: " << switch_ports(host);
    }
    std::printf("a tenant network across the hosts checked in %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - net_t0).count());
  }

  // The underlay joins the hosts: h1 reaches h2's address, and h2's libvirtd over TCP there
  // (the path of tunnels and migrations).
  const std::string sim1 = env["SIMC_h1_SIMHOST"];
  auto ping = runCommand({sourceDir() + "/scripts/simhost", "exec", sim1, "--", "ping", "-c", "1",
                          "-W", "2", env["SIMC_h2_ADDR"]});
  EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;
  auto virsh = runCommand({sourceDir() + "/scripts/simhost", "exec", sim1, "--", "timeout", "20",
                           "virsh", "-c", "qemu+tcp://" + env["SIMC_h2_ADDR"] + "/system", "uri"});
  EXPECT_EQ(virsh.exit_code, 0) << virsh.out << virsh.err;

  // A host's view of Ceph, with its own cephx identity, from inside it.
  auto ceph_from = [&](const std::string& host) {
    return runCommand({sourceDir() + "/scripts/simhost", "exec", env["SIMC_" + host + "_SIMHOST"],
                       "--", "timeout", "20", "ceph", "--conf", ceph_conf, "--id",
                       env["SIMC_" + host + "_CEPH_USER"], "--connect-timeout", "5", "health"},
                      40000);
  };
  auto healthy = ceph_from("h2");
  ASSERT_EQ(healthy.exit_code, 0) << healthy.out << healthy.err;

  // kill: every process of h1 gone at once; status says down.
  const ino_t h1_netns = netnsInode("/run/netns/qiao-sim-" + env["SIMC_h1_SIMHOST"]);
  ASSERT_NE(h1_netns, 0u);
  EXPECT_FALSE(processesOf({h1_netns}, "").empty()) << "h1 runs nothing before the kill?";
  auto killed = simcluster({"kill", kCluster, "h1"});
  ASSERT_EQ(killed.exit_code, 0) << killed.out << killed.err;
  EXPECT_NE(killed.out.find("qiaod"), std::string::npos) << killed.out;
  EXPECT_EQ(join(processesOf({h1_netns}, "")), "") << "processes of h1 survived the kill";
  status = simcluster({"status", kCluster});
  EXPECT_EQ(status.exit_code, 3) << status.out << status.err;
  EXPECT_EQ(stateOf(status.out, "h1"), "down") << status.out;
  EXPECT_EQ(stateOf(status.out, "h2"), "up") << status.out;

  // partition: h2 loses Ceph (and the admin loses h2); heal gives both back.
  auto cut = simcluster({"partition", kCluster, "h2"});
  ASSERT_EQ(cut.exit_code, 0) << cut.out << cut.err;
  auto lost = ceph_from("h2");
  EXPECT_NE(lost.exit_code, 0) << "h2 reached Ceph while partitioned: " << lost.out;
  auto unreachable = qiaoctl("h2", {"host"});
  EXPECT_NE(unreachable.exit_code, 0) << "the admin reached h2 while partitioned";
  status = simcluster({"status", kCluster});
  EXPECT_EQ(status.exit_code, 3) << status.out;
  EXPECT_EQ(stateOf(status.out, "h2"), "up,partitioned") << status.out;
  auto healed = simcluster({"heal", kCluster, "h2"});
  ASSERT_EQ(healed.exit_code, 0) << healed.out << healed.err;
  auto back = ceph_from("h2");
  EXPECT_EQ(back.exit_code, 0) << "h2 has no Ceph after heal: " << back.out << back.err;
  EXPECT_EQ(qiaoctl("h2", {"host"}).exit_code, 0) << "the admin cannot reach h2 after heal";

  // A timed partition heals by itself, and its timer ends.
  auto timed = simcluster({"partition", kCluster, "h2", "--seconds", "3"});
  ASSERT_EQ(timed.exit_code, 0) << timed.out << timed.err;
  auto link = runCommand({"ip", "-n", env["SIMC_FABRIC_NETNS"], "-o", "link", "show", "h2"});
  EXPECT_NE(link.out.find("state DOWN"), std::string::npos)
      << "h2's port is not down: " << link.out;
  const std::string timer = "_heal-after " + kCluster + " h2";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool self_healed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    link = runCommand({"ip", "-n", env["SIMC_FABRIC_NETNS"], "-o", "link", "show", "h2"});
    if (link.out.find("state DOWN") == std::string::npos && processesOf({}, timer).empty()) {
      self_healed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(self_healed) << link.out << join(processesOf({}, timer));
  EXPECT_EQ(ceph_from("h2").exit_code, 0) << "h2 has no Ceph after the timed partition";

  // A killed host starts again.
  auto started = simcluster({"start", kCluster, "h1"}, 240000);
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  status = simcluster({"status", kCluster});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(qiaoctl("h1", {"host"}).exit_code, 0);

  // Join tokens: single use, the secret shown once, the CA pinned in the token.
  auto token = qiaoctl("h1", {"-o", "json", "cluster", "token", "create", "--expires", "10m",
                              "--site", "s2", "--labels", "rack=r7"});
  ASSERT_EQ(token.exit_code, 0) << token.out << token.err;
  json made = json::parse(token.out, nullptr, false);
  const std::string token_text = made.value("token", "");
  EXPECT_EQ(token_text.rfind("qiao-join." + made.value("id", "") + ".", 0), 0u) << token.out;
  EXPECT_EQ(token_text.substr(token_text.size() - 64), made.value("ca_sha256", "")) << token.out;
  EXPECT_EQ(made.value("site", ""), "s2");
  auto too_long = qiaoctl("h2", {"cluster", "token", "create", "--expires", "8d"});
  EXPECT_EQ(too_long.exit_code, 1) << too_long.out << too_long.err;
  EXPECT_NE(too_long.err.find("7 days"), std::string::npos) << too_long.err;

  // ---- Enrollment (qiaod join) -------------------------------------------------------------
  // h2 joined through h1 during `up` with a token (scripts/simcluster join_hosts): what the join
  // wrote is there with its modes, and its configuration is a member's. Then joins run from
  // this machine (its address on the cluster's subnet), each with its own empty directories:
  // a host below the cluster's baseline does not join and writes nothing (the token stays
  // usable); a valid token joins (a record joining, with the token's site); the same token
  // again, an expired one and a forged one are refused; a token pinning another CA is not
  // trusted. The joined record is removed again.
  {
    const std::string h2_dir = env["SIMC_h2_DIR"];
    auto mode_of = [](const std::string& path) {
      struct stat st {};
      return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0u;
    };
    EXPECT_EQ(mode_of(h2_dir + "/pki/node.key"), 0600u);
    EXPECT_EQ(mode_of(h2_dir + "/ceph/client.qiao-host-h2.keyring"), 0600u);
    EXPECT_NE(readFile(h2_dir + "/join.log").find("joined cluster " + kCluster), std::string::npos)
        << readFile(h2_dir + "/join.log");
    EXPECT_NE(readFile(h2_dir + "/qiaod.toml").find("mode = \"member\""), std::string::npos);

    const fs::path scratch =
        fs::temp_directory_path() / ("qiao-simc-join-" + std::to_string(::getpid()));
    fs::remove_all(scratch);
    const std::string baseline = env["SIMC_STATE_DIR"] + "/baseline.toml";
    const std::string baseline_before = readFile(baseline);
    auto join_as = [&](const std::string& name, const std::string& token) {
      const fs::path dir = scratch / name;
      fs::remove_all(dir);
      return joinFromHere("https://" + env["SIMC_h1_ADDR"] + ":8443", name, env["SIMC_ROOT_ADDR"],
                          dir.string(), token);
    };
    auto new_token = [&](const std::string& expires) {
      auto run =
          qiaoctl("h1", {"cluster", "token", "create", "--expires", expires, "--site", "s3"});
      EXPECT_EQ(run.exit_code, 0) << run.err;
      return run.out.substr(0, run.out.find('\n'));
    };
    // Below the baseline (huge pages no machine here has): exit 5 naming the item, nothing
    // written, the token still usable.
    ASSERT_TRUE(writeFileAtomic(baseline, "[host]\nmin_hugepages = 1000000000\n", 0644));
    const std::string t1 = new_token("10m");
    auto below = join_as("j3", t1);
    EXPECT_EQ(below.exit_code, 5) << below.out << below.err;
    EXPECT_NE(below.err.find("hugepages"), std::string::npos) << below.err;
    EXPECT_FALSE(fs::exists(scratch / "j3" / "qiaod.toml"));
    EXPECT_FALSE(fs::exists(scratch / "j3" / "pki"));
    EXPECT_EQ(host_state(cluster_of("h1"), "j3"), "absent");
    ASSERT_TRUE(writeFileAtomic(baseline, baseline_before, 0644));
    // The same token once the baseline is met: joined, timed from the token to the files.
    const auto join_t0 = std::chrono::steady_clock::now();
    auto ok = join_as("j3", t1);
    const double join_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - join_t0).count();
    ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
    std::printf("qiaod join (token to files written): %.2f s\n", join_s);
    EXPECT_NE(ok.out.find("verified against the token's pin"), std::string::npos) << ok.out;
    EXPECT_EQ(mode_of((scratch / "j3" / "pki" / "node.key").string()), 0600u);
    EXPECT_EQ(mode_of((scratch / "j3" / "ceph" / "client.qiao-host-j3.keyring").string()), 0600u);
    EXPECT_NE(readFile((scratch / "j3" / "qiaod.toml").string()).find("site = \"s3\""),
              std::string::npos);
    json j3 = json::parse(qiaoctl("h1", {"-o", "json", "host", "get", "j3"}).out, nullptr, false);
    EXPECT_EQ(j3.value("state", ""), "joining") << j3.dump();
    EXPECT_EQ(j3.value("site", ""), "s3") << j3.dump();
    // Refused: the token used already (exit 4), an expired one, a forged secret; a token whose
    // CA pin is not the cluster's (exit 3: nothing sent). None writes anything.
    auto reused = join_as("j4", t1);
    EXPECT_EQ(reused.exit_code, 4) << reused.out << reused.err;
    const std::string t_short = new_token("1s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(join_as("j4", t_short).exit_code, 4);
    std::string forged = new_token("10m");
    const size_t secret_at = forged.find('.', std::string("qiao-join.").size()) + 1;
    forged.replace(secret_at, 32, std::string(32, '0'));
    auto forged_run = join_as("j4", forged);
    EXPECT_EQ(forged_run.exit_code, 4) << forged_run.out << forged_run.err;
    std::string other_ca = new_token("10m");
    other_ca.replace(other_ca.size() - 64, 64, std::string(64, 'a'));
    auto untrusted = join_as("j4", other_ca);
    EXPECT_EQ(untrusted.exit_code, 3) << untrusted.out << untrusted.err;
    EXPECT_FALSE(fs::exists(scratch / "j4" / "qiaod.toml"));
    EXPECT_EQ(host_state(cluster_of("h1"), "j4"), "absent");
    // The CA route takes no query (a 4xx of it for the contract), asked without a certificate.
    ClientConfig anonymous;
    anonymous.endpoint = "https://" + env["SIMC_h1_ADDR"] + ":8443";
    anonymous.unverified_server = true;
    auto client = ApiClient::create(anonymous);
    ASSERT_TRUE(client);
    auto ca = client->request("GET", "/v1/cluster/ca?tenant=x");
    ASSERT_TRUE(ca);
    EXPECT_EQ(ca->status, 400);
    auto hosts_anonymous = client->request("GET", "/v1/hosts");
    ASSERT_TRUE(hosts_anonymous);
    EXPECT_EQ(hosts_anonymous->status, 401) << "only the enrollment routes are open";
    auto j3_removed = qiaoctl("h1", {"host", "remove", "j3"});
    EXPECT_EQ(j3_removed.exit_code, 0) << j3_removed.err;
    fs::remove_all(scratch);
  }
  // ---- end of enrollment ---------------------------------------------------------------------

  // Removing a host: not the member that answers, not an unknown one; h2 (no VMs) is removed
  // through h1 (the member holding the CA key): its certificate is refused, its Ceph user gone.
  auto self_remove = qiaoctl("h1", {"host", "remove", "h1"});
  EXPECT_EQ(self_remove.exit_code, 1);
  EXPECT_NE(self_remove.err.find("another member"), std::string::npos) << self_remove.err;
  EXPECT_EQ(qiaoctl("h1", {"host", "remove", "h9"}).exit_code, 1);
  const std::string state_dir = env["SIMC_STATE_DIR"];
  RawTlsOptions as_h2;
  as_h2.ca = state_dir + "/ca/ca.crt";
  as_h2.cert = state_dir + "/hosts/h2/pki/node.crt";
  as_h2.key = state_dir + "/hosts/h2/pki/node.key";
  // The HTTP status of a call to `member` with h2's certificate; 0 when there is no answer (TLS
  // 1.3: the server's refusal of a client certificate comes after the client's side of the
  // handshake).
  auto call_as_h2 = [&](const std::string& member, std::string* error) {
    as_h2.endpoint = "https://" + env["SIMC_" + member + "_ADDR"] + ":8443";
    auto tls = RawTls::connect(as_h2, error);
    if (!tls) return 0;
    tls->send("GET /v1/host HTTP/1.1\r\nHost: h1\r\nConnection: close\r\n\r\n");
    return httpStatusOf(tls->readUntilClosed(10000));
  };
  std::string tls_error;
  // Before: h2's node certificate is accepted by h1 and h3 (a node's binding, an admin's role,
  // is the cluster's: docs/operators/cluster.md, forwarding).
  EXPECT_EQ(call_as_h2("h1", &tls_error), 200) << tls_error;
  EXPECT_EQ(call_as_h2("h3", &tls_error), 200) << tls_error;
  auto removed = qiaoctl("h1", {"-o", "json", "host", "remove", "h2"});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  json removal = json::parse(removed.out, nullptr, false);
  EXPECT_FALSE(removal.value("revoked_serial", "").empty()) << removed.out;
  EXPECT_EQ(removal.value("ceph_user", ""), "client.qiao-host-h2");
  EXPECT_EQ(host_state(cluster_of("h1"), "h2"), "removed");
  const auto removed_at = std::chrono::steady_clock::now();
  bool refused = wait_until(
      10, [&] { return call_as_h2("h1", &tls_error) == 0 && call_as_h2("h3", &tls_error) == 0; });
  EXPECT_TRUE(refused) << "a member still accepts the removed h2's certificate";
  std::printf("h2 removed; its certificate refused by h1 and h3 after %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - removed_at).count());
  EXPECT_NE(ceph_from("h2").exit_code, 0) << "the removed h2's Ceph user still works";
  auto again_removed = qiaoctl("h1", {"host", "remove", "h2"});
  EXPECT_EQ(again_removed.exit_code, 0) << again_removed.err;  // idempotent

  // A partition left in place, with a timer running, when the cluster goes down.
  ASSERT_EQ(simcluster({"partition", kCluster, "h1", "--seconds", "600"}).exit_code, 0);
  std::set<ino_t> netns = {netnsInode(fabric), h1_netns,
                           netnsInode("/run/netns/qiao-sim-" + env["SIMC_h2_SIMHOST"]),
                           netnsInode("/run/netns/qiao-sim-" + env["SIMC_h3_SIMHOST"])};
  netns.erase(0);
  ASSERT_EQ(netns.size(), 4u);
  auto down = simcluster({"down", kCluster}, 180000);
  ASSERT_EQ(down.exit_code, 0) << down.out << down.err;
  EXPECT_EQ(join(processesOf(netns, env["SIMC_STATE_DIR"])), "") << "processes left by down";
  EXPECT_EQ(join(processesOf({}, timer)), "") << "heal timer left by down";
  EXPECT_FALSE(fs::exists(fabric));
  EXPECT_FALSE(fs::exists("/run/netns/qiao-sim-" + env["SIMC_h1_SIMHOST"]));
  EXPECT_FALSE(fs::exists("/run/netns/qiao-sim-" + env["SIMC_h2_SIMHOST"]));
  EXPECT_FALSE(fs::exists("/run/netns/qiao-sim-" + env["SIMC_h3_SIMHOST"]));
  EXPECT_FALSE(fs::exists("/run/qiao-sim/" + env["SIMC_h1_SIMHOST"]));
  EXPECT_FALSE(fs::exists(env["SIMC_STATE_DIR"]));
  EXPECT_FALSE(fs::exists("/sys/class/net/" + env["SIMC_ROOT_IF"])) << "root leg left";
  auto routes = runCommand({"ip", "-4", "route", "show", "table", "all"});
  EXPECT_EQ(routes.out.find(env["SIMC_SUBNET"] + " "), std::string::npos) << routes.out;
  auto again = simcluster({"down", kCluster});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("not up"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace qiao::testing
