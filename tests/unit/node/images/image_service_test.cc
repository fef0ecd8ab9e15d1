// ImageService on the node as qiaod builds it (tests/unit/node/service_fixture.h), over the
// local directory driver wrapped to inject failures, with qemu-img writing the images: an import
// from a host path and from an upload made ready with its golden snapshot; what is refused (bad
// specs, a name taken, a second upload, an image that is not what it claims, the delete of an
// image in use); that a failed or refused import leaves nothing (no record, no backend object,
// no file); deletion; an interrupted import finished or given up at the next start; the sweep
// of files no import owns.
#include "node/images/image_service.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "base/crypto.h"
#include "tests/doubles/faulty_volume_driver.h"
#include "tests/unit/node/service_fixture.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using testing::FaultyVolumeDriver;
using testing::VolumeOp;

class ImageServiceTest : public testing::ServiceFixture {
 protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    auto local = makeLocalDriver((dir_ / "volumes").string());
    ASSERT_TRUE(local.has_value()) << local.error().describe();
    local_ = std::move(*local);
    // A raw disk of 64 sectors with a pattern to find again in the backend.
    content_.resize(64 * 512);
    for (size_t i = 0; i < content_.size(); ++i) content_[i] = static_cast<char>('a' + i % 26);
    source_ = (dir_ / "disk.raw").string();
    std::ofstream(source_, std::ios::binary) << content_;
    startNode();
  }
  NodeParts parts() override {
    NodeParts parts;
    auto driver = std::make_unique<FaultyVolumeDriver>(*local_);
    driver_ = driver.get();
    parts.volume_driver = std::move(driver);
    return parts;
  }
  void nodeBuilt() override { service_ = &node_->images(); }

  ImageSpec spec(const std::string& name, const std::string& path = {}) {
    ImageSpec s;
    s.name = name;
    s.tenant = "acme";
    s.source_path = path;
    return s;
  }
  // Imports from the host path; the task as it ended.
  TaskRecord importFromPath(const std::string& name, const std::string& path) {
    TaskRecord task;
    auto image = service_->create(spec(name, path), "qiao://c1/user/admin", "t", &task);
    EXPECT_TRUE(image.has_value()) << image.error().describe();
    return finish(task);
  }
  // The files of imports under way in the work directory.
  size_t workFiles() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(service_->workDir())) ++n;
    return n;
  }
  bool inBackend(const std::string& object) {
    return local_->stat({"acme", object, ""}).has_value();
  }

  std::string content_, source_;
  std::unique_ptr<VolumeDriver> local_;
  FaultyVolumeDriver* driver_ = nullptr;  // the node's, over local_
  ImageService* service_ = nullptr;
};

TEST_F(ImageServiceTest, AnImportFromAHostPathIsReadyWithItsContentAndGoldenSnapshot) {
  auto task = importFromPath("debian", source_);
  EXPECT_EQ(toString(task.state), "succeeded") << task.error_json;
  auto image = store_->images().get("acme", "debian");
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(toString(image->state), "ready");
  EXPECT_EQ(image->format, "raw");
  EXPECT_EQ(image->virtual_size, static_cast<int64_t>(content_.size()));
  EXPECT_EQ(image->file_size, static_cast<int64_t>(content_.size()));
  EXPECT_EQ(image->sha256, sha256Hex(content_));
  EXPECT_EQ(image->source, "path:" + source_);
  auto data = local_->read(ImageService::idOf(*image), 0, content_.size());
  ASSERT_TRUE(data.has_value()) << data.error().describe();
  EXPECT_EQ(*data, content_);
  // VM disks can be cloned from it.
  EXPECT_TRUE(local_->clone(ImageService::idOf(*image), ImageService::kGoldenSnapshot,
                            {"acme", "vm-disk", ""}));
  EXPECT_EQ(driver_->faults().calls(VolumeOp::kCreateGoldenSnapshot), 1);
  EXPECT_TRUE(fs::exists(source_)) << "a host path is the admin's file: it stays";
}

