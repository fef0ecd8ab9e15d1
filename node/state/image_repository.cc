#include "node/state/image_repository.h"

#include "node/state/database.h"
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

}  // namespace

Status ImageRepository::create(const ImageRecord& image, const TaskRecord* task) {
  std::lock_guard lock(db_.mutex());
  Transaction tx(db_);
  if (!tx.status()) return tx.status();
  {
    Statement q(db_, kImages.insert());
    kImages.bindInsert(q, image);
    if (q.step() != Statement::Step::kDone) {
      Error e = db_.error("insert image");
      if (e.code == ErrorCode::kConflict) {
        e.message = "image " + (image.tenant.empty() ? "(public) " : image.tenant + "/") +
                    image.name + " already exists";
      }
      return std::unexpected(e);
    }
  }
  if (task != nullptr) {
    if (auto inserted = tasks_.insertLocked(*task); !inserted) return inserted;
  }
  return tx.commit();
}

Result<std::vector<ImageRecord>> ImageRepository::list(const std::vector<std::string>& tenants,
                                                       const std::string& name) {
  return selectByTenant(db_, kImages, tenants, name);
}

Result<ImageRecord> ImageRepository::get(const std::string& tenant, const std::string& name) {
  return theOne<ImageRecord>("image", tenant, name, [&] { return list({tenant}, name); });
}

Status ImageRepository::update(const ImageRecord& image) {
  static const auto kSet =
      kImages.set({"state", "format", "virtual_size", "file_size", "sha256", "last_error"});
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "UPDATE images SET " + kSet.sql() + " WHERE tenant = ? AND name = ?");
  kSet.bind(q, image);
  q.bind(image.tenant).bind(image.name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("update image"));
  if (db_.changes() == 0) {
    return makeError(ErrorCode::kNotFound, "store", "no image " + image.tenant + "/" + image.name);
  }
  return {};
}

Status ImageRepository::remove(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "DELETE FROM images WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("delete image"));
  return {};
}

}  // namespace qiao
