// VolumeService on the node as qiaod builds it (tests/unit/node/service_fixture.h), over the
// local directory driver wrapped to inject failures: creation with limits, what is refused
// (bad names, a name taken, a volume in use, a shrink), deletion, the state a failed step
// leaves (a create rolled back to nothing; a delete that failed half way, asked again), and an
// interrupted create finished or given up by the next start.
#include "node/volumes/volume_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/doubles/faulty_volume_driver.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

using testing::FaultyVolumeDriver;
using testing::VolumeOp;

constexpr int64_t kGiB = int64_t{1} << 30;

Error injected(ErrorCode code = ErrorCode::kInternal) {
  return Error{code, "test", "injected failure", {}};
}

class VolumeServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    auto local = makeLocalDriver((dir_ / "volumes").string());
    ASSERT_TRUE(local.has_value()) << local.error().describe();
    local_ = std::move(*local);
    startNode();
  }
  NodeParts parts() override {
    NodeParts parts;
    auto driver = std::make_unique<FaultyVolumeDriver>(*local_);
    driver_ = driver.get();
    parts.volume_driver = std::move(driver);
    return parts;
  }
  void nodeBuilt() override {
    service_ = &node_->volumes();
    events_->subscribe([this](const Event& e) {
      if (e.type != "volume") return;
      std::lock_guard lock(mutex_);
      reasons_.push_back(nlohmann::json::parse(e.json).value("reason", ""));
    });
  }

  VolumeSpec spec(const std::string& name, int64_t gib = 1, const std::string& tenant = "acme") {
    VolumeSpec s;
    s.name = name;
    s.tenant = tenant;
    s.size_gib = gib;
    return s;
  }
  VolumeRecord created(const std::string& name, int64_t gib = 1) {
    EXPECT_EQ(toString(finish(service_->create(spec(name, gib), "t")).state), "succeeded");
    auto v = store_->volumes().get("acme", name);
    EXPECT_TRUE(v.has_value());
    return v ? *v : VolumeRecord{};
  }
  // A create that a stopping node recorded but did not run: the volume, still "creating".
  VolumeRecord createNotRun(const std::string& name, int64_t gib) {
    tasks_->stop();
    auto refused = service_->create(spec(name, gib), "t");
    EXPECT_FALSE(refused.has_value());
    if (!refused) {
      EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
    }
    auto pending = store_->volumes().get("acme", name);
    EXPECT_TRUE(pending.has_value());
    if (!pending) return {};
    EXPECT_EQ(toString(pending->state), "creating");
    return *pending;
  }
  bool hasData(const VolumeRecord& v) { return local_->stat(VolumeService::idOf(v)).has_value(); }
  bool sawReason(const std::string& reason) {
    std::lock_guard lock(mutex_);
    return std::find(reasons_.begin(), reasons_.end(), reason) != reasons_.end();
  }

  std::unique_ptr<VolumeDriver> local_;
  FaultyVolumeDriver* driver_ = nullptr;  // the node's, over local_
  VolumeService* service_ = nullptr;
  std::mutex mutex_;
  std::vector<std::string> reasons_;
};

TEST_F(VolumeServiceTest, CreateMakesTheDataSetsTheLimitsAndRecordsItAvailable) {
  auto parsed = parseVolumeSpec(R"({"name":"data1","tenant":"acme","size_gib":2,
                                    "qos":{"read_iops":300,"write_bytes_per_sec":1048576}})",
                                VolumeLimits{});
  ASSERT_TRUE(parsed.has_value()) << parsed.error().describe();
  auto task = finish(service_->create(*parsed, "qiao://c1/user/op"));
  EXPECT_EQ(toString(task.state), "succeeded") << task.error_json;
  EXPECT_EQ(toString(task.kind), "volume.create");
  EXPECT_EQ(task.target, "volume/data1");

  auto volume = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(volume.has_value());
  EXPECT_EQ(toString(volume->state), "available");
  EXPECT_EQ(volume->size_bytes, 2 * kGiB);
  EXPECT_EQ(volume->backend, "local");
  EXPECT_TRUE(volume->attached_vm.empty());
  auto stat = local_->stat(VolumeService::idOf(*volume));
  ASSERT_TRUE(stat.has_value()) << stat.error().describe();
  EXPECT_EQ(stat->size_bytes, 2 * kGiB);
  auto qos = local_->qos(VolumeService::idOf(*volume));
  ASSERT_TRUE(qos.has_value());
  EXPECT_EQ(qos->read_iops, 300);
  EXPECT_EQ(qos->write_bytes_per_sec, 1048576);
  EXPECT_EQ(qos->iops, 0);
  EXPECT_EQ(steps(task.id),
            (std::vector<std::string>{"create:begin", "create:done", "limits:begin", "limits:done",
                                      "record:begin", "record:done"}));
  EXPECT_TRUE(sawReason("created"));
  EXPECT_TRUE(sawReason("available"));
}

