// bench_cluster: a simulated cluster (scripts/simcluster, its own Ceph, 3 hosts) measured through
// its API, as an admin:
//   - a VM create sent to a member that forwards it to the VM's host, next to the same create
//     sent to that host directly: the POST's answer (202) and the whole create (the task done);
//   - the cluster-wide GET /v1/vms with N VM records over the 3 hosts, asked of a member that
//     holds none of them: a page of 100, a page of 1000, and every page; next to its floor, one
//     read of the whole table.vms from RADOS (librados, in this process); and how long the
//     member took to have all N in its cache after they were written.
// The N records are written straight into table.vms (as if the hosts had made them: no domain
// is defined for them) and removed at the end; the created VMs are deleted. Bounded: --creates,
// --vms, --calls. The cluster is brought up unless --reuse, and taken down unless --keep.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/crypto.h"
#include "cluster/cluster_pool.h"
#include "cluster/record_table.h"
#include "node/client/client.h"
#include "storage/rados_cluster.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

namespace qiao::bench {
namespace {

using nlohmann::json;
using testing::runCommand;

void report(const char* what, const std::vector<double>& v) {
  std::printf("%-52s n=%-5zu p50 %8.2f ms  p90 %8.2f ms  p99 %8.2f ms\n", what, v.size(),
              percentile(v, 50), percentile(v, 90), percentile(v, 99));
}

int intArg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}
bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == name) return true;
  }
  return false;
}

testing::CommandResult simcluster(const std::vector<std::string>& args) {
  return testing::simclusterCommand(args, 600000);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_cluster: %s\n", what.c_str());
  std::exit(1);
}

class Bench {
 public:
  explicit Bench(std::map<std::string, std::string> env) : env_(std::move(env)) {}

  ApiClient client(const std::string& host) {
    ClientConfig config;
    config.endpoint = "https://" + env_["SIMC_" + host + "_ADDR"] + ":8443";
    config.ca = env_["SIMC_CA"];
    config.cert = env_["SIMC_STATE_DIR"] + "/admin/admin.crt";
    config.key = env_["SIMC_STATE_DIR"] + "/admin/admin.key";
    auto c = ApiClient::create(config);
    if (!c) fail("client for " + host + ": " + c.error().message);
    return std::move(*c);
  }

  // POST /v1/vms of a stopped VM for `host`; the POST's latency and the whole create's.
  std::pair<double, double> create(ApiClient& api, const std::string& name,
                                   const std::string& host) {
    json spec = {{"name", name}, {"tenant", "bench"}, {"memory_mib", 64}, {"host", host}};
    auto t0 = Clock::now();
    auto posted = api.request("POST", "/v1/vms?start=false", spec.dump());
    const double post_ms = ms(Clock::now() - t0);
    if (!posted || posted->status != 202) {
      fail("create " + name + ": " + (posted ? posted->body : posted.error().message));
    }
    const std::string id = json::parse(posted->body)["id"];
    for (;;) {
      auto task = api.request("GET", "/v1/tasks/" + id);
      if (!task || task->status != 200) fail("task " + id + " of " + name);
      const std::string state = json::parse(task->body).value("state", "");
      if (state == "succeeded") break;
      if (state == "failed" || state == "cancelled") fail("create " + name + ": " + task->body);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {post_ms, ms(Clock::now() - t0)};
  }

  void remove(ApiClient& api, const std::string& name) {
    auto r = api.request("DELETE", "/v1/vms/" + name + "?tenant=bench&force=true");
    if (!r || r->status != 202) std::fprintf(stderr, "could not delete %s\n", name.c_str());
  }

  // Every VM of tenant bench that `api` lists, page by page of `limit`.
  size_t countAll(ApiClient& api, int limit) {
    size_t n = 0;
    std::string token;
    for (;;) {
      std::string target = "/v1/vms?tenant=bench&limit=" + std::to_string(limit);
      if (!token.empty()) target += "&page_token=" + token;
      auto r = api.request("GET", target);
      if (!r || r->status != 200) fail("list: " + (r ? r->body : r.error().message));
      json page = json::parse(r->body);
      n += page["items"].size();
      token = page.value("next_page_token", "");
      if (token.empty()) return n;
    }
  }

  std::map<std::string, std::string>& env() { return env_; }

 private:
  std::map<std::string, std::string> env_;
};

}  // namespace
}  // namespace qiao::bench

