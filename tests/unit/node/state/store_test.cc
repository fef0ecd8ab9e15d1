// The store on a temporary file: conflicts, paging, filters, the busy-task rule, the journal
// check, the audit chain (and what tampering does to it), two writers, and durability across
// a process that dies without closing.
#include "node/state/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

namespace qiao {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-store-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    path_ = (dir_ / "qiao.db").string();
    auto s = Store::open(path_);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  VmRecord vm(const std::string& tenant, const std::string& name,
              const std::string& labels = "{}") {
    VmRecord r;
    r.tenant = tenant;
    r.name = name;
    r.uuid = "uuid-" + tenant + "-" + name;
    r.spec_json = R"({"name":")" + name + R"(","labels":)" + labels + "}";
    r.state = VmState::kCreating;
    return r;
  }
  TaskRecord task(const std::string& id, const std::string& tenant, const std::string& target,
                  TaskState state = TaskState::kQueued) {
    TaskRecord t;
    t.id = id;
    t.kind = TaskKind::kVmCreate;
    t.tenant = tenant;
    t.target = target;
    t.identity = "qiao://c/user/u";
    t.state = state;
    return t;
  }
  void sql(const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // The first column of the query's rows, separated by spaces.
  std::string column(const std::string& query) {
    std::string out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(
                  db, query.c_str(),
                  [](void* result, int, char** values, char**) {
                    auto* text = static_cast<std::string*>(result);
                    *text += (text->empty() ? "" : " ") + std::string(values[0] ? values[0] : "");
                    return 0;
                  },
                  &out, nullptr),
              SQLITE_OK)
        << query;
    sqlite3_close(db);
    return out;
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, FileIsPrivate) {
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::others_read, fs::perms::none);
}

