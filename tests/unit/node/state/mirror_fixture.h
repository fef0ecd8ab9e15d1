// MirrorFixture: what the mirror tests (vm_mirror_test, network_mirror_test, store_mirror_test)
// have in common. Two members a_ and b_ of one MemoryCeph cluster on a ManualClock, each with a
// SQLite store of its own in a scratch directory of the test, the cluster's tables on one
// ClusterPool. Which repositories a member shares, and its records, are each test's own.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "cluster/cluster_pool.h"
#include "cluster/record_table.h"
#include "node/state/mirror.h"
#include "node/state/replicator.h"
#include "node/state/store.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {

class MirrorFixture : public ::testing::Test {
 protected:
  struct Member {
    std::unique_ptr<RadosCluster> rados;
    std::unique_ptr<Store> store;
    std::unique_ptr<Replicator> replicator;
  };

  // The suite's name too: the three suites have tests of one name.
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("qiao-" + std::string(info->test_suite_name()) + "-" + std::to_string(getpid()) + "-" +
            info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  // A replicator reads and writes its member's store: it stops before the store closes, and
  // both before their files go.
  void TearDown() override {
    for (auto* m : {&a_, &b_}) {
      m->replicator.reset();
      m->store.reset();
    }
    std::filesystem::remove_all(dir_);
  }

  // A client of the cluster from `ip` and a store of its own in `file`, shared with nothing yet.
  Member openStore(const std::string& file, const std::string& ip) {
    Member m;
    m.rados = ceph_.client(ip);
    auto s = Store::open((dir_ / file).string());
    EXPECT_TRUE(s.has_value()) << s.error().message;
    if (s) m.store = std::move(*s);
    return m;
  }
  // The cluster's table `kind` as `m` reaches it.
  std::unique_ptr<RecordTable> table(const Member& m, std::string_view kind) const {
    return std::make_unique<RecordTable>(*m.rados, pool_.table(kind));
  }
  // Gives `m` its Replicator over the replicas of the repositories it shares.
  void replicate(Member& m, std::vector<Replicated*> replicas) {
    m.replicator = std::make_unique<Replicator>(*m.rados, std::move(replicas), clock_);
  }

  // The cluster's entry `key` of the table `kind`, or "" when it has none.
  std::string shared(std::string_view kind, const std::string& key) {
    auto got = table(a_, kind)->get(key);
    EXPECT_TRUE(got.has_value());
    return got && *got ? **got : "";
  }
  static TaskRecord task(const std::string& id, TaskKind kind, const std::string& target) {
    TaskRecord t;
    t.id = id;
    t.kind = kind;
    t.tenant = "t1";
    t.target = target;
    t.identity = "qiao://c/user/u";
    return t;
  }

  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  ClusterPool pool_;
  std::filesystem::path dir_;
  Member a_, b_;
};

}  // namespace qiao
