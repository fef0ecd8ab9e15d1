// ImageService: the image catalog of a node. An image arrives as a streamed upload (the
// server writes it to a file under <state>/images while hashing it) or, for admins, from a
// host path; an import task then probes it (images/probe.h: the format from the content,
// hostile images refused), writes its content as raw into the volume backend (qemu-img
// convert under limits, straight into RBD), and makes the protected snapshot "golden" that
// VM disks are cloned from. Only then
// is the image `ready`. A refused or failed import leaves nothing behind: no catalog entry, no
// backend object, no file. Public images (tenant "") live in the backend's default namespace.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/event_bus.h"
#include "images/convert.h"
#include "images/probe.h"
#include "node/images/image_spec.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "storage/volume_driver.h"

namespace qiao {

struct ImageServiceOptions {
  std::string work_dir;  // <state>/images: uploads and conversions in progress
  ProbeLimits probe;
  ConvertLimits convert;
  std::string ceph_key_file;  // for qemu-img's writes into RBD
};

// Of the images named `name`, the tenant's own, else the public one (a tenant's image hides
// a public one of the same name). kNotFound saying so when there is neither.
Result<ImageRecord> findImageFor(Store& store, const std::string& tenant, const std::string& name);
// Drops the public images among `images` when a tenant's image is there too.
void preferOwnImages(std::vector<ImageRecord>& images);

class ImageService {
 public:
  static constexpr const char* kGoldenSnapshot = "golden";

  ImageService(ImageServiceOptions options, Store& store, VolumeDriver& driver,
               TaskEngine& tasks, EventBus& events);

  // Removes upload and conversion files that no pending or importing image owns (a qiaod
  // killed during an upload). Call before the tasks resume.
  void sweep();

  // With a source_path: the image and its import task. Without: the image, pending, waiting
  // for its data (no task).
  Result<ImageRecord> create(const ImageSpec& spec, const std::string& owner,
                             const std::string& identity, TaskRecord* task);
  // The received file (in work_dir, which the image now owns) and its digest: the import task.
  Result<TaskRecord> upload(const ImageRecord& image, const std::string& file,
                            int64_t bytes, const std::string& sha256,
                            const std::string& identity);
  Result<TaskRecord> remove(const ImageRecord& image, const std::string& identity);

  const std::string& workDir() const { return options_.work_dir; }
  static VolumeId idOf(const ImageRecord& image) { return {image.tenant, image.object}; }
  // "acme/debian" or "debian" (public): how volumes name the image they were cloned from.
  static std::string refOf(const ImageRecord& image) {
    return image.tenant.empty() ? image.name : image.tenant + "/" + image.name;
  }

 private:
  Status runTask(TaskEngine::Run& run);
  void giveUp(TaskEngine::Run& run);
  Status runImport(TaskEngine::Run& run, ImageRecord image, const std::string& source,
                   bool uploaded);
  Status runRemove(TaskEngine::Run& run, const ImageRecord& image);
  Result<ImageRecord> imageOfTask(const TaskRecord& task);
  // Deletes the files of an image's import in work_dir.
  void removeWorkFiles(const ImageRecord& image);
  std::string uploadPath(const ImageRecord& image) const;
  void save(ImageRecord& image, ImageState state, const std::string& error = {});
  void publish(const ImageRecord& image, std::string_view reason);

  ImageServiceOptions options_;
  Store& store_;
  VolumeDriver& driver_;
  TaskEngine& tasks_;
  EventBus& events_;
};

}  // namespace qiao