TEST_F(StoreTest, VmAndTaskTogetherAndConflicts) {
  ASSERT_TRUE(store_->vms().create(vm("a", "web"), task("t1", "a", "web")));
  auto again = store_->vms().create(vm("a", "web"), task("t2", "a", "web"));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_FALSE(store_->tasks().get("t2").has_value()) << "the task of a refused vm must not exist";
  EXPECT_TRUE(store_->vms().create(vm("b", "web"), task("t3", "b", "web")));
  auto found = store_->vms().findByName("web", {});
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->size(), 2u);
  EXPECT_EQ(store_->vms().findByName("web", {"b"})->size(), 1u);
  ASSERT_TRUE(store_->vms().setState("a", "web", VmState::kRunning));
  EXPECT_EQ(store_->vms().get("a", "web")->state, VmState::kRunning);
  EXPECT_EQ(store_->vms().setState("a", "nope", VmState::kRunning).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ((*store_->vms().countByState())["running"], 1);
  ASSERT_TRUE(store_->vms().remove("a", "web"));
  ASSERT_TRUE(store_->vms().remove("a", "web"));  // idempotent
  EXPECT_EQ(store_->vms().get("a", "web").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, AVmRecordsItsHostAndOlderRowsMeanThisOne) {
  VmRecord on_a = vm("t", "web");
  on_a.host = "host-a";
  ASSERT_TRUE(store_->vms().create(on_a, task("t1", "t", "web")));
  EXPECT_EQ(store_->vms().get("t", "web")->host, "host-a");
  on_a.host = "host-b";  // an adoption by another host's daemon moves it
  ASSERT_TRUE(store_->vms().upsert(on_a));
  EXPECT_EQ(store_->vms().get("t", "web")->host, "host-b");
  // A row written before schema 11 has no host: this host.
  sql("UPDATE vms SET host = '' WHERE name = 'web'");
  EXPECT_EQ(store_->vms().get("t", "web")->host, "");
}

// A database of every earlier schema version opens and is brought to the current one.
TEST_F(StoreTest, AnOlderSchemaIsMigratedAndKeepsItsRows) {
  ASSERT_TRUE(store_->vms().create(vm("t", "old"), task("t1", "t", "old")));
  store_.reset();
  // Back to schema 10: no host column, no table published, networks and ports as schema 4
  // (and 5) made them, with a network and a port in them, version 10.
  sql("ALTER TABLE vms DROP COLUMN host");
  sql("DROP TABLE published");
  sql("DROP TABLE network_here");
  sql("DROP TABLE ports");
  sql("DROP TABLE networks");
  sql("CREATE TABLE networks(tenant TEXT NOT NULL, name TEXT NOT NULL, uuid TEXT NOT NULL UNIQUE,"
      " local_id INTEGER NOT NULL UNIQUE, type TEXT NOT NULL, segment_id INTEGER NOT NULL,"
      " subnet TEXT NOT NULL, gateway TEXT NOT NULL DEFAULT '', dhcp INTEGER NOT NULL,"
      " dns_json TEXT NOT NULL DEFAULT '[]', mtu INTEGER NOT NULL,"
      " dhcp_ip TEXT NOT NULL DEFAULT '', dhcp_mac TEXT NOT NULL DEFAULT '',"
      " dhcp_ofport INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
      " last_error TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,"
      " updated_at TEXT NOT NULL, PRIMARY KEY (tenant, name), UNIQUE (type, segment_id))");
  sql("CREATE TABLE ports(uuid TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
      " network TEXT NOT NULL REFERENCES networks(uuid), vm TEXT NOT NULL,"
      " vm_name TEXT NOT NULL, nic INTEGER NOT NULL, name TEXT NOT NULL UNIQUE,"
      " mac TEXT NOT NULL, ip TEXT NOT NULL, ofport INTEGER NOT NULL UNIQUE,"
      " created_at TEXT NOT NULL, security_groups TEXT NOT NULL DEFAULT '[\"default\"]',"
      " UNIQUE (network, ip), UNIQUE (network, mac), UNIQUE (vm, nic))");
  sql("INSERT INTO networks(tenant, name, uuid, local_id, type, segment_id, subnet, dhcp, mtu,"
      " dhcp_ofport, state, created_at, updated_at) VALUES ('t', 'n', 'net-1', 3, 'vxlan', 7,"
      " '10.0.0.0/24', 1, 1450, 104, 'ready', 'x', 'x')");
  sql("INSERT INTO ports(uuid, tenant, network, vm, vm_name, nic, name, mac, ip, ofport,"
      " created_at) VALUES ('p-1', 't', 'net-1', 'vm-1', 'old', 0, 'qt-1',"
      " '02:00:00:00:00:01', '10.0.0.5', 105, 'x')");
  sql("UPDATE meta SET value = '10' WHERE key = 'schema_version'");
  auto reopened = Store::open(path_);
  ASSERT_TRUE(reopened) << reopened.error().describe();
  store_ = std::move(*reopened);
  auto old = store_->vms().get("t", "old");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->host, "");
  EXPECT_EQ(old->state, VmState::kCreating);
  // Schema 13: this host's numbers of the network moved to network_here; the port is this
  // host's ("").
  auto network = store_->networks().get("t", "n");
  ASSERT_TRUE(network) << network.error().describe();
  EXPECT_EQ(network->uuid, "net-1");
  EXPECT_EQ(network->local_id, 3);
  EXPECT_EQ(network->dhcp_ofport, 104);
  EXPECT_EQ(network->segment_id, 7);
  EXPECT_EQ(*store_->networks().carried(), std::vector<std::string>{"net-1"});
  auto ports = store_->ports().ofNetwork("net-1");
  ASSERT_TRUE(ports);
  ASSERT_EQ(ports->size(), 1u);
  EXPECT_EQ((*ports)[0].ofport, 105);
  EXPECT_EQ((*ports)[0].ip, "10.0.0.5");
  EXPECT_EQ((*ports)[0].host, "");
  // A newer schema than this build knows is refused, naming both versions.
  store_.reset();
  sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  auto newer = Store::open(path_);
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("schema version 99"), std::string::npos);
  sql("UPDATE meta SET value = '13' WHERE key = 'schema_version'");
  store_ = std::move(*Store::open(path_));
}

