// The VMs of cluster members (node/state/mirror.h, replicator.h) on MemoryCeph: a change is made
// in RADOS first and then in the member's SQLite cache, another member's cache follows on the
// announce or a sweep, two members never both make one VM, a failed local step takes the
// cluster's record back, and a node that ran alone puts its own VMs into the cluster when it
// becomes a member (and only its own).
#include "tests/unit/node/state/mirror_fixture.h"

namespace qiao {
namespace {

class VmMirrorTest : public MirrorFixture {
 protected:
  // A store of its own; shared with the cluster when `host` is given.
  Member open(const std::string& file, const std::string& ip, const std::string& host) {
    Member m = openStore(file, ip);
    if (!host.empty()) share(m, host);
    return m;
  }
  void share(Member& m, const std::string& host) {
    m.store->vms().share(table(m, "vms"), host);
    m.store->bindings().share(table(m, "bindings"));
    replicate(m, {&m.store->vms().replica(), &m.store->bindings().replica()});
  }
  static Binding binding(const std::string& who, const std::string& role) {
    Binding b;
    b.identity = "qiao://c/user/" + who;
    b.role = role;
    b.tenants = {"t1"};
    return b;
  }

  static VmRecord vm(const std::string& name, const std::string& host) {
    VmRecord r;
    r.tenant = "t1";
    r.name = name;
    r.uuid = "uuid-" + name;
    r.spec_json = R"({"name":")" + name + R"(","vcpus":1})";
    r.host = host;
    return r;
  }
  using MirrorFixture::task;
  static TaskRecord task(const std::string& id, const std::string& target) {
    return task(id, TaskKind::kVmCreate, target);
  }
  // The cluster's record of t1/name, or "" when it has none.
  using MirrorFixture::shared;
  std::string shared(const std::string& name) { return shared("vms", "t1/" + name); }
};

TEST_F(VmMirrorTest, AChangeGoesToTheClusterFirstAndTheOtherMemberFollows) {
  a_ = open("a.db", "10.0.0.1", "host-a");
  b_ = open("b.db", "10.0.0.2", "host-b");
  ASSERT_TRUE(a_.replicator->syncNow());
  ASSERT_TRUE(b_.replicator->syncNow());

  ASSERT_TRUE(a_.store->vms().create(vm("web", "host-a"), task("t-1", "web")));
  EXPECT_NE(shared("web").find(R"("host":"host-a")"), std::string::npos) << shared("web");
  // The task is the creating member's alone.
  EXPECT_TRUE(a_.store->tasks().get("t-1"));
  EXPECT_FALSE(b_.store->tasks().get("t-1"));

  // B heard the announce; its next round reads that one record.
  b_.replicator->step();
  auto seen = b_.store->vms().get("t1", "web");
  ASSERT_TRUE(seen) << seen.error().message;
  EXPECT_EQ(seen->host, "host-a");
  EXPECT_EQ(seen->state, VmState::kCreating);
  const std::string created = seen->created_at;
  EXPECT_FALSE(created.empty());

  clock_.advance(std::chrono::seconds(3));
  ASSERT_TRUE(a_.store->vms().setState("t1", "web", VmState::kRunning));
  b_.replicator->step();
  seen = b_.store->vms().get("t1", "web");
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->state, VmState::kRunning);
  EXPECT_EQ(seen->created_at, created);
  EXPECT_NE(seen->updated_at, created);

  // Either member may change it (the cluster's record is the one truth).
  ASSERT_TRUE(b_.store->vms().setSpec("t1", "web", R"({"name":"web","vcpus":2})"));
  a_.replicator->step();
  EXPECT_EQ(a_.store->vms().get("t1", "web")->spec_json, R"({"name":"web","vcpus":2})");