int main(int argc, char** argv) {
  using namespace qiao;
  using namespace qiao::bench;
  if (flag(argc, argv, "--help")) {
    std::printf(
        "Usage: bench_cluster [--creates K] [--vms N] [--calls C] [--name CLUSTER] [--reuse] "
        "[--keep]\n");
    return 0;
  }
  const int creates = intArg(argc, argv, "--creates", 10);
  const int vms = intArg(argc, argv, "--vms", 3000);
  const int calls = intArg(argc, argv, "--calls", 200);
  std::string name = "bench-cl";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--name") name = argv[i + 1];
  }
  if (!flag(argc, argv, "--reuse")) {
    auto t0 = Clock::now();
    auto up = simcluster({"up", name, "--hosts", "3", "--accel", "tcg"});
    if (up.exit_code != 0) fail("simcluster up: " + up.out + up.err);
    std::printf("simcluster up --hosts 3: %.1f s\n", ms(Clock::now() - t0) / 1000);
  }
  auto env_run = simcluster({"env", name});
  if (env_run.exit_code != 0) fail("simcluster env: " + env_run.err);
  Bench bench(testing::parseKeyValueLines(env_run.out));
  auto& env = bench.env();
  auto h1 = bench.client("h1");
  auto h2 = bench.client("h2");
  auto h3 = bench.client("h3");
  // Every host ready, a leader.
  for (int i = 0;; ++i) {
    auto r = h3.request("GET", "/v1/hosts");
    size_t ready = 0;
    if (r && r->status == 200) {
      const json hosts = json::parse(r->body);
      for (const auto& h : hosts["items"]) ready += h.value("state", "") == "ready";
    }
    if (ready == 3) break;
    if (i > 300) {
      fail("the 3 hosts are not ready: " +
           (r ? std::to_string(r->status) + " " + r->body : r.error().message));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  // Forwarded create next to direct, alternating so that both see the same cluster.
  std::vector<double> direct_post, forwarded_post, direct_all, forwarded_all;
  for (int i = 0; i < creates; ++i) {
    auto [dp, da] = bench.create(h1, "direct-" + std::to_string(i), "h1");
    auto [fp, fa] = bench.create(h2, "fwd-" + std::to_string(i), "h1");
    direct_post.push_back(dp);
    direct_all.push_back(da);
    forwarded_post.push_back(fp);
    forwarded_all.push_back(fa);
  }
  report("create sent to the VM's host: POST answered", direct_post);
  report("create forwarded by another member: POST answered", forwarded_post);
  report("create sent to the VM's host: task done", direct_all);
  report("create forwarded by another member: task done", forwarded_all);
  std::printf("forwarded / direct (task done, p50): %.2fx\n",
              percentile(forwarded_all, 50) / percentile(direct_all, 50));
  for (int i = 0; i < creates; ++i) {
    bench.remove(h1, "direct-" + std::to_string(i));
    bench.remove(h1, "fwd-" + std::to_string(i));
  }

  // N records over the three hosts, written straight into table.vms.
  CephClientOptions ceph;
  ceph.conf = env["SIMC_CEPH_CONF"];
  ceph.user = env["SIMC_h1_CEPH_USER"];
  ceph.keyring = env["SIMC_h1_CEPH_KEYRING"];
  ceph.op_timeout_s = 20;
  LibradosCluster rados(ceph);
  ClusterPool pool;
  RecordTable table(rados, pool.table("vms"));
  auto t_write = Clock::now();
  for (int i = 0; i < vms; ++i) {
    char vm_name[32];
    std::snprintf(vm_name, sizeof vm_name, "l-%05d", i);
    json record = {
        {"tenant", "bench"},
        {"name", vm_name},
        {"uuid", newUuid()},
        {"spec_json", json({{"name", vm_name}, {"vcpus", 1}, {"memory_mib", 64}}).dump()},
        {"state", "shutoff"},
        {"last_error", ""},
        {"created_at", "2026-12-07T00:00:00.000Z"},
        {"updated_at", "2026-12-07T00:00:00.000Z"},
        {"host", "h" + std::to_string(1 + i % 3)}};
    if (auto put = table.insert(std::string("bench/") + vm_name, record.dump()); !put) {
      fail("write record: " + put.error().message);
    }
  }
  std::printf("%d records written into table.vms in %.1f s\n", vms,
              ms(Clock::now() - t_write) / 1000);
  // The member that answers (h3) holds a third of them; its cache must have them all.
  auto t_seen = Clock::now();
  for (;;) {
    if (bench.countAll(h3, 1000) == static_cast<size_t>(vms)) break;
    if (ms(Clock::now() - t_seen) > 120000) fail("h3's cache never had every record");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("h3 lists all %d %.2f s after the last write\n", vms,
              ms(Clock::now() - t_seen) / 1000);
  std::vector<double> page100, page1000, every, floor;
  for (int i = 0; i < calls; ++i) {
    auto t0 = Clock::now();
    auto r = h3.request("GET", "/v1/vms");
    if (!r || r->status != 200) fail("list");
    page100.push_back(ms(Clock::now() - t0));
  }
  for (int i = 0; i < calls / 4; ++i) {
    auto t0 = Clock::now();
    auto r = h3.request("GET", "/v1/vms?limit=1000");
    if (!r || r->status != 200) fail("list");
    page1000.push_back(ms(Clock::now() - t0));
  }
  for (int i = 0; i < calls / 20 + 1; ++i) {
    auto t0 = Clock::now();
    bench.countAll(h3, 1000);
    every.push_back(ms(Clock::now() - t0));
  }
  for (int i = 0; i < calls / 4; ++i) {
    auto t0 = Clock::now();
    if (!table.readAll()) fail("readAll");
    floor.push_back(ms(Clock::now() - t0));
  }
  char what[96];
  std::snprintf(what, sizeof what, "GET /v1/vms, %d VMs on 3 hosts, page of 100", vms);
  report(what, page100);
  report("GET /v1/vms?limit=1000", page1000);
  report("every page (limit=1000)", every);
  report("floor: table.vms read whole (librados)", floor);

  for (int i = 0; i < vms; ++i) {
    char vm_name[32];
    std::snprintf(vm_name, sizeof vm_name, "l-%05d", i);
    (void)table.remove(std::string("bench/") + vm_name);
  }
  if (!flag(argc, argv, "--keep")) simcluster({"down", name});
  return 0;
}