TEST_F(StoreTest, PagingHasNoGapsOrDuplicates) {
  for (int i = 0; i < 250; ++i) {
    std::string n = "vm" + std::to_string(i);
    ASSERT_TRUE(store_->vms().create(vm(i % 2 ? "odd" : "even", n), task("t" + n, "x", n)));
  }
  std::set<std::string> seen;
  VmFilter f;
  f.limit = 100;
  int pages = 0;
  do {
    auto page = store_->vms().list(f);
    ASSERT_TRUE(page.has_value());
    for (const auto& v : page->items) EXPECT_TRUE(seen.insert(v.tenant + "/" + v.name).second);
    f.page_token = page->next_page_token;
    ++pages;
  } while (!f.page_token.empty());
  EXPECT_EQ(seen.size(), 250u);
  EXPECT_EQ(pages, 3);
  VmFilter odd;
  odd.tenants = {"odd"};
  odd.limit = 1000;
  EXPECT_EQ(store_->vms().list(odd)->items.size(), 125u);
  VmFilter bad;
  bad.page_token = "zz";
  EXPECT_EQ(store_->vms().list(bad).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, LabelFilterComparesValuesNeverBuildsPaths) {
  ASSERT_TRUE(
      store_->vms().create(vm("a", "x", R"({"role":"db","a.b":"1"})"), task("1", "a", "x")));
  ASSERT_TRUE(store_->vms().create(vm("a", "y", R"({"role":"web"})"), task("2", "a", "y")));
  VmFilter f;
  f.labels = {{"role", "db"}};
  EXPECT_EQ(store_->vms().list(f)->items.size(), 1u);
  f.labels = {{"a.b", "1"}};
  EXPECT_EQ(store_->vms().list(f)->items.size(), 1u);
  f.labels = {{"x\"') OR 1=1 --", "1"}};
  auto hostile = store_->vms().list(f);
  ASSERT_TRUE(hostile.has_value());
  EXPECT_EQ(hostile->items.size(), 0u);
}

TEST_F(StoreTest, OneActiveTaskPerVm) {
  ASSERT_TRUE(store_->tasks().createIfIdle(task("t1", "a", "vm1")));
  auto busy = store_->tasks().createIfIdle(task("t2", "a", "vm1"));
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, ErrorCode::kConflict);
  EXPECT_NE(busy.error().message.find("t1"), std::string::npos);
  ASSERT_TRUE(store_->tasks().createIfIdle(task("t3", "a", "vm2")));
  ASSERT_TRUE(store_->tasks().update("t1", TaskState::kSucceeded, 100, "done"));
  EXPECT_TRUE(store_->tasks().createIfIdle(task("t4", "a", "vm1")));
  auto unfinished = store_->tasks().unfinished();
  ASSERT_TRUE(unfinished.has_value());
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id, "t3");  // oldest first
  std::string next;
  TaskFilter all;
  all.limit = 2;
  auto page = store_->tasks().list(all, &next);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ((*page)[0].id, "t4");  // newest first
  EXPECT_FALSE(next.empty());
}

TEST_F(StoreTest, JournalVerifyFindsAnOpenStep) {
  ASSERT_TRUE(store_->tasks().create(task("t1", "a", "v", TaskState::kSucceeded)));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kDone));
  ASSERT_TRUE(store_->tasks().journal("t1", "start", JournalPhase::kBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "start", JournalPhase::kFailed, "boom"));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kUndoBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kUndone));
  EXPECT_TRUE(store_->tasks().verifyJournal()->ok);
  ASSERT_TRUE(store_->tasks().create(task("t2", "a", "w", TaskState::kFailed)));
  ASSERT_TRUE(store_->tasks().journal("t2", "define", JournalPhase::kBegin));
  auto report = store_->tasks().verifyJournal();
  EXPECT_FALSE(report->ok);
  EXPECT_NE(report->first_problem.find("t2"), std::string::npos) << report->first_problem;
  // A running task may have one step open (it is in progress).
  ASSERT_TRUE(store_->tasks().update("t2", TaskState::kRunning, 10, "defining"));
  EXPECT_TRUE(store_->tasks().verifyJournal()->ok);
}