TEST_F(ImageServiceTest, AnUploadIsImportedOnceAndItsFileGoesWhenReady) {
  TaskRecord none;
  auto image = service_->create(spec("up"), "owner", "t", &none);
  ASSERT_TRUE(image.has_value()) << image.error().describe();
  EXPECT_EQ(toString(image->state), "pending");
  const std::string received = service_->workDir() + "/incoming";
  std::ofstream(received, std::ios::binary) << content_;
  auto task = service_->upload(*image, received, static_cast<int64_t>(content_.size()),
                               sha256Hex(content_), "t");
  ASSERT_TRUE(task.has_value()) << task.error().describe();
  EXPECT_EQ(toString(finish(*task).state), "succeeded") << finish(*task).error_json;
  auto ready = store_->images().get("acme", "up");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(toString(ready->state), "ready");
  EXPECT_EQ(ready->sha256, sha256Hex(content_));
  EXPECT_EQ(workFiles(), 0u) << "the upload's file was left in the work directory";

  // Data is taken only once.
  std::ofstream(received, std::ios::binary) << content_;
  auto again = service_->upload(*ready, received, 1, "x", "t");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_FALSE(fs::exists(received)) << "a refused upload's file was kept";
}

TEST_F(ImageServiceTest, BadSpecsAndTakenNamesAreRefused) {
  for (const char* bad : {R"({"name":"a\"b"})", R"({"name":"a/b"})", R"({"name":"../x"})",
                          R"({"name":"x","tenant":"a b"})", R"({"name":"x","format":"vmdk"})",
                          R"({"name":"x","source_path":"relative/x.raw"})",
                          R"({"name":"x","source_path":""})", R"({"name":"x","public":"yes"})",
                          R"({"name":"x","url":"http://x"})", R"({"format":"raw"})"}) {
    auto parsed = parseImageSpec(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  TaskRecord none;
  ASSERT_TRUE(service_->create(spec("x"), "o", "t", &none).has_value());
  auto taken = service_->create(spec("x"), "o", "t", &none);
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
  // A public image of the same name is another image; the tenant's own hides it.
  ImageSpec pub = spec("x");
  pub.is_public = true;
  ASSERT_TRUE(service_->create(pub, "o", "t", &none).has_value());
  auto found = findImageFor(*store_, "acme", "x");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->tenant, "acme");
  EXPECT_EQ(findImageFor(*store_, "other", "x")->tenant, "");
  EXPECT_EQ(findImageFor(*store_, "other", "nope").error().code, ErrorCode::kNotFound);
}

TEST_F(ImageServiceTest, AnImageThatIsNotWhatItClaimsIsRefusedAndLeavesNothing) {
  TaskRecord task;
  ImageSpec s = spec("fake", source_);
  s.format = "qcow2";
  ASSERT_TRUE(service_->create(s, "o", "t", &task).has_value());
  auto done = finish(task);
  EXPECT_EQ(toString(done.state), "failed");
  EXPECT_NE(done.error_json.find("qcow2"), std::string::npos) << done.error_json;
  EXPECT_FALSE(store_->images().get("acme", "fake").has_value());
  EXPECT_EQ(driver_->faults().calls(VolumeOp::kCreate), 0) << "a refused image reached the backend";
}

TEST_F(ImageServiceTest, AnImportWhoseGoldenSnapshotFailsLeavesNothing) {
  driver_->faults().failNth(VolumeOp::kCreateGoldenSnapshot, 1,
                            Error{ErrorCode::kInternal, "test", "injected failure", {}});
  TaskRecord none;
  auto image = service_->create(spec("up"), "o", "t", &none);
  ASSERT_TRUE(image.has_value());
  const std::string received = service_->workDir() + "/incoming";
  std::ofstream(received, std::ios::binary) << content_;
  auto task = service_->upload(*image, received, static_cast<int64_t>(content_.size()),
                               sha256Hex(content_), "t");
  ASSERT_TRUE(task.has_value());
  auto done = finish(*task);
  EXPECT_EQ(toString(done.state), "failed");
  EXPECT_NE(done.error_json.find("injected failure"), std::string::npos) << done.error_json;
  EXPECT_FALSE(store_->images().get("acme", "up").has_value()) << "the catalog entry was kept";
  EXPECT_FALSE(inBackend("img-up")) << "the backend image was kept";
  EXPECT_EQ(workFiles(), 0u) << "the upload's file was kept";
}

