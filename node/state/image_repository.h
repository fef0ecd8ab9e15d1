// The image catalog in the store.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;

class ImageRepository {
 public:
  ImageRepository(Database& db, TaskRepository& tasks) : db_(db), tasks_(tasks) {}

  // Records the image and, when given, its import task in one transaction: kConflict when
  // (tenant, name) exists.
  Status create(const ImageRecord& image, const TaskRecord* task);
  Result<ImageRecord> get(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant ("" is the public one).
  Result<std::vector<ImageRecord>> list(const std::vector<std::string>& tenants,
                                        const std::string& name = {});
  // Writes state, format, sizes, digest and last error.
  Status update(const ImageRecord& image);
  Status remove(const std::string& tenant, const std::string& name);  // idempotent

 private:
  Database& db_;
  TaskRepository& tasks_;
};

}  // namespace qiao
