// Volumes, images and quotas of cluster members (node/state/mirror.h, replicator.h) on
// MemoryCeph, as the VMs and bindings are in vm_mirror_test: a change made through one member is
// the other's after its next round, one name is one volume or image across the cluster, two
// members racing for one volume never both take it, a failed local step takes the cluster's
// record back, a public image ("" tenant) keeps its key, and a node that ran alone brings its
// own records when it first becomes a member.
#include <barrier>
#include <thread>

#include "tests/unit/node/state/mirror_fixture.h"

namespace qiao {
namespace {

class StoreMirrorTest : public MirrorFixture {
 protected:
  // A store of its own; shared with the cluster unless `standalone`.
  Member open(const std::string& file, const std::string& ip, bool standalone = false) {
    Member m = openStore(file, ip);
    if (!standalone) share(m);
    return m;
  }
  // As node_services.cc shares a member's store.
  void share(Member& m) {
    Store& s = *m.store;
    s.volumes().share(table(m, "volumes"));
    s.images().share(table(m, "images"));
    s.quotas().share(table(m, "quotas"));
    replicate(m, {&s.volumes().replica(), &s.images().replica(), &s.quotas().replica()});
  }

  static VolumeRecord volume(const std::string& name) {
    VolumeRecord v;
    v.tenant = "t1";
    v.name = name;
    v.uuid = "uuid-vol-" + name;
    v.backend = "rbd";
    v.object = "vol-" + name;
    v.size_bytes = int64_t{1} << 30;
    v.state = VolumeState::kAvailable;
    return v;
  }
  static ImageRecord image(const std::string& tenant, const std::string& name) {
    ImageRecord i;
    i.tenant = tenant;
    i.name = name;
    i.uuid = "uuid-img-" + tenant + "-" + name;
    i.owner = "qiao://c/user/u";
    i.source = "upload";
    i.backend = "rbd";
    i.object = "img-" + name;
    return i;
  }
};

TEST_F(StoreMirrorTest, WhatOneMemberChangesTheOtherSeesAfterItsNextRound) {
  a_ = open("a.db", "10.0.0.1");
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(a_.replicator->syncNow());
  ASSERT_TRUE(b_.replicator->syncNow());

  const TaskRecord made = task("t-1", TaskKind::kVolumeCreate, "volume/data");
  ASSERT_TRUE(a_.store->volumes().create(volume("data"), &made));
  EXPECT_NE(shared("volumes", "t1/data").find(R"("uuid":"uuid-vol-data")"), std::string::npos);
  EXPECT_TRUE(a_.store->tasks().get("t-1"));
  EXPECT_FALSE(b_.store->tasks().get("t-1")) << "a task is its member's alone";
  ASSERT_TRUE(a_.store->images().create(image("t1", "os"), nullptr));
  ASSERT_TRUE(a_.store->quotas().put("t1", R"({"vms":3})"));

  b_.replicator->step();
  auto seen = b_.store->volumes().get("t1", "data");
  ASSERT_TRUE(seen) << seen.error().message;
  EXPECT_EQ(seen->object, "vol-data");
  EXPECT_EQ(seen->size_bytes, int64_t{1} << 30);
  EXPECT_FALSE(seen->created_at.empty());
  EXPECT_EQ(b_.store->images().get("t1", "os")->uuid, "uuid-img-t1-os");
  EXPECT_EQ(*b_.store->quotas().get("t1"), R"({"vms":3})");
  EXPECT_EQ(*b_.store->quotas().tenants(), std::vector<std::string>{"t1"});

  // Either member changes them; the other follows.
  VolumeRecord grown = *seen;
  grown.size_bytes = int64_t{2} << 30;
  grown.qos.iops = 500;
  ASSERT_TRUE(b_.store->volumes().update(grown));
  ImageRecord ready = image("t1", "os");
  ready.state = ImageState::kReady;
  ready.format = "qcow2";
  ASSERT_TRUE(b_.store->images().update(ready));
  ASSERT_TRUE(b_.store->quotas().put("t1", R"({"vms":5})"));
  a_.replicator->step();
  EXPECT_EQ(a_.store->volumes().get("t1", "data")->size_bytes, int64_t{2} << 30);
  EXPECT_EQ(a_.store->volumes().get("t1", "data")->qos.iops, 500);
  EXPECT_EQ(a_.store->images().get("t1", "os")->state, ImageState::kReady);
  EXPECT_EQ(a_.store->images().get("t1", "os")->format, "qcow2");
  EXPECT_EQ(*a_.store->quotas().get("t1"), R"({"vms":5})");

  ASSERT_TRUE(a_.store->volumes().remove("t1", "data"));
  ASSERT_TRUE(a_.store->volumes().remove("t1", "data")) << "idempotent";
  ASSERT_TRUE(a_.store->images().remove("t1", "os"));
  EXPECT_EQ(shared("volumes", "t1/data"), "");
  EXPECT_EQ(shared("images", "t1/os"), "");
  b_.replicator->step();
  EXPECT_EQ(b_.store->volumes().get("t1", "data").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(b_.store->images().get("t1", "os").error().code, ErrorCode::kNotFound);
  // A member that never heard of it still finds nothing to update.
  EXPECT_EQ(b_.store->volumes().update(grown).error().code, ErrorCode::kNotFound);
}

TEST_F(StoreMirrorTest, ANameTakenOnOneMemberIsAConflictOnTheOther) {
  a_ = open("a.db", "10.0.0.1");
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(a_.store->volumes().create(volume("data"), nullptr));
  ASSERT_TRUE(a_.store->images().create(image("t1", "os"), nullptr));
  // B's cache has not heard of them: the cluster's table refuses the second ones all the same.
  VolumeRecord again = volume("data");
  again.uuid = "uuid-other";
  const TaskRecord second = task("t-2", TaskKind::kVolumeCreate, "volume/data");
  auto refused = b_.store->volumes().create(again, &second);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("t1/data already exists"), std::string::npos);
  EXPECT_FALSE(b_.store->tasks().get("t-2")) << "nor is its task left behind";
  EXPECT_EQ(b_.store->volumes().get("t1", "data").error().code, ErrorCode::kNotFound);
  auto image_refused = b_.store->images().create(image("t1", "os"), nullptr);
  ASSERT_FALSE(image_refused);
  EXPECT_EQ(image_refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(shared("volumes", "t1/data").find("uuid-vol-data"), std::string::npos);
}

TEST_F(StoreMirrorTest, AFailedLocalStepTakesTheClustersRecordBack) {
  a_ = open("a.db", "10.0.0.1");
  const TaskRecord first = task("t-1", TaskKind::kVolumeCreate, "volume/data");
  ASSERT_TRUE(a_.store->volumes().create(volume("data"), &first));
  // The same task id again: the record goes into RADOS, its task fails in SQLite.
  const TaskRecord dup_volume = task("t-1", TaskKind::kVolumeCreate, "volume/logs");
  ASSERT_FALSE(a_.store->volumes().create(volume("logs"), &dup_volume));
  EXPECT_EQ(shared("volumes", "t1/logs"), "");
  EXPECT_EQ(a_.store->volumes().get("t1", "logs").error().code, ErrorCode::kNotFound);
  const TaskRecord dup_image = task("t-1", TaskKind::kImageImport, "image/os");
  ASSERT_FALSE(a_.store->images().create(image("", "os"), &dup_image));
  EXPECT_EQ(shared("images", "/os"), "");
  EXPECT_EQ(a_.store->images().get("", "os").error().code, ErrorCode::kNotFound);
  // What was there before stays.
  EXPECT_NE(shared("volumes", "t1/data"), "");
}

// Claims of one volume by two members: one wins, whatever the loser's cache says.
TEST_F(StoreMirrorTest, TwoMembersRacingForOneVolumeNeverBothTakeIt) {
  a_ = open("a.db", "10.0.0.1");
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(a_.store->volumes().create(volume("data"), nullptr));
  ASSERT_TRUE(b_.replicator->syncNow());
  ASSERT_EQ(b_.store->volumes().get("t1", "data")->state, VolumeState::kAvailable);

  // B's cache still says available (it has not had its round): the cluster's record decides.
  ASSERT_TRUE(a_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm-a"));
  EXPECT_EQ(b_.store->volumes().get("t1", "data")->state, VolumeState::kAvailable);
  auto lost = b_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm-b");
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, ErrorCode::kConflict);
  EXPECT_NE(lost.error().message.find("changed meanwhile"), std::string::npos);
  // Nor may it delete the volume, or give it back for a VM that does not hold it.
  EXPECT_FALSE(b_.store->volumes().transition("t1", "data",
                                              {VolumeState::kAvailable, VolumeState::kError}, "",
                                              VolumeState::kDeleting, ""));
  EXPECT_FALSE(b_.store->volumes().transition("t1", "data", {VolumeState::kInUse}, "vm-b",
                                              VolumeState::kAvailable, ""));
  EXPECT_NE(shared("volumes", "t1/data").find(R"("attached_vm":"vm-a")"), std::string::npos);

  // A change of one thing made on a stale cache keeps what another member changed meanwhile.
  auto grown = b_.store->volumes().modify("t1", "data",
                                          [](VolumeRecord& v) { v.size_bytes = int64_t{4} << 30; });
  ASSERT_TRUE(grown) << grown.error().message;
  EXPECT_EQ(grown->attached_vm, "vm-a");
  EXPECT_EQ(grown->state, VolumeState::kInUse);
  EXPECT_EQ(b_.store->volumes().get("t1", "data")->attached_vm, "vm-a");
  ASSERT_TRUE(a_.store->volumes().transition("t1", "data", {VolumeState::kInUse}, "vm-a",
                                             VolumeState::kAvailable, ""));
  // Being deleted through one member, it cannot be taken through the other.
  ASSERT_TRUE(b_.store->volumes().transition("t1", "data",
                                             {VolumeState::kAvailable, VolumeState::kError}, "",
                                             VolumeState::kDeleting, ""));
  EXPECT_EQ(
      a_.store->volumes()
          .transition("t1", "data", {VolumeState::kAvailable}, "", VolumeState::kInUse, "vm-a")
          .error()
          .code,
      ErrorCode::kConflict);
  ASSERT_TRUE(b_.store->volumes().transition("t1", "data", {VolumeState::kDeleting}, "",
                                             VolumeState::kAvailable, ""));

  // Both at once, many times: exactly one claim wins each round.
  constexpr int kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    std::barrier start(2);
    Status won_a, won_b;
    std::thread ta([&] {
      start.arrive_and_wait();
      won_a = a_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm-a");
    });
    std::thread tb([&] {
      start.arrive_and_wait();
      won_b = b_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm-b");
    });
    ta.join();
    tb.join();
    ASSERT_NE(won_a.has_value(), won_b.has_value()) << "round " << round;
    const Status& lost_one = won_a ? won_b : won_a;
    EXPECT_EQ(lost_one.error().code, ErrorCode::kConflict) << lost_one.error().message;
    const std::string winner = won_a ? "vm-a" : "vm-b";
    EXPECT_NE(shared("volumes", "t1/data").find(R"("attached_vm":")" + winner + "\""),
              std::string::npos)
        << "round " << round;
    Store& holder = won_a ? *a_.store : *b_.store;
    ASSERT_TRUE(holder.volumes().transition("t1", "data", {VolumeState::kInUse}, winner,
                                            VolumeState::kAvailable, ""));
  }
}

TEST_F(StoreMirrorTest, APublicImageKeepsItsEmptyTenantThroughTheKey) {
  a_ = open("a.db", "10.0.0.1");
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(b_.replicator->syncNow());
  ASSERT_TRUE(a_.store->images().create(image("", "os"), nullptr));
  ASSERT_TRUE(a_.store->images().create(image("t1", "os"), nullptr));
  EXPECT_NE(shared("images", "/os").find(R"("tenant":"")"), std::string::npos);
  EXPECT_NE(shared("images", "t1/os").find(R"("tenant":"t1")"), std::string::npos);

  // Announced one key at a time, and read whole by a member that starts.
  b_.replicator->step();
  auto seen = b_.store->images().get("", "os");
  ASSERT_TRUE(seen) << seen.error().message;
  EXPECT_EQ(seen->uuid, "uuid-img--os");
  EXPECT_EQ(b_.store->images().get("t1", "os")->uuid, "uuid-img-t1-os");
  Member c = open("c.db", "10.0.0.3");
  ASSERT_TRUE(c.replicator->syncNow());
  EXPECT_EQ(c.store->images().list({""})->size(), 1u);
  EXPECT_EQ(c.store->images().list({})->size(), 2u);

  // A public image is changed and removed by its key alone, the tenant's one stays.
  ImageRecord ready = image("", "os");
  ready.state = ImageState::kReady;
  ASSERT_TRUE(b_.store->images().update(ready));
  a_.replicator->step();
  EXPECT_EQ(a_.store->images().get("", "os")->state, ImageState::kReady);
  EXPECT_EQ(a_.store->images().get("t1", "os")->state, ImageState::kPending);
  ASSERT_TRUE(c.store->images().remove("", "os"));
  EXPECT_EQ(shared("images", "/os"), "");
  b_.replicator->step();
  EXPECT_EQ(b_.store->images().get("", "os").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b_.store->images().get("t1", "os"));
  c.replicator.reset();
}

TEST_F(StoreMirrorTest, KeysThatNameNoRecordOfTheKindAreLeftOutOfTheCache) {
  a_ = open("a.db", "10.0.0.1");
  RecordTable images(*a_.rados, pool_.table("images"));
  RecordTable volumes(*a_.rados, pool_.table("volumes"));
  RecordTable quotas(*a_.rados, pool_.table("quotas"));
  const std::string text =
      R"({"tenant":"t1","name":"x","uuid":"u","owner":"","state":"ready",)"
      R"("source":"","backend":"","object":"","created_at":"","updated_at":""})";
  for (const char* key : {"noslash", "t1/", "/"}) {
    ASSERT_TRUE(images.insert(key, text));
  }
  ASSERT_TRUE(volumes.insert("/data", text)) << "a volume always has a tenant";
  ASSERT_TRUE(quotas.insert("", R"({"tenant":"","limits_json":"{}"})"));
  ASSERT_TRUE(a_.replicator->syncNow());
  EXPECT_TRUE(a_.store->images().list({})->empty());
  EXPECT_TRUE(a_.store->volumes().list({})->empty());
  EXPECT_TRUE(a_.store->quotas().tenants()->empty());
}

// Two admins change different limits of one tenant through two members at once: both hold.
TEST_F(StoreMirrorTest, AQuotaChangeIsMadeToTheClustersLimits) {
  a_ = open("a.db", "10.0.0.1");
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(a_.store->quotas().put("t1", R"({"vms":3})"));
  // B has not heard of A's limit; its change is made to the cluster's record, not to its cache.
  ASSERT_TRUE(b_.store->quotas().update("t1", [](const std::string& limits) {
    EXPECT_EQ(limits, R"({"vms":3})");
    return limits.substr(0, limits.size() - 1) + R"(,"volume_gib":100})";
  }));
  EXPECT_EQ(*b_.store->quotas().get("t1"), R"({"vms":3,"volume_gib":100})");
  a_.replicator->step();
  EXPECT_EQ(*a_.store->quotas().get("t1"), R"({"vms":3,"volume_gib":100})");
  // None set: the change starts from "".
  ASSERT_TRUE(a_.store->quotas().update("t2", [](const std::string& limits) {
    EXPECT_EQ(limits, "");
    return std::string(R"({"images":1})");
  }));
  EXPECT_NE(shared("quotas", "t2").find(R"(\"images\":1)"), std::string::npos)
      << shared("quotas", "t2");
}

// A node that ran alone brings its volumes, images and quotas into the cluster the first time it
// is a member; what the cluster has already (another member's record of that name) stays.
TEST_F(StoreMirrorTest, ANodeThatRanAloneBringsItsRecordsIntoTheCluster) {
  a_ = open("a.db", "10.0.0.1");
  ASSERT_TRUE(a_.store->volumes().create(volume("shared-name"), nullptr));
  b_ = open("b.db", "10.0.0.2", /*standalone=*/true);
  ASSERT_TRUE(b_.store->volumes().create(volume("b-own"), nullptr));
  VolumeRecord clash = volume("shared-name");
  clash.uuid = "uuid-b-copy";
  ASSERT_TRUE(b_.store->volumes().create(clash, nullptr));
  ASSERT_TRUE(b_.store->images().create(image("", "b-public"), nullptr));
  ASSERT_TRUE(b_.store->quotas().put("t1", R"({"vms":1})"));
  EXPECT_EQ(shared("volumes", "t1/b-own"), "") << "standalone: SQLite alone";

  share(b_);
  ASSERT_TRUE(b_.replicator->syncNow());
  EXPECT_NE(shared("volumes", "t1/b-own"), "");
  EXPECT_NE(shared("images", "/b-public"), "");
  EXPECT_NE(shared("quotas", "t1"), "");
  EXPECT_NE(shared("volumes", "t1/shared-name").find("uuid-vol-shared-name"), std::string::npos);
  EXPECT_EQ(b_.store->volumes().get("t1", "shared-name")->uuid, "uuid-vol-shared-name")
      << "the cluster's record is the one the cache keeps";
  a_.replicator->step();
  EXPECT_TRUE(a_.store->volumes().get("t1", "b-own"));
  EXPECT_TRUE(a_.store->images().get("", "b-public"));
  EXPECT_EQ(*a_.store->quotas().get("t1"), R"({"vms":1})");

  // Only that once: B's next start does not put back what the cluster removed meanwhile.
  b_.replicator.reset();
  ASSERT_TRUE(a_.store->volumes().remove("t1", "b-own"));
  b_.store.reset();
  b_ = open("b.db", "10.0.0.2");
  ASSERT_TRUE(b_.replicator->syncNow());
  EXPECT_EQ(b_.store->volumes().get("t1", "b-own").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(shared("volumes", "t1/b-own"), "");
}

TEST_F(StoreMirrorTest, AStandaloneNodeKeepsThemInSqliteAlone) {
  a_ = open("a.db", "10.0.0.1", /*standalone=*/true);
  const TaskRecord made = task("t-1", TaskKind::kVolumeCreate, "volume/data");
  ASSERT_TRUE(a_.store->volumes().create(volume("data"), &made));
  ASSERT_TRUE(a_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                             VolumeState::kInUse, "vm-a"));
  EXPECT_FALSE(a_.store->volumes().transition("t1", "data", {VolumeState::kAvailable}, "",
                                              VolumeState::kInUse, "vm-b"));
  EXPECT_EQ(a_.store->volumes().modify("t1", "nope", [](VolumeRecord&) {}).error().code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(a_.store->images().create(image("", "os"), nullptr));
  ASSERT_TRUE(a_.store->quotas().put("t1", "{}"));
  EXPECT_EQ(a_.store->volumes().get("t1", "data")->attached_vm, "vm-a");
  EXPECT_EQ(shared("volumes", "t1/data"), "");
  EXPECT_EQ(shared("images", "/os"), "");
  EXPECT_EQ(shared("quotas", "t1"), "");
}

}  // namespace
}  // namespace qiao
