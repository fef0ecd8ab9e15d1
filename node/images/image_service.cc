#include "node/images/image_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "base/crypto.h"
#include "base/handle.h"
#include "base/json_input.h"
#include "base/log.h"
#include "base/names.h"
#include "node/state/record_json.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const Logger kLog("image");
constexpr size_t kChunk = 4 << 20;

std::string describeImage(const ImageRecord& image) {
  return image.tenant.empty() ? "public image " + image.name
                              : "image " + image.tenant + "/" + image.name;
}

std::string taskTarget(const std::string& name) { return "image/" + name; }

// SHA-256 and size of a file, read in chunks.
Result<std::pair<std::string, int64_t>> digestFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    return makeError(ErrorCode::kInvalidArgument, "image",
                     "cannot read " + quoteForMessage(path) + ": " + std::strerror(errno));
  }
  Sha256 hash;
  std::string buf(kChunk, '\0');
  int64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return makeError(ErrorCode::kInternal, "image", "read error on " + path);
    if (n == 0) break;
    hash.update(std::string_view(buf.data(), static_cast<size_t>(n)));
    total += n;
  }
  return std::pair{hash.finishHex(), total};
}

}  // namespace

void preferOwnImages(std::vector<ImageRecord>& images) {
  const bool own = std::any_of(images.begin(), images.end(),
                               [](const ImageRecord& i) { return !i.tenant.empty(); });
  if (own) std::erase_if(images, [](const ImageRecord& i) { return i.tenant.empty(); });
}

Result<ImageRecord> findImageFor(Store& store, const std::string& tenant, const std::string& name) {
  auto found = store.images().list({tenant, ""}, name);
  if (!found) return std::unexpected(found.error());
  preferOwnImages(*found);
  if (found->empty()) {
    return makeError(ErrorCode::kNotFound, "image",
                     "tenant " + tenant + " has no image named " + name + " (nor is one public)");
  }
  return found->front();
}

ImageService::ImageService(ImageServiceOptions options, Store& store, VolumeDriver& driver,
                           TaskEngine& tasks, EventBus& events)
    : options_(std::move(options)), store_(store), driver_(driver), tasks_(tasks), events_(events) {
  std::error_code ec;
  fs::create_directories(options_.work_dir, ec);
  ::chmod(options_.work_dir.c_str(), 0700);
  TaskEngine::Kind kind;
  kind.run = [this](TaskEngine::Run& run) { return runTask(run); };
  kind.give_up = [this](TaskEngine::Run& run) { giveUp(run); };
  tasks_.addFamily(TaskFamily::kImage, std::move(kind));
}

std::string ImageService::uploadPath(const ImageRecord& image) const {
  return options_.work_dir + "/" + image.uuid + ".upload";
}

void ImageService::removeWorkFiles(const ImageRecord& image) {
  ::unlink(uploadPath(image).c_str());
}

void ImageService::sweep() {
  std::set<std::string> owned;
  if (auto images = store_.images().list({})) {
    for (const auto& image : *images) {
      if (image.state != ImageState::kReady) owned.insert(image.uuid);
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.work_dir, ec)) {
    const std::string file = entry.path().filename().string();
    const std::string uuid = file.substr(0, file.find('.'));
    if (owned.contains(uuid)) continue;
    fs::remove(entry.path(), ec);
    kLog.info("removed a file no import owns", {{"file", entry.path().string()}});
  }
}

Result<ImageRecord> ImageService::create(const ImageSpec& spec, const std::string& owner,
                                         const std::string& identity, TaskRecord* task) {
  ImageRecord image;
  image.tenant = spec.is_public ? "" : spec.tenant;
  image.name = spec.name;
  image.uuid = newUuid();
  image.owner = owner;
  image.declared_format = spec.format;
  image.backend = std::string(driver_.backend());
  image.object = "img-" + spec.name;
  if (spec.source_path.empty()) {
    image.source = "upload";
    image.state = ImageState::kPending;
    if (auto created = store_.images().create(image, nullptr); !created) {
      return std::unexpected(created.error());
    }
    // As stored: with the times the store gave it.
    if (auto stored = store_.images().get(image.tenant, image.name)) image = *stored;
    publish(image, "created");
    return image;
  }
  image.source = "path:" + spec.source_path;
  image.state = ImageState::kImporting;
  *task = TaskEngine::newTask(TaskKind::kImageImport, image.tenant, taskTarget(image.name),
                              identity, dumpJson({{"path", spec.source_path}}));
  if (auto created = store_.images().create(image, task); !created) {
    return std::unexpected(created.error());
  }
  publish(image, "created");
  auto dispatched = tasks_.dispatch(task->id);
  if (!dispatched) return std::unexpected(dispatched.error());
  *task = *dispatched;
  return image;
}

