// The Ceph RBD driver: librados/librbd, one namespace per tenant, clone format 2 (clones may
// cross namespaces: a tenant's disk cloned from a public golden image).
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>

#include "base/log.h"
#include "storage/volume_driver.h"
#include "storage/rados_cluster.h"
#include "storage/rados_handles.h"

namespace qiao {
namespace {

const Logger kLog("rbd");

// librbd's own limits, as image metadata: they follow the image to any client and host, and an
// open image applies a change at its next refresh (seconds; no reopen).
struct QosKey {
  const char* key;
  int64_t VolumeQos::*field;
};
constexpr QosKey kQosKeys[] = {
    {"conf_rbd_qos_iops_limit", &VolumeQos::iops},
    {"conf_rbd_qos_bps_limit", &VolumeQos::bytes_per_sec},
    {"conf_rbd_qos_read_iops_limit", &VolumeQos::read_iops},
    {"conf_rbd_qos_write_iops_limit", &VolumeQos::write_iops},
    {"conf_rbd_qos_read_bps_limit", &VolumeQos::read_bytes_per_sec},
    {"conf_rbd_qos_write_bps_limit", &VolumeQos::write_bytes_per_sec},
};

Error rbdError(int rc, const std::string& what) { return cephError(rc, what, "rbd"); }

// The owner of an open RBD image (IoCtx: storage/rados_handles.h).
struct Image {
  rbd_image_t image = nullptr;
  Image() = default;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  ~Image() {
    if (image != nullptr) rbd_close(image);
  }
};

class RbdWriter;

class RbdDriver final : public VolumeDriver {
 public:
  explicit RbdDriver(RbdOptions options) : options_(std::move(options)) {
    cluster_ = options_.cluster;
    if (!cluster_) {
      cluster_ = std::make_shared<LibradosCluster>(CephClientOptions{
          options_.conf, options_.user, options_.keyring, options_.op_timeout_s,
          options_.instance_file});
    }
  }

  std::string_view backend() const override { return "rbd"; }
  std::string location() const override { return "rbd pool " + options_.pool; }
  std::string defaultPool() const override { return options_.pool; }

  Status ping() override {
    rados_t cluster = nullptr;
    if (auto connected = connect(&cluster); !connected) return connected;
    IoCtx io;
    if (int rc = rados_ioctx_create(cluster, options_.pool.c_str(), &io.io); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot open pool " + options_.pool));
    }
    return {};
  }

  Status create(const VolumeId& id, int64_t size_bytes) override {
    IoCtx io;
    if (auto opened = openIo(id, /*create_ns=*/true, &io); !opened) return opened;
    rbd_image_options_t opts = nullptr;
    rbd_image_options_create(&opts);
    int rc = rbd_create4(io.io, id.name.c_str(), static_cast<uint64_t>(size_bytes), opts);
    rbd_image_options_destroy(opts);
    if (rc == -EEXIST) return sameSize(id, size_bytes);
    if (rc < 0) return std::unexpected(rbdError(rc, "cannot create " + describe(id)));
    return {};
  }

  Result<VolumeStat> stat(const VolumeId& id) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return std::unexpected(opened.error());
    VolumeStat stat;
    uint64_t size = 0;
    if (int rc = rbd_get_size(image.image, &size); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot read the size of " + describe(id)));
    }
    stat.size_bytes = static_cast<int64_t>(size);
    rbd_linked_image_spec_t parent{};
    rbd_snap_spec_t snap{};
    if (rbd_get_parent(image.image, &parent, &snap) == 0) {
      stat.parent = std::string(parent.pool_namespace ? parent.pool_namespace : "") + "/" +
                    (parent.image_name ? parent.image_name : "") + "@" +
                    (snap.name ? snap.name : "");
      rbd_linked_image_spec_cleanup(&parent);
      rbd_snap_spec_cleanup(&snap);
    }
    return stat;
  }