TEST_F(VolumeServiceTest, HostileNamesAndBadSizesAreRefusedBeforeAnythingIsRecorded) {
  for (const char* bad :
       {R"({"name":"a\"b","size_gib":1})", R"({"name":"a/b","size_gib":1})",
        R"({"name":"../etc","size_gib":1})", R"({"name":"Data","size_gib":1})",
        R"({"name":"a'b","size_gib":1})", R"({"name":"","size_gib":1})",
        R"({"name":"d1","tenant":"a/b","size_gib":1})", R"({"name":"d1","size_gib":0})",
        R"({"name":"d1","size_gib":16385})", R"({"name":"d1","size_gib":"1"})", R"({"name":"d1"})",
        R"({"name":"d1","size_gib":1,"qos":{"iops":-1}})",
        R"({"name":"d1","size_gib":1,"qos":{"iops":5,"read_iops":5}})",
        R"({"name":"d1","size_gib":1,"extra":true})"}) {
    auto parsed = parseVolumeSpec(bad, VolumeLimits{});
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  auto none = store_->volumes().list({});
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST_F(VolumeServiceTest, ANameTakenInTheTenantConflictsAndLeavesTheFirstAlone) {
  VolumeRecord first = created("data1", 1);
  auto again = service_->create(spec("data1", 3), "t");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  auto still = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->uuid, first.uuid);
  EXPECT_EQ(still->size_bytes, kGiB);
  EXPECT_EQ(local_->stat(VolumeService::idOf(first))->size_bytes, kGiB);
  // Another tenant's volume of the same name is another volume.
  EXPECT_EQ(toString(finish(service_->create(spec("data1", 1, "other"), "t")).state), "succeeded");
}