// The journal's phases are stored by their names; a row with another phase is named.
TEST_F(StoreTest, JournalPhasesAreStoredByTheirNames) {
  ASSERT_TRUE(store_->tasks().create(task("t1", "a", "v", TaskState::kSucceeded)));
  ASSERT_TRUE(store_->tasks().journal("t1", "cancel", JournalPhase::kCancelRequested, "by me"));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kFailed));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kUndoBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "define", JournalPhase::kUndone));
  ASSERT_TRUE(store_->tasks().journal("t1", "start", JournalPhase::kBegin));
  ASSERT_TRUE(store_->tasks().journal("t1", "start", JournalPhase::kDone));
  EXPECT_EQ(column("SELECT phase FROM journal ORDER BY seq"),
            "cancel-requested begin failed undo-begin undone begin done");
  auto entries = store_->tasks().journalOf("t1");
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 7u);
  EXPECT_EQ((*entries)[0].phase, JournalPhase::kCancelRequested);
  EXPECT_EQ((*entries)[3].phase, JournalPhase::kUndoBegin);
  EXPECT_TRUE(store_->tasks().verifyJournal()->ok);
  sql("UPDATE journal SET phase = 'begun' WHERE step = 'start' AND phase = 'begin'");
  EXPECT_EQ(store_->tasks().journalOf("t1")->at(5).phase, JournalPhase::kFailed)
      << "an unknown phase opens no step";
  auto report = store_->tasks().verifyJournal();
  ASSERT_TRUE(report.has_value());
  EXPECT_FALSE(report->ok);
  EXPECT_NE(report->first_problem.find("unknown phase begun"), std::string::npos)
      << report->first_problem;
}

// A VM's state and a task's kind are stored as the API names them; a name this build does not
// know (a newer qiaod's) reads as a state to be reconciled and as a kind that runs nothing.
TEST_F(StoreTest, StatesAndKindsAreStoredByTheirNames) {
  VmRecord web = vm("a", "web");
  web.state = VmState::kPmSuspended;
  TaskRecord create = task("t1", "a", "web");
  create.kind = TaskKind::kVmForceStop;
  ASSERT_TRUE(store_->vms().create(web, create));
  EXPECT_EQ(column("SELECT state FROM vms WHERE name = 'web'"), "pmsuspended");
  EXPECT_EQ(column("SELECT kind FROM tasks WHERE id = 't1'"), "vm.force-stop");
  ASSERT_TRUE(store_->vms().setState("a", "web", VmState::kNoState, "why"));
  EXPECT_EQ(column("SELECT state FROM vms WHERE name = 'web'"), "nostate");
  EXPECT_EQ(store_->tasks().get("t1")->kind, TaskKind::kVmForceStop);

  sql("UPDATE vms SET state = 'migrating' WHERE name = 'web'");
  sql("UPDATE tasks SET kind = 'vm.migrate' WHERE id = 't1'");
  EXPECT_EQ(store_->vms().get("a", "web")->state, VmState::kNoState);
  EXPECT_EQ(store_->tasks().get("t1")->kind, TaskKind::kUnknown);
  // The list's filter compares the stored text.
  VmFilter filter;
  filter.state = "migrating";
  EXPECT_EQ(store_->vms().list(filter)->items.size(), 1u);
}

TEST_F(StoreTest, AuditChainVerifiesAndNamesTheFirstBrokenEntry) {
  for (int i = 0; i < 100; ++i) {
    AuditEntry e;
    e.identity = "qiao://c/user/u";
    e.method = "POST";
    e.path = "/v1/vms/" + std::to_string(i);
    e.status = 202;
    ASSERT_TRUE(store_->audit().append(e));
  }
  auto ok = store_->audit().verify();
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->entries, 100);

  sql("UPDATE audit SET status = 200 WHERE seq = 42");
  auto changed = store_->audit().verify();
  EXPECT_FALSE(changed->ok);
  EXPECT_EQ(changed->first_broken_seq, 42);
  sql("UPDATE audit SET status = 202 WHERE seq = 42");
  EXPECT_TRUE(store_->audit().verify()->ok);

  // Moving a character between two fields changes the hash.
  sql("UPDATE audit SET method = 'POST/', path = 'v1/vms/10' WHERE seq = 11");
  EXPECT_EQ(store_->audit().verify()->first_broken_seq, 11);
  sql("UPDATE audit SET method = 'POST', path = '/v1/vms/10' WHERE seq = 11");

  sql("DELETE FROM audit WHERE seq = 70");
  EXPECT_EQ(store_->audit().verify()->first_broken_seq, 71);
}