  Status resize(const VolumeId& id, int64_t size_bytes) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return opened;
    uint64_t size = 0;
    if (int rc = rbd_get_size(image.image, &size); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot read the size of " + describe(id)));
    }
    if (static_cast<uint64_t>(size_bytes) == size) return {};
    if (static_cast<uint64_t>(size_bytes) < size) {
      return makeError(ErrorCode::kInvalidArgument, "rbd",
                       describe(id) + " is " + std::to_string(size) +
                           " bytes; volumes only grow");
    }
    if (int rc = rbd_resize2(image.image, static_cast<uint64_t>(size_bytes), false, nullptr,
                             nullptr);
        rc < 0) {
      return std::unexpected(rbdError(rc, "cannot resize " + describe(id)));
    }
    return {};
  }

  Status remove(const VolumeId& id) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) {
      if (opened.error().code != ErrorCode::kNotFound) return opened;
      if (io.io == nullptr) return {};  // no such namespace
      // A removal cut short (qiaod killed inside rbd_remove) can leave an image that is still
      // listed but no longer opens: finish it.
      int rc = rbd_remove(io.io, id.name.c_str());
      if (rc == 0 || rc == -ENOENT) return {};
      return std::unexpected(rbdError(rc, "cannot finish removing " + describe(id)));
    }
    auto holders = watchersOf(image.image, id);
    if (!holders) return std::unexpected(holders.error());
    if (!holders->empty()) return inUse(id, *holders);
    if (auto snaps = removeSnapshots(image.image, id); !snaps) return snaps;
    rbd_close(image.image);
    image.image = nullptr;
    int rc = rbd_remove(io.io, id.name.c_str());
    if (rc == -ENOENT) return {};
    if (rc == -EBUSY) {
      return makeError(ErrorCode::kConflict, "rbd",
                       describe(id) + " is in use (a client opened it meanwhile)");
    }
    if (rc < 0) return std::unexpected(rbdError(rc, "cannot remove " + describe(id)));
    return {};
  }

  Result<std::vector<std::string>> watchers(const VolumeId& id) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return std::unexpected(opened.error());
    return watchersOf(image.image, id);
  }

  Status setQos(const VolumeId& id, const VolumeQos& qos) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return opened;
    for (const auto& [key, field] : kQosKeys) {
      const int64_t value = qos.*field;
      int rc = value > 0 ? rbd_metadata_set(image.image, key, std::to_string(value).c_str())
                         : rbd_metadata_remove(image.image, key);
      if (rc < 0 && rc != -ENOENT) {
        return std::unexpected(rbdError(rc, "cannot set the I/O limits of " + describe(id)));
      }
    }
    return {};
  }

  Result<VolumeQos> qos(const VolumeId& id) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return std::unexpected(opened.error());
    VolumeQos qos;
    for (const auto& [key, field] : kQosKeys) {
      char value[64];
      size_t len = sizeof(value);
      if (rbd_metadata_get(image.image, key, value, &len) == 0) {
        qos.*field = std::strtoll(value, nullptr, 10);
      }
    }
    return qos;
  }

  Status createGoldenSnapshot(const VolumeId& id, const std::string& snapshot) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return opened;
    bool exists = false;
    if (int rc = rbd_snap_exists(image.image, snapshot.c_str(), &exists); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot list the snapshots of " + describe(id)));
    }
    if (!exists) {
      if (int rc = rbd_snap_create(image.image, snapshot.c_str()); rc < 0 && rc != -EEXIST) {
        return std::unexpected(rbdError(rc, "cannot snapshot " + describe(id)));
      }
    }
    int is_protected = 0;
    if (int rc = rbd_snap_is_protected(image.image, snapshot.c_str(), &is_protected); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot read the protection of " + describe(id)));
    }
    if (!is_protected) {
      if (int rc = rbd_snap_protect(image.image, snapshot.c_str()); rc < 0 && rc != -EBUSY) {
        return std::unexpected(rbdError(rc, "cannot protect " + describe(id) + "@" + snapshot));
      }
    }
    return {};
  }

  Status clone(const VolumeId& parent, const std::string& snapshot,
               const VolumeId& child) override {
    IoCtx parent_io, child_io;
    if (auto opened = openIo(parent, false, &parent_io); !opened) return opened;
    if (auto opened = openIo(child, true, &child_io); !opened) return opened;
    rbd_image_options_t opts = nullptr;
    rbd_image_options_create(&opts);
    rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_CLONE_FORMAT, 2);
    int rc = rbd_clone3(parent_io.io, parent.name.c_str(), snapshot.c_str(), child_io.io,
                        child.name.c_str(), opts);
    rbd_image_options_destroy(opts);
    if (rc == -EEXIST) {
      // A step run again after a crash: fine when it is the same clone.
      auto existing = stat(child);
      if (existing && existing->parent == parent.ns + "/" + parent.name + "@" + snapshot) return {};
      return makeError(ErrorCode::kConflict, "rbd",
                       describe(child) + " already exists and is not a clone of " +
                           describe(parent) + "@" + snapshot);
    }
    if (rc < 0) {
      return std::unexpected(rbdError(rc, "cannot clone " + describe(parent) + "@" + snapshot +
                                              " to " + describe(child)));
    }
    return {};
  }

  Status flatten(const VolumeId& id) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return opened;
    int rc = rbd_flatten(image.image);
    if (rc == -EINVAL) return {};  // not a clone (any more)
    if (rc < 0) return std::unexpected(rbdError(rc, "cannot flatten " + describe(id)));
    return {};
  }

  Result<std::unique_ptr<VolumeWriter>> openWriter(const VolumeId& id) override;

  Result<std::string> read(const VolumeId& id, uint64_t offset, size_t length) override {
    IoCtx io;
    Image image;
    if (auto opened = openImage(id, &io, &image); !opened) return std::unexpected(opened.error());
    uint64_t size = 0;
    if (int rc = rbd_get_size(image.image, &size); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot read the size of " + describe(id)));
    }
    length = offset >= size ? 0 : static_cast<size_t>(std::min<uint64_t>(length, size - offset));
    std::string out(length, '\0');
    size_t done = 0;
    while (done < length) {
      ssize_t n = rbd_read(image.image, offset + done, length - done, out.data() + done);
      if (n < 0) return std::unexpected(rbdError(static_cast<int>(n), "cannot read " + describe(id)));
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    out.resize(done);
    return out;
  }

  Result<std::vector<std::string>> list(const std::string& ns) override {
    IoCtx io;
    if (auto opened = openIo(VolumeId{ns, "", ""}, false, &io); !opened) {
      if (opened.error().code == ErrorCode::kNotFound) return std::vector<std::string>();
      return std::unexpected(opened.error());
    }
    std::vector<rbd_image_spec_t> specs(64);
    size_t max = specs.size();
    int rc;
    while ((rc = rbd_list2(io.io, specs.data(), &max)) == -ERANGE) specs.resize(max);
    if (rc < 0) {
      return std::unexpected(rbdError(rc, "cannot list the images of namespace \"" + ns + "\""));
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < max; ++i) names.emplace_back(specs[i].name);
    rbd_image_spec_list_cleanup(specs.data(), max);
    return names;
  }

  DiskSource diskSource(const VolumeId& id) const override {
    DiskSource source;
    source.type = "rbd";
    source.pool = poolOf(id);
    source.ns = id.ns;
    source.image = id.name;
    source.user = options_.user;
    source.conf = options_.conf;
    return source;
  }

  Status openImage(const VolumeId& id, IoCtx* io, Image* image) {
    if (auto opened = openIo(id, false, io); !opened) return opened;
    if (int rc = rbd_open(io->io, id.name.c_str(), &image->image, nullptr); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot open " + describe(id)));
    }
    return {};
  }

  std::string describe(const VolumeId& id) const {
    return "RBD image " + poolOf(id) + "/" + id.describe();
  }

 private:
  // The process's Ceph connection (made on first use; a failed attempt is retried on the next
  // call: Ceph may come up after qiaod).
  Status connect(rados_t* out) {
    auto handle = cluster_->handle();
    if (!handle) return std::unexpected(handle.error());
    *out = static_cast<rados_t>(*handle);
    return {};
  }

  // The pool of a volume: its own, or the driver's.
  const std::string& poolOf(const VolumeId& id) const {
    return id.pool.empty() ? options_.pool : id.pool;
  }

  // An ioctx on the namespace of `where` (its pool and ns; its name is not used).
  Status openIo(const VolumeId& where, bool create_ns, IoCtx* io) {
    const std::string& ns = where.ns;
    const std::string& pool = poolOf(where);
    rados_t cluster = nullptr;
    if (auto connected = connect(&cluster); !connected) return connected;
    if (int rc = rados_ioctx_create(cluster, pool.c_str(), &io->io); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot open pool " + pool));
    }
    if (ns.empty()) return {};
    bool exists = false;
    if (int rc = rbd_namespace_exists(io->io, ns.c_str(), &exists); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot look up RBD namespace " + ns));
    }
    if (!exists) {
      if (!create_ns) {
        // Never leave an ioctx of the default namespace behind for the caller to use.
        rados_ioctx_destroy(io->io);
        io->io = nullptr;
        return makeError(ErrorCode::kNotFound, "rbd",
                         "RBD namespace " + pool + "/" + ns + " does not exist");
      }
      if (int rc = rbd_namespace_create(io->io, ns.c_str()); rc < 0 && rc != -EEXIST) {
        return std::unexpected(rbdError(rc, "cannot create RBD namespace " + ns));
      }
    }
    rados_ioctx_set_namespace(io->io, ns.c_str());
    return {};
  }

  Status sameSize(const VolumeId& id, int64_t size_bytes) {
    auto existing = stat(id);
    if (!existing) return std::unexpected(existing.error());
    if (existing->size_bytes == size_bytes) return {};
    return makeError(ErrorCode::kConflict, "rbd",
                     describe(id) + " already exists with another size");
  }

  Result<std::vector<std::string>> watchersOf(rbd_image_t image, const VolumeId& id) {
    std::vector<rbd_image_watcher_t> list(8);
    size_t max = list.size();
    int rc;
    while ((rc = rbd_watchers_list(image, list.data(), &max)) == -ERANGE) list.resize(max);
    if (rc < 0) return std::unexpected(rbdError(rc, "cannot list the watchers of " + describe(id)));
    std::vector<std::string> out;
    for (size_t i = 0; i < max; ++i) {
      out.push_back(std::string(list[i].addr ? list[i].addr : "?") + " (client." +
                    std::to_string(list[i].id) + ")");
    }
    rbd_watchers_list_cleanup(list.data(), max);
    // Our own open handle watches the image too: it is not a holder.
    if (!out.empty()) {
      if (auto id = cluster_->instanceId()) {
        const std::string self = "(client." + std::to_string(*id) + ")";
        std::erase_if(out, [&](const std::string& w) { return w.ends_with(self); });
      }
    }
    return out;
  }

  Status inUse(const VolumeId& id, const std::vector<std::string>& holders) {
    std::string list;
    for (const auto& h : holders) list += (list.empty() ? "" : ", ") + h;
    return makeError(ErrorCode::kConflict, "rbd",
                     describe(id) + " is open by " + list + "; detach it first");
  }

  // Unprotects and removes every snapshot; refuses when one still has clones.
  Status removeSnapshots(rbd_image_t image, const VolumeId& id) {
    std::vector<rbd_snap_info_t> snaps(16);
    int n;
    while (true) {
      int max = static_cast<int>(snaps.size());
      n = rbd_snap_list(image, snaps.data(), &max);
      if (n == -ERANGE) {
        snaps.resize(static_cast<size_t>(max));
        continue;
      }
      break;
    }
    if (n < 0) return std::unexpected(rbdError(n, "cannot list the snapshots of " + describe(id)));
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.emplace_back(snaps[static_cast<size_t>(i)].name);
    rbd_snap_list_end(snaps.data());
    for (const auto& name : names) {
      int is_protected = 0;
      (void)rbd_snap_is_protected(image, name.c_str(), &is_protected);
      if (is_protected) {
        if (rbd_snap_set(image, name.c_str()) == 0) {
          std::vector<rbd_linked_image_spec_t> children(8);
          size_t max = children.size();
          int rc;
          while ((rc = rbd_list_children3(image, children.data(), &max)) == -ERANGE) {
            children.resize(max);
          }
          (void)rbd_snap_set(image, nullptr);
          if (rc == 0 && max > 0) {
            std::string list;
            for (size_t i = 0; i < max; ++i) {
              list += std::string(list.empty() ? "" : ", ") +
                      (children[i].pool_namespace ? children[i].pool_namespace : "") + "/" +
                      (children[i].image_name ? children[i].image_name : "");
            }
            rbd_linked_image_spec_list_cleanup(children.data(), max);
            return makeError(ErrorCode::kConflict, "rbd",
                             describe(id) + "@" + name + " has clones: " + list);
          }
        }
        if (int rc = rbd_snap_unprotect(image, name.c_str()); rc < 0 && rc != -EINVAL) {
          return std::unexpected(rbdError(rc, "cannot unprotect " + describe(id) + "@" + name));
        }
      }
      if (int rc = rbd_snap_remove(image, name.c_str()); rc < 0 && rc != -ENOENT) {
        return std::unexpected(rbdError(rc, "cannot remove " + describe(id) + "@" + name));
      }
    }
    return {};
  }

  RbdOptions options_;
  std::shared_ptr<LibradosCluster> cluster_;
};