TEST_F(VolumeServiceTest, ACreateWhoseLimitsFailLeavesNoDataNoRecord) {
  driver_->faults().failNth(VolumeOp::kSetQos, 1, injected());
  auto task = finish(service_->create(spec("data1"), "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_NE(task.error_json.find("injected failure"), std::string::npos) << task.error_json;
  auto gone = store_->volumes().get("acme", "data1");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(local_->stat({"acme", "vol-data1", ""}).has_value()) << "the create was not undone";
  EXPECT_EQ(steps(task.id),
            (std::vector<std::string>{"create:begin", "create:done", "limits:begin",
                                      "limits:failed", "create:undo-begin", "create:undone"}));
  EXPECT_TRUE(sawReason("create failed"));
  // The name is free again.
  EXPECT_EQ(toString(finish(service_->create(spec("data1"), "t")).state), "succeeded");
}

TEST_F(VolumeServiceTest, ACreateWhoseDataCannotBeMadeIsForgotten) {
  driver_->faults().failNth(VolumeOp::kCreate, 1, injected(ErrorCode::kInsufficientStorage));
  auto task = finish(service_->create(spec("data1"), "t"));
  EXPECT_EQ(toString(task.state), "failed");
  EXPECT_NE(task.error_json.find("insufficient_storage"), std::string::npos) << task.error_json;
  EXPECT_FALSE(store_->volumes().get("acme", "data1").has_value());
  EXPECT_EQ(driver_->faults().calls(VolumeOp::kSetQos), 0) << "a step ran after a failed one";
}

TEST_F(VolumeServiceTest, DeleteRemovesDataAndRecord) {
  VolumeRecord v = created("data1");
  auto task = finish(service_->remove(v, "t"));
  EXPECT_EQ(toString(task.state), "succeeded") << task.error_json;
  EXPECT_FALSE(store_->volumes().get("acme", "data1").has_value());
  EXPECT_FALSE(hasData(v));
  EXPECT_TRUE(sawReason("deleted"));
}

TEST_F(VolumeServiceTest, AVolumeInUseOrMissingIsNotDeleted) {
  VolumeRecord v = created("data1");
  auto claimed = service_->claimForVm("acme", "data1", "web1");
  ASSERT_TRUE(claimed.has_value()) << claimed.error().describe();
  EXPECT_EQ(toString(claimed->state), "in-use");
  // A second VM cannot take it either.
  auto other = service_->claimForVm("acme", "data1", "web2");
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kConflict);
  EXPECT_NE(other.error().message.find("web1"), std::string::npos) << other.error().message;

  auto refused = service_->remove(*store_->volumes().get("acme", "data1"), "t");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("web1"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(hasData(v));

  auto missing = service_->claimForVm("acme", "nope", "web1");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  // Given back, it is available and can go.
  ASSERT_TRUE(service_->releaseFromVm("acme", "data1", "web1", false));
  auto back = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(toString(back->state), "available");
  EXPECT_TRUE(back->attached_vm.empty());
  EXPECT_EQ(toString(finish(service_->remove(*back, "t")).state), "succeeded");
}

TEST_F(VolumeServiceTest, ADeleteThatFailsHalfWayLeavesTheVolumeInErrorAndCanBeAskedAgain) {
  VolumeRecord v = created("data1");
  // The data is removed, but the driver answers an error (as after a timeout).
  driver_->faults().failNth(VolumeOp::kRemove, 1, injected(), testing::FaultTiming::kAfter);
  auto failed = finish(service_->remove(v, "t"));
  EXPECT_EQ(toString(failed.state), "failed");
  auto after = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(after.has_value()) << "the record went with the delete unfinished";
  EXPECT_EQ(toString(after->state), "error");
  EXPECT_NE(after->last_error.find("injected failure"), std::string::npos) << after->last_error;

  auto retried = finish(service_->remove(*after, "t"));
  EXPECT_EQ(toString(retried.state), "succeeded") << retried.error_json;
  EXPECT_FALSE(store_->volumes().get("acme", "data1").has_value());
  EXPECT_FALSE(hasData(v));
}

TEST_F(VolumeServiceTest, ADeleteRefusedByTheBackendLeavesTheVolumeAvailable) {
  VolumeRecord v = created("data1");
  driver_->faults().failNth(VolumeOp::kRemove, 1, injected(ErrorCode::kConflict));
  EXPECT_EQ(toString(finish(service_->remove(v, "t")).state), "failed");
  auto after = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(toString(after->state), "available");
  EXPECT_TRUE(hasData(v));
}

TEST_F(VolumeServiceTest, ResizeOnlyGrows) {
  VolumeRecord v = created("data1", 1);
  auto shrink = service_->resize(v, 0, "t");
  ASSERT_FALSE(shrink.has_value());
  EXPECT_EQ(shrink.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(toString(finish(service_->resize(v, 3, "t")).state), "succeeded");
  EXPECT_EQ(store_->volumes().get("acme", "data1")->size_bytes, 3 * kGiB);
  EXPECT_EQ(local_->stat(VolumeService::idOf(v))->size_bytes, 3 * kGiB);

  // A failed resize leaves the recorded size as it was.
  driver_->faults().failNth(VolumeOp::kResize, 1, injected());
  EXPECT_EQ(
      toString(finish(service_->resize(*store_->volumes().get("acme", "data1"), 5, "t")).state),
      "failed");
  EXPECT_EQ(store_->volumes().get("acme", "data1")->size_bytes, 3 * kGiB);
}

TEST_F(VolumeServiceTest, ACreateInterruptedByAStopIsFinishedAtTheNextStart) {
  VolumeRecord pending = createNotRun("data1", 2);
  const std::string id = onlyUnfinishedTask();
  // The crashed run had begun the create step and made the data already.
  ASSERT_TRUE(local_->create(VolumeService::idOf(pending), 2 * kGiB));
  ASSERT_TRUE(store_->tasks().journal(id, "create", JournalPhase::kBegin));

  restartAndResume();
  auto task = store_->tasks().get(id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(toString(task->state), "succeeded") << task->error_json;
  EXPECT_EQ(task->attempts, 1);
  auto volume = store_->volumes().get("acme", "data1");
  ASSERT_TRUE(volume.has_value());
  EXPECT_EQ(toString(volume->state), "available");
  EXPECT_EQ(local_->stat(VolumeService::idOf(*volume))->size_bytes, 2 * kGiB);
  auto verified = store_->tasks().verifyJournal();
  ASSERT_TRUE(verified.has_value());
  EXPECT_TRUE(verified->ok) << verified->first_problem;
}

TEST_F(VolumeServiceTest, ACreateInterruptedTooOftenIsRolledBack) {
  VolumeRecord pending = createNotRun("data1", 1);
  ASSERT_TRUE(local_->create(VolumeService::idOf(pending), kGiB));
  const std::string id = onlyUnfinishedTask();
  interruptedTooOften(id);

  restartAndResume();
  auto task = store_->tasks().get(id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(toString(task->state), "failed");
  EXPECT_NE(task->message.find("gave up"), std::string::npos) << task->message;
  EXPECT_FALSE(store_->volumes().get("acme", "data1").has_value());
  EXPECT_FALSE(hasData(pending)) << "the half-made volume was left behind";
}

}  // namespace
}  // namespace qiao