  ASSERT_TRUE(a_.store->vms().remove("t1", "web"));
  EXPECT_EQ(shared("web"), "");
  b_.replicator->step();
  EXPECT_EQ(b_.store->vms().get("t1", "web").error().code, ErrorCode::kNotFound);
}

TEST_F(VmMirrorTest, OneNameIsOneVmAcrossTheCluster) {
  a_ = open("a.db", "10.0.0.1", "host-a");
  b_ = open("b.db", "10.0.0.2", "host-b");
  ASSERT_TRUE(a_.store->vms().create(vm("web", "host-a"), task("t-1", "web")));
  // B's cache has not heard of it yet: the cluster's table refuses the second one all the same.
  auto second = b_.store->vms().create(vm("web", "host-b"), task("t-2", "web"));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_FALSE(b_.store->tasks().get("t-2"));  // nor is its task left behind
  EXPECT_NE(shared("web").find("host-a"), std::string::npos);
}

TEST_F(VmMirrorTest, AFailedLocalStepTakesTheClustersRecordBack) {
  a_ = open("a.db", "10.0.0.1", "host-a");
  ASSERT_TRUE(a_.store->vms().create(vm("web", "host-a"), task("t-1", "web")));
  // The same task id again: the VM goes into RADOS, its task fails in SQLite.
  auto second = a_.store->vms().create(vm("db", "host-a"), task("t-1", "db"));
  ASSERT_FALSE(second);
  EXPECT_EQ(shared("db"), "");
  EXPECT_EQ(a_.store->vms().get("t1", "db").error().code, ErrorCode::kNotFound);
}

TEST_F(VmMirrorTest, ASweepRepairsACacheThatMissedAnnounces) {
  a_ = open("a.db", "10.0.0.1", "host-a");
  b_ = open("b.db", "10.0.0.2", "host-b");
  ASSERT_TRUE(b_.replicator->syncNow());
  // B cannot hear anything (cut off); A makes and removes VMs meanwhile.
  ceph_.setReachable("10.0.0.2", false);
  ASSERT_TRUE(a_.store->vms().create(vm("web", "host-a"), task("t-1", "web")));
  ASSERT_TRUE(a_.store->vms().create(vm("db", "host-a"), task("t-2", "db")));
  ASSERT_TRUE(a_.store->vms().remove("t1", "db"));
  b_.replicator->step();  // fails: its cache stays as it was
  EXPECT_EQ(b_.store->vms().get("t1", "web").error().code, ErrorCode::kNotFound);
  // While cut off, B cannot change what the cluster holds either.
  EXPECT_EQ(b_.store->vms().setState("t1", "web", VmState::kError).error().code,
            ErrorCode::kUnavailable);
  ceph_.setReachable("10.0.0.2", true);
  b_.replicator->step();
  ASSERT_TRUE(b_.store->vms().get("t1", "web"));
  EXPECT_EQ(b_.store->vms().get("t1", "db").error().code, ErrorCode::kNotFound);
}

TEST_F(VmMirrorTest, ANodeThatRanAlonePutsItsOwnVmsIntoTheCluster) {
  a_ = open("a.db", "10.0.0.1", "");  // standalone first
  ASSERT_TRUE(a_.store->vms().create(vm("mine", ""), task("t-1", "mine")));
  ASSERT_TRUE(a_.store->vms().create(vm("named", "host-a"), task("t-2", "named")));
  // A stale row of a VM the cluster gave to another host: not this host's to publish.
  ASSERT_TRUE(a_.store->vms().upsert(vm("elsewhere", "host-z")));
  EXPECT_EQ(shared("mine"), "");
  share(a_, "host-a");
  ASSERT_TRUE(a_.replicator->syncNow());
  EXPECT_NE(shared("mine"), "");
  EXPECT_NE(shared("named"), "");
  EXPECT_EQ(shared("elsewhere"), "");
  EXPECT_TRUE(a_.store->vms().get("t1", "mine"));
  EXPECT_EQ(a_.store->vms().get("t1", "elsewhere").error().code, ErrorCode::kNotFound);
}

TEST_F(VmMirrorTest, AStandaloneNodeKeepsItsVmsInSqliteAlone) {
  a_ = open("a.db", "10.0.0.1", "");
  ASSERT_TRUE(a_.store->vms().create(vm("web", ""), task("t-1", "web")));
  ASSERT_TRUE(a_.store->vms().setState("t1", "web", VmState::kRunning));
  EXPECT_EQ(a_.store->vms().get("t1", "web")->state, VmState::kRunning);
  EXPECT_EQ(a_.store->vms().setState("t1", "nope", VmState::kRunning).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(shared("web"), "");
}

// Bindings are the cluster's too. A store shared for the first time brings the ones it had
// alone; a later start of the same store does not put back one the cluster removed meanwhile.
TEST_F(VmMirrorTest, RolesAreTheClustersAndAStaleCopyNeverComesBack) {
  a_ = open("a.db", "10.0.0.1", "");
  b_ = open("b.db", "10.0.0.2", "");
  ASSERT_TRUE(a_.store->bindings().put(binding("admin", "admin")));
  ASSERT_TRUE(b_.store->bindings().put(binding("b-own", "operator")));
  share(a_, "host-a");
  ASSERT_TRUE(a_.replicator->syncNow());
  share(b_, "host-b");
  ASSERT_TRUE(b_.replicator->syncNow());
  EXPECT_EQ(b_.store->bindings().get("qiao://c/user/admin")->role, "admin");
  a_.replicator->step();
  EXPECT_EQ(a_.store->bindings().get("qiao://c/user/b-own")->role, "operator");

  // Granted through one member, it holds on the other; removed, it is gone there too.
  ASSERT_TRUE(b_.store->bindings().put(binding("op", "operator")));
  a_.replicator->step();
  auto seen = a_.store->bindings().get("qiao://c/user/op");
  ASSERT_TRUE(seen) << seen.error().message;
  EXPECT_EQ(seen->tenants, std::vector<std::string>{"t1"});
  ASSERT_TRUE(a_.store->bindings().remove("qiao://c/user/op"));
  EXPECT_EQ(a_.store->bindings().remove("qiao://c/user/op").error().code, ErrorCode::kNotFound);
  b_.replicator->step();
  EXPECT_EQ(b_.store->bindings().get("qiao://c/user/op").error().code, ErrorCode::kNotFound);

  // B is down (it hears nothing) while A removes b-own; B starts again from its own file.
  b_.replicator.reset();
  ASSERT_TRUE(a_.store->bindings().remove("qiao://c/user/b-own"));
  EXPECT_TRUE(b_.store->bindings().get("qiao://c/user/b-own"));  // B's stale copy
  b_.store.reset();
  b_ = open("b.db", "10.0.0.2", "host-b");
  ASSERT_TRUE(b_.replicator->syncNow());
  EXPECT_EQ(b_.store->bindings().get("qiao://c/user/b-own").error().code, ErrorCode::kNotFound);
  a_.replicator->step();
  EXPECT_EQ(a_.store->bindings().get("qiao://c/user/b-own").error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace qiao