Result<TaskRecord> ImageService::upload(const ImageRecord& given, const std::string& file,
                                        int64_t bytes, const std::string& sha256,
                                        const std::string& identity) {
  ImageRecord image = given;
  if (image.state != ImageState::kPending) {
    ::unlink(file.c_str());
    return makeError(ErrorCode::kConflict, "image",
                     describeImage(image) + " is " + toString(image.state) +
                         "; data is taken only once, by an image created without source_path");
  }
  image.file_size = bytes;
  image.sha256 = sha256;
  image.state = ImageState::kImporting;
  image.last_error.clear();
  // Taken from pending in one guarded change, before the task is queued (the task reads the
  // size and digest of the upload from the record): of two uploads of one image, on any
  // members, one wins.
  if (auto taken = store_.images().update(image, ImageState::kPending); !taken) {
    ::unlink(file.c_str());
    if (taken.error().code != ErrorCode::kConflict) return std::unexpected(taken.error());
    return makeError(
        ErrorCode::kConflict, "image",
        describeImage(image) + " took another upload meanwhile: " + taken.error().message);
  }
  publish(image, toString(image.state));
  if (::rename(file.c_str(), uploadPath(image).c_str()) != 0) {
    int err = errno;
    ::unlink(file.c_str());
    image.file_size = 0;
    image.sha256.clear();
    save(image, ImageState::kPending);
    return makeError(ErrorCode::kInternal, "image",
                     "cannot keep the upload: " + std::string(std::strerror(err)));
  }
  auto task = tasks_.submit(
      TaskEngine::newTask(TaskKind::kImageImport, image.tenant, taskTarget(image.name), identity,
                          dumpJson({{"path", uploadPath(image)}, {"uploaded", true}})));
  if (!task) {
    ::unlink(uploadPath(image).c_str());
    image.file_size = 0;
    image.sha256.clear();
    save(image, ImageState::kPending);
    return task;
  }
  return task;
}

Result<TaskRecord> ImageService::remove(const ImageRecord& image, const std::string& identity) {
  if (image.state == ImageState::kImporting) {
    return makeError(ErrorCode::kConflict, "image",
                     describeImage(image) + " is being imported; try again when it is done");
  }
  // Volumes cloned from it keep it (the backend would refuse too, but this names them).
  if (auto volumes = store_.volumes().list({})) {
    std::string users;
    for (const auto& v : *volumes) {
      if (v.image == refOf(image)) users += (users.empty() ? "" : ", ") + v.tenant + "/" + v.name;
    }
    if (!users.empty()) {
      return makeError(ErrorCode::kConflict, "image",
                       describeImage(image) + " has volumes cloned from it: " + users,
                       dumpJson({{"volumes", users}}));
    }
  }
  return tasks_.submit(TaskEngine::newTask(TaskKind::kImageDelete, image.tenant,
                                           taskTarget(image.name), identity, "{}"));
}

Result<ImageRecord> ImageService::imageOfTask(const TaskRecord& task) {
  auto name = TaskEngine::objectOf(task, "image/");
  if (!name) return std::unexpected(name.error());
  return store_.images().get(task.tenant, *name);
}

Status ImageService::runTask(TaskEngine::Run& run) {
  const TaskRecord& task = run.task();
  auto image = imageOfTask(task);
  if (!image) return std::unexpected(image.error());
  switch (task.kind) {
    case TaskKind::kImageDelete: return runRemove(run, *image);
    case TaskKind::kImageImport: {
      const json params = TaskEngine::params(task);
      return runImport(run, *image, params.value("path", ""), params.value("uploaded", false));
    }
    default: break;  // another family's kind: not ours
  }
  return makeError(ErrorCode::kInternal, "image", "unknown task kind " + toString(task.kind));
}

