// The image catalog in the store.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "node/state/records.h"

namespace qiao {

class Database;
class TaskRepository;
class RecordTable;
class Replicated;
template <typename R>
class Mirror;

// A cluster member's images are the cluster's (the RADOS table "images", key "<tenant>/<name>",
// "/<name>" for a public one; node/state/mirror.h): their data is in RBD, which every member
// reaches. An import's task stays with the member that runs it.
class ImageRepository {
 public:
  ImageRepository(Database& db, TaskRepository& tasks);
  ~ImageRepository();

  // Makes the images those of the cluster's table; a store shared for the first time puts its
  // own in it (node/state/mirror.h).
  void share(std::unique_ptr<RecordTable> table);
  Replicated& replica();

  // Records the image and, when given, its import task in one transaction: kConflict when
  // (tenant, name) exists.
  Status create(const ImageRecord& image, const TaskRecord* task);
  Result<ImageRecord> get(const std::string& tenant, const std::string& name);
  // Ordered by tenant and name; empty tenants = every tenant ("" is the public one).
  Result<std::vector<ImageRecord>> list(const std::vector<std::string>& tenants,
                                        const std::string& name = {});
  // Writes state, format, sizes, digest and last error.
  // With `from`, only while the image is in that state (kConflict otherwise): one of two
  // members taking a pending image's upload wins.
  Status update(const ImageRecord& image, std::optional<ImageState> from = std::nullopt);
  Status remove(const std::string& tenant, const std::string& name);  // idempotent

 private:
  Database& db_;
  TaskRepository& tasks_;
  std::unique_ptr<Mirror<ImageRecord>> mirror_;
};

}  // namespace qiao
