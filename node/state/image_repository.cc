#include "node/state/image_repository.h"

#include "node/state/database.h"
#include "node/state/mirror.h"
#include "node/state/queries.h"
#include "node/state/table.h"
#include "node/state/task_repository.h"

namespace qiao {
namespace {

const Table<ImageRecord> kImages{"images",
                                 {
                                     field("tenant", &ImageRecord::tenant),
                                     field("name", &ImageRecord::name),
                                     field("uuid", &ImageRecord::uuid),
                                     field("owner", &ImageRecord::owner),
                                     field("state", &ImageRecord::state),
                                     field("source", &ImageRecord::source),
                                     field("declared_format", &ImageRecord::declared_format),
                                     field("format", &ImageRecord::format),
                                     field("virtual_size", &ImageRecord::virtual_size),
                                     field("file_size", &ImageRecord::file_size),
                                     field("sha256", &ImageRecord::sha256),
                                     field("backend", &ImageRecord::backend),
                                     field("object", &ImageRecord::object),
                                     field("last_error", &ImageRecord::last_error),
                                     createdAt(&ImageRecord::created_at),
                                     updatedAt(&ImageRecord::updated_at),
                                 }};

std::string describe(const std::string& tenant, const std::string& name) {
  return (tenant.empty() ? "(public) " : tenant + "/") + name;
}

ImageRecord probe(const std::string& tenant, const std::string& name) {
  ImageRecord image;
  image.tenant = tenant;
  image.name = name;
  return image;
}

}  // namespace

ImageRepository::ImageRepository(Database& db, TaskRepository& tasks)
    : db_(db),
      tasks_(tasks),
      mirror_(
          std::make_unique<Mirror<ImageRecord>>(db, kImages, tenantNameKey<ImageRecord>(true))) {}

ImageRepository::~ImageRepository() = default;

void ImageRepository::share(std::unique_ptr<RecordTable> table) {
  mirror_->share(std::move(table), [](const ImageRecord&) { return true; });
}

Replicated& ImageRepository::replica() { return *mirror_; }

Status ImageRepository::create(const ImageRecord& image, const TaskRecord* task) {
  Mirror<ImageRecord>::Local also;
  if (task != nullptr) also = [&] { return tasks_.insertLocked(*task); };
  auto made = mirror_->update(
      image,
      [&](std::optional<ImageRecord>& current) -> Status {
        if (current) {
          return makeError(ErrorCode::kConflict, "store",
                           "image " + describe(image.tenant, image.name) + " already exists");
        }
        current = image;
        return {};
      },
      also);
  if (!made) return std::unexpected(made.error());
  return {};
}

Result<std::vector<ImageRecord>> ImageRepository::list(const std::vector<std::string>& tenants,
                                                       const std::string& name) {
  return selectByTenant(db_, kImages, tenants, name);
}

Result<ImageRecord> ImageRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<ImageRecord>("image", tenant, name, [&] { return list({tenant}, name); });
}

Status ImageRepository::update(const ImageRecord& image, std::optional<ImageState> from) {
  auto updated = mirror_->update(image, [&](std::optional<ImageRecord>& current) -> Status {
    if (!current) {
      return makeError(ErrorCode::kNotFound, "store",
                       "no image " + image.tenant + "/" + image.name);
    }
    if (from && current->state != *from) {
      return makeError(
          ErrorCode::kConflict, "store",
          "image " + image.tenant + "/" + image.name + " is " + toString(current->state) + " now");
    }
    current->state = image.state;
    current->format = image.format;
    current->virtual_size = image.virtual_size;
    current->file_size = image.file_size;
    current->sha256 = image.sha256;
    current->last_error = image.last_error;
    return {};
  });
  if (!updated) return std::unexpected(updated.error());
  return {};
}

Status ImageRepository::remove(const std::string& tenant, const std::string& name) {
  auto gone = mirror_->update(probe(tenant, name), [](std::optional<ImageRecord>& image) -> Status {
    image.reset();
    return {};
  });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

}  // namespace qiao