void ImageService::giveUp(TaskEngine::Run& run) {
  auto image = imageOfTask(run.task());
  if (!image) return;
  (void)run.step("rollback", run.task().progress, "rolling back", [&]() -> Status {
    if (auto removed = driver_.remove(idOf(*image)); !removed) return removed;
    removeWorkFiles(*image);
    return store_.images().remove(image->tenant, image->name);
  });
}

Status ImageService::runImport(TaskEngine::Run& run, ImageRecord image, const std::string& source,
                               bool uploaded) {
  const VolumeId id = idOf(image);
  ProbeResult probe;

  Status result = run.step("probe", 10, "checking the image", [&]() -> Status {
    auto probed = probeImageFile(source, options_.probe);
    if (!probed) return std::unexpected(probed.error());
    std::string file_name = uploaded ? image.name : fs::path(source).filename().string();
    if (auto claims = checkImageClaims(*probed, image.declared_format, file_name); !claims) {
      return claims;
    }
    probe = *probed;
    return {};
  });
  if (result) {
    result = run.step(
        "create", 20, "making the backend image",
        [&]() { return driver_.create(id, probe.virtual_size); },
        [&]() { return driver_.remove(id); });
  }
  if (result) {
    result = run.step("write", 90, "writing the image", [&]() -> Status {
      // A host path is hashed while qemu-img writes (an upload was hashed as it came).
      Result<std::pair<std::string, int64_t>> digest = std::pair<std::string, int64_t>{};
      std::thread hasher;
      if (!uploaded) hasher = std::thread([&] { digest = digestFile(source); });
      const DiskSource where = driver_.diskSource(id);
      ConvertTarget target;
      target.path = where.path;
      target.pool = where.pool;
      target.ns = where.ns;
      target.image = where.image;
      target.user = where.user;
      target.conf = where.conf;
      target.key_file = options_.ceph_key_file;
      Status written = convertInto(source, probe.format, target, options_.convert);
      if (hasher.joinable()) hasher.join();
      if (!written) return written;
      if (!digest) return std::unexpected(digest.error());
      if (!uploaded) std::tie(image.sha256, image.file_size) = *digest;
      return {};
    });
  }
  if (result) {
    result = run.step("golden", 95, "making the golden snapshot",
                      [&]() { return driver_.createGoldenSnapshot(id, kGoldenSnapshot); });
  }
  if (result) {
    result = run.step("ready", 100, "recording the image", [&]() -> Status {
      image.format = std::string(imageFormatName(probe.format));
      image.virtual_size = probe.virtual_size;
      removeWorkFiles(image);
      save(image, ImageState::kReady);
      return {};
    });
  }
  if (!result) {
    // A refused or failed import leaves nothing: backend object, files, catalog entry.
    run.rollback();
    removeWorkFiles(image);
    if (store_.images().remove(image.tenant, image.name)) publish(image, "import failed");
  }
  return result;
}

Status ImageService::runRemove(TaskEngine::Run& run, const ImageRecord& image) {
  Status result = run.step("remove", 80, "removing the image data",
                           [&]() { return driver_.remove(idOf(image)); });
  if (result) {
    result = run.step("forget", 100, "forgetting the image", [&]() -> Status {
      removeWorkFiles(image);
      if (auto deleted = store_.images().remove(image.tenant, image.name); !deleted) return deleted;
      publish(image, "deleted");
      return {};
    });
  }
  return result;
}

void ImageService::save(ImageRecord& image, ImageState state, const std::string& error) {
  image.state = state;
  image.last_error = error;
  if (auto updated = store_.images().update(image); !updated) {
    kLog.error("cannot record an image",
               {{"image", describeImage(image)}, {"error", updated.error().describe()}});
    return;
  }
  publish(image, toString(state));
}

void ImageService::publish(const ImageRecord& image, std::string_view reason) {
  json event = imageToJson(image);
  event["type"] = "image";
  event["reason"] = std::string(reason);
  events_.publish({"image", image.tenant, dumpJson(event)});
}

}  // namespace qiao
