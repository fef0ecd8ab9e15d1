// bench_cluster_state: the cluster's state on the stack's Ceph (scripts/stack up --no-qiaod).
// Prints, for a guarded record update (RecordTable::update: read, compare-and-write, notify),
// its latency next to two floors: one unguarded omap write in process (librados), and the same
// write by the `rados` tool (a process each, as a script would); two writers updating one entry at
// once (their throughput and retries); a member's writes of VM records through its store (the
// Mirror: RADOS, then its SQLite cache) by 1 and 8 threads; reading a table of N records (the
// cluster-wide list's source); and leader failover with a short lease (a member stops renewing;
// another takes over). Bounded: --n updates, --records records,
// --failovers rounds.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cluster/leader.h"
#include "cluster/record_table.h"
#include "node/state/store.h"
#include "node/state/vm_repository.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"
#include "tests/integration/storage/stack_ceph.h"

namespace qiao::bench {
namespace {

void report(const char* what, const std::vector<double>& v) {
  std::printf("%-44s n=%-5zu p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms\n", what, v.size(),
              percentile(v, 50), percentile(v, 90), percentile(v, 99));
}

int intArg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace
}  // namespace qiao::bench

int main(int argc, char** argv) {
  using namespace qiao;
  using namespace qiao::bench;
  if (argc > 1 && std::string(argv[1]) == "--help") {
    std::printf("Usage: bench_cluster_state [--n UPDATES] [--records N] [--failovers K]\n");
    return 0;
  }
  const int n = intArg(argc, argv, "--n", 200);
  const int records = intArg(argc, argv, "--records", 3000);
  const int failovers = intArg(argc, argv, "--failovers", 3);
  auto a = testing::stackCephClient();
  auto b = testing::stackCephClient();
  if (auto ok = a->ping(); !ok) {
    std::fprintf(stderr, "Ceph: %s (scripts/stack up --no-qiaod)\n", ok.error().message.c_str());
    return 1;
  }
  ClusterPool pool;
  pool.ns = "bench-" + std::to_string(::getpid());
  RecordTable ta(*a, pool.table("vms"));
  RecordTable tb(*b, pool.table("vms"));
  auto bump = [](const std::optional<std::string>& v) -> Result<std::optional<std::string>> {
    return std::optional<std::string>{std::to_string(v ? std::stoll(*v) + 1 : 1)};
  };

  std::vector<double> guarded;
  for (int i = 0; i < n; ++i) {
    auto t0 = bench::Clock::now();
    if (!ta.update("counter", bump)) return 1;
    guarded.push_back(ms(bench::Clock::now() - t0));
  }
  report("guarded update (read, cmp+write, notify)", guarded);

  std::vector<double> bare;
  for (int i = 0; i < n; ++i) {
    OmapWrite w;
    w.set["bare"] = std::to_string(i + 1);
    auto t0 = bench::Clock::now();
    if (!a->omapWrite(ta.object(), w)) return 1;
    bare.push_back(ms(bench::Clock::now() - t0));
  }
  report("floor: one unguarded omap write (librados)", bare);

  std::vector<double> floor;
  for (int i = 0; i < std::min(n, 50); ++i) {
    auto t0 = bench::Clock::now();
    auto r = testing::runCommand({"rados", "--conf", testing::stackCephDir() + "/ceph.conf", "--id",
                                  "qiao", "--keyring",
                                  testing::stackCephDir() + "/client.qiao.keyring", "-p", pool.pool,
                                  "-N", pool.ns, "setomapval", "floor", "k", std::to_string(i)});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "rados: %s\n", r.err.c_str());
      return 1;
    }
    floor.push_back(ms(bench::Clock::now() - t0));
  }
  report("floor: rados setomapval (a process each)", floor);

  // Two writers on one entry at once: nothing lost, and what the retries cost.
  (void)ta.remove("race");
  auto t0 = bench::Clock::now();
  std::thread x([&] {
    for (int i = 0; i < n / 2; ++i) (void)ta.update("race", bump);
  });
  std::thread y([&] {
    for (int i = 0; i < n / 2; ++i) (void)tb.update("race", bump);
  });
  x.join();
  y.join();
  const double race_s = ms(bench::Clock::now() - t0) / 1000.0;
  auto final_value = ta.get("race");
  std::printf("two writers, one entry: %d updates in %.2f s (%.0f/s), final %s (want %d)\n",
              2 * (n / 2), race_s, 2 * (n / 2) / race_s,
              final_value && *final_value ? (*final_value)->c_str() : "?", 2 * (n / 2));

  // A member's writes of VM records (VmRepository over its Mirror: the guarded write in RADOS,
  // then the row in its SQLite cache), by 1 and by 8 threads, each on its own VMs.
  {
    const std::string file = "/tmp/qiao-bench-mirror-" + std::to_string(::getpid()) + ".db";
    auto store = Store::open(file);
    if (!store) return 1;
    (*store)->vms().share(std::make_unique<RecordTable>(*a, pool.table("vms")), "bench");
    for (int threads : {1, 8}) {
      const int per = std::max(1, n / threads);
      std::vector<std::thread> writers;
      std::atomic<int> failed{0};
      auto w0 = bench::Clock::now();
      for (int t = 0; t < threads; ++t) {
        writers.emplace_back([&, t] {
          for (int i = 0; i < per; ++i) {
            VmRecord vm;
            vm.tenant = "bench";
            vm.name =
                "w" + std::to_string(threads) + "-" + std::to_string(t) + "-" + std::to_string(i);
            vm.uuid = vm.name;
            vm.spec_json = "{}";
            vm.host = "bench";
            if (!(*store)->vms().upsert(vm)) ++failed;
          }
        });
      }
      for (auto& w : writers) w.join();
      const double s_taken = ms(bench::Clock::now() - w0) / 1000.0;
      std::printf("member writes of VM records, %d writer%s: %d in %.2f s (%.0f/s)%s\n", threads,
                  threads == 1 ? "" : "s", per * threads, s_taken, per * threads / s_taken,
                  failed ? " SOME FAILED" : "");
    }
    store->reset();
    std::remove(file.c_str());
    std::remove((file + "-wal").c_str());
    std::remove((file + "-shm").c_str());
  }

  // A table of `records` VM-sized records, read whole as a cluster-wide list would.
  RecordTable big(*a, pool.table("volumes"));
  const std::string value(400, 'x');
  std::map<std::string, std::string> batch;
  for (int i = 0; i < records; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "tenant%02d/vm%05d", i % 20, i);
    batch[key] = value;
    if (batch.size() == 500 || i == records - 1) {
      OmapWrite w;
      w.set = std::move(batch);
      batch.clear();
      if (!a->omapWrite(big.object(), w)) return 1;
    }
  }
  std::vector<double> reads;
  for (int i = 0; i < 20; ++i) {
    auto r0 = bench::Clock::now();
    auto all = big.readAll();
    if (!all || all->entries.size() != static_cast<size_t>(records)) return 1;
    reads.push_back(ms(bench::Clock::now() - r0));
  }
  char label[64];
  std::snprintf(label, sizeof label, "read a table of %d records", records);
  report(label, reads);

  // Leader failover with a 3 s lease: the leader stops renewing; the other tries every 1 s.
  LeaseTiming timing = LeaseTiming::forDuration(std::chrono::seconds(3));
  std::vector<double> takeovers;
  for (int round = 0; round < failovers; ++round) {
    LeaderElection la(*a, pool, "a", "a" + std::to_string(round), timing, systemClock());
    LeaderElection lb(*b, pool, "b", "b" + std::to_string(round), timing, systemClock());
    for (int i = 0; i < 50 && !la.epoch(); ++i) {
      la.step();
      if (!la.epoch()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto lost = bench::Clock::now();
    while (!lb.epoch()) {
      std::this_thread::sleep_until(lb.nextStep());
      lb.step();
    }
    takeovers.push_back(ms(bench::Clock::now() - lost));
    lb.resign();
  }
  report("leader failover, lease 3 s (ms)", takeovers);

  auto names = a->listObjects(pool.pool, pool.ns);
  if (names) {
    for (const auto& name : *names) (void)a->removeObject(pool.object(name));
  }
  return 0;
}