class RbdWriter final : public VolumeWriter {
 public:
  RbdWriter(std::unique_ptr<IoCtx> io, std::unique_ptr<Image> image, std::string what)
      : io_(std::move(io)), image_(std::move(image)), what_(std::move(what)) {}

  Status write(uint64_t offset, const void* data, size_t length) override {
    // The volume starts out zeroed: skip zero blocks so that imports stay thin.
    static const char kZeros[64 * 1024] = {};
    const char* p = static_cast<const char*>(data);
    size_t done = 0;
    while (done < length) {
      size_t n = std::min(length - done, sizeof(kZeros));
      if (std::memcmp(p + done, kZeros, n) != 0) {
        ssize_t rc = rbd_write2(image_->image, offset + done, n, p + done, 0);
        if (rc < 0) return std::unexpected(rbdError(static_cast<int>(rc), "cannot write " + what_));
      }
      done += n;
    }
    return {};
  }

  Status finish() override {
    if (int rc = rbd_flush(image_->image); rc < 0) {
      return std::unexpected(rbdError(rc, "cannot flush " + what_));
    }
    return {};
  }

 private:
  std::unique_ptr<IoCtx> io_;
  std::unique_ptr<Image> image_;
  std::string what_;
};

Result<std::unique_ptr<VolumeWriter>> RbdDriver::openWriter(const VolumeId& id) {
  auto io = std::make_unique<IoCtx>();
  auto image = std::make_unique<Image>();
  if (auto opened = openImage(id, io.get(), image.get()); !opened) {
    return std::unexpected(opened.error());
  }
  return std::unique_ptr<VolumeWriter>(
      std::make_unique<RbdWriter>(std::move(io), std::move(image), describe(id)));
}

}  // namespace

Result<std::unique_ptr<VolumeDriver>> makeRbdDriver(const RbdOptions& options) {
  if (options.conf.empty() || options.pool.empty() || options.user.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "rbd", "ceph.conf, pool and user are needed");
  }
  return std::unique_ptr<VolumeDriver>(std::make_unique<RbdDriver>(options));
}

}  // namespace qiao