TEST_F(ImageServiceTest, DeleteRemovesTheImageUnlessVolumesWereClonedFromIt) {
  ASSERT_EQ(toString(importFromPath("debian", source_).state), "succeeded");
  auto image = *store_->images().get("acme", "debian");
  // A VM disk made from it keeps it.
  VolumeRecord disk;
  disk.tenant = "acme";
  disk.name = "web1-disk0";
  disk.uuid = newUuid();
  disk.backend = "local";
  disk.object = "vol-web1-disk0";
  disk.state = VolumeState::kInUse;
  disk.attached_vm = "web1";
  disk.image = ImageService::refOf(image);
  ASSERT_TRUE(store_->volumes().create(disk, nullptr));
  auto refused = service_->remove(image, "t");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("acme/web1-disk0"), std::string::npos)
      << refused.error().message;

  ASSERT_TRUE(store_->volumes().remove("acme", "web1-disk0"));
  auto task = service_->remove(image, "t");
  ASSERT_TRUE(task.has_value()) << task.error().describe();
  EXPECT_EQ(toString(finish(*task).state), "succeeded");
  EXPECT_FALSE(store_->images().get("acme", "debian").has_value());
  EXPECT_FALSE(inBackend("img-debian"));
}

TEST_F(ImageServiceTest, AnImportInterruptedByAStopIsFinishedAtTheNextStart) {
  tasks_->stop();
  TaskRecord task;
  auto refused = service_->create(spec("debian", source_), "o", "t", &task);
  ASSERT_FALSE(refused.has_value());
  auto pending = store_->images().get("acme", "debian");
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(toString(pending->state), "importing");
  // An import under way cannot be deleted.
  auto busy = service_->remove(*pending, "t");
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, ErrorCode::kConflict);
  const std::string id = onlyUnfinishedTask();
  ASSERT_TRUE(store_->tasks().journal(id, "probe", JournalPhase::kBegin));

  // The sweep at start keeps the files of the import.
  restartAndResume();
  auto done = store_->tasks().get(id);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(toString(done->state), "succeeded") << done->error_json;
  EXPECT_EQ(toString(store_->images().get("acme", "debian")->state), "ready");
}

TEST_F(ImageServiceTest, AnImportInterruptedTooOftenIsRolledBack) {
  tasks_->stop();
  TaskRecord task;
  ASSERT_FALSE(service_->create(spec("debian", source_), "o", "t", &task).has_value());
  // The crashed runs had made the backend image already.
  ASSERT_TRUE(local_->create({"acme", "img-debian", ""}, static_cast<int64_t>(content_.size())));
  const std::string id = onlyUnfinishedTask();
  interruptedTooOften(id);
  restartAndResume();
  EXPECT_EQ(toString(store_->tasks().get(id)->state), "failed");
  EXPECT_FALSE(store_->images().get("acme", "debian").has_value());
  EXPECT_FALSE(inBackend("img-debian"));
}

TEST_F(ImageServiceTest, TheSweepKeepsOnlyTheFilesOfImportsUnderWay) {
  TaskRecord none;
  auto pending = service_->create(spec("up"), "o", "t", &none);
  ASSERT_TRUE(pending.has_value());
  const std::string owned = service_->workDir() + "/" + pending->uuid + ".upload";
  const std::string orphan = service_->workDir() + "/" + newUuid() + ".upload";
  std::ofstream(owned) << "x";
  std::ofstream(orphan) << "x";
  service_->sweep();
  EXPECT_TRUE(fs::exists(owned));
  EXPECT_FALSE(fs::exists(orphan));
}

}  // namespace
}  // namespace qiao