TEST_F(StoreTest, TwoWritersKeepOneChain) {
  auto other = Store::open(path_);
  ASSERT_TRUE(other.has_value());
  auto append = [](Store* s, const std::string& who) {
    for (int i = 0; i < 50; ++i) {
      AuditEntry e;
      e.identity = who;
      e.method = "DELETE";
      e.path = "/x";
      ASSERT_TRUE(s->audit().append(e));
    }
  };
  std::thread a(append, store_.get(), "a");
  std::thread b(append, other->get(), "b");
  a.join();
  b.join();
  auto report = store_->audit().verify();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->entries, 100);
}

TEST_F(StoreTest, CommittedRowsSurviveAProcessThatDiesWithoutClosing) {
  pid_t pid = fork();
  if (pid == 0) {
    auto s = Store::open(path_);
    if (!s) _exit(2);
    (void)(*s)->vms().create(vm("dur", "able"), task("td", "dur", "able"));
    _exit(0);  // no destructor, no close
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto reopened = Store::open(path_);
  ASSERT_TRUE(reopened.has_value());
  EXPECT_TRUE((*reopened)->vms().get("dur", "able").has_value());
}

TEST_F(StoreTest, HostileTextIsStoredVerbatim) {
  std::string hostile = "it's \"quoted\"; DROP TABLE vms; -- 名字 \x01";
  Binding b{"qiao://c/user/x", "operator", {"t1", "t2"}, ""};
  ASSERT_TRUE(store_->bindings().put(b));
  auto got = store_->bindings().get("qiao://c/user/x");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->tenants, (std::vector<std::string>{"t1", "t2"}));
  ASSERT_TRUE(store_->tasks().create(task("h", "a", "v")));
  ASSERT_TRUE(store_->tasks().update("h", TaskState::kFailed, 0, hostile, "{}"));
  EXPECT_EQ(store_->tasks().get("h")->message, hostile);
}

}  // namespace
}  // namespace qiao

namespace qiao {
namespace {

TEST(StoreVolumes, TransitionsAreAtomicCompareAndSet) {
  const std::string path = "/tmp/qiao-store-volumes-" + std::to_string(::getpid()) + ".db";
  std::remove(path.c_str());
  auto store = Store::open(path);
  ASSERT_TRUE(store.has_value());
  VolumeRecord v;
  v.tenant = "t";
  v.name = "data";
  v.uuid = "u-1";
  v.backend = "local";
  v.object = "vol-data";
  v.size_bytes = 1 << 30;
  v.state = VolumeState::kAvailable;
  ASSERT_TRUE((*store)->volumes().create(v, nullptr).has_value());
  // One VM takes it; a second one, or a delete, then cannot.
  ASSERT_TRUE((*store)->volumes().transition("t", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm1"));
  auto second = (*store)->volumes().transition("t", "data", {VolumeState::kAvailable}, "",
                                               VolumeState::kInUse, "vm2");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_FALSE((*store)->volumes().transition(
      "t", "data", {VolumeState::kAvailable, VolumeState::kError}, "", VolumeState::kDeleting, ""));
  // Only its VM gives it back.
  EXPECT_FALSE((*store)->volumes().transition("t", "data", {VolumeState::kInUse}, "vm2",
                                              VolumeState::kAvailable, ""));
  ASSERT_TRUE((*store)->volumes().transition("t", "data", {VolumeState::kInUse}, "vm1",
                                             VolumeState::kAvailable, ""));
  auto back = (*store)->volumes().get("t", "data");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->state, VolumeState::kAvailable);
  EXPECT_EQ(back->attached_vm, "");
  EXPECT_TRUE((*store)->volumes().transition(
      "t", "data", {VolumeState::kAvailable, VolumeState::kError}, "", VolumeState::kDeleting, ""));
  EXPECT_FALSE((*store)->volumes().transition("t", "missing", {VolumeState::kAvailable}, "",
                                              VolumeState::kInUse, "vm1"));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace qiao
