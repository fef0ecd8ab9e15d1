// The local directory driver: <dir>/<namespace>/<name>.raw, sparse raw files. A golden
// snapshot is a read-only hard link (<name>@<snap>.raw; the image never changes after its
// import), a clone a sparse copy of it (no backing chain for QEMU to follow), so flatten has
// nothing to do. I/O limits are kept beside the file (<name>.qos) for libvirt's <iotune>.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "base/handle.h"
#include "storage/volume_driver.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

// The public namespace's folder: tenants are DNS labels, so no tenant is called this.
constexpr const char* kPublicDir = "_public";

Error fileError(int err, const std::string& what) {
  ErrorCode code = err == ENOENT ? ErrorCode::kNotFound
                   : err == EEXIST ? ErrorCode::kConflict
                                   : ErrorCode::kInternal;
  return Error{code, "local-volume", what + ": " + std::strerror(err), {}};
}

class LocalWriter final : public VolumeWriter {
 public:
  LocalWriter(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Status write(uint64_t offset, const void* data, size_t length) override {
    static const char kZeros[64 * 1024] = {};
    const char* p = static_cast<const char*>(data);
    size_t done = 0;
    while (done < length) {
      size_t n = std::min(length - done, sizeof(kZeros));
      if (std::memcmp(p + done, kZeros, n) != 0) {  // holes stay holes
        size_t written = 0;
        while (written < n) {
          ssize_t rc = ::pwrite(fd_.get(), p + done + written, n - written,
                                static_cast<off_t>(offset + done + written));
          if (rc < 0) {
            if (errno == EINTR) continue;
            return std::unexpected(fileError(errno, "cannot write " + path_));
          }
          written += static_cast<size_t>(rc);
        }
      }
      done += n;
    }
    return {};
  }
  Status finish() override {
    if (::fsync(fd_.get()) != 0) return std::unexpected(fileError(errno, "cannot sync " + path_));
    return {};
  }

 private:
  UniqueFd fd_;
  std::string path_;
};

class LocalDriver final : public VolumeDriver {
 public:
  explicit LocalDriver(std::string dir) : dir_(std::move(dir)) {}

  std::string_view backend() const override { return "local"; }
  std::string location() const override { return dir_; }

  Status ping() override {
    struct stat st{};
    if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return makeError(ErrorCode::kUnavailable, "local-volume", dir_ + " is not a directory");
    }
    return {};
  }

  Status create(const VolumeId& id, int64_t size_bytes) override {
    std::error_code ec;
    fs::create_directories(nsDir(id.ns), ec);
    const std::string path = pathOf(id);
    const std::string tmp = path + ".creating";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return std::unexpected(fileError(errno, "cannot create " + tmp));
    if (::ftruncate(fd.get(), size_bytes) != 0 || ::fsync(fd.get()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return std::unexpected(fileError(err, "cannot size " + tmp));
    }
    // link() fails on an existing name, so a concurrent or repeated create never truncates
    // a volume that holds data.
    int rc = ::link(tmp.c_str(), path.c_str());
    int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0 && err == EEXIST) {
      auto existing = stat(id);
      if (existing && existing->size_bytes == size_bytes) return {};
      return makeError(ErrorCode::kConflict, "local-volume",
                       path + " already exists with another size");
    }
    if (rc != 0) return std::unexpected(fileError(err, "cannot create " + path));
    return {};
  }

  Result<VolumeStat> stat(const VolumeId& id) override {
    struct stat st{};
    const std::string path = pathOf(id);
    if (::lstat(path.c_str(), &st) != 0) return std::unexpected(fileError(errno, path));
    VolumeStat out;
    out.size_bytes = st.st_size;
    std::ifstream parent(path + ".parent");
    std::getline(parent, out.parent);
    return out;
  }

  Status resize(const VolumeId& id, int64_t size_bytes) override {
    auto current = stat(id);
    if (!current) return std::unexpected(current.error());
    if (size_bytes == current->size_bytes) return {};
    if (size_bytes < current->size_bytes) {
      return makeError(ErrorCode::kInvalidArgument, "local-volume",
                       id.describe() + " is " + std::to_string(current->size_bytes) +
                           " bytes; volumes only grow");
    }
    if (::truncate(pathOf(id).c_str(), size_bytes) != 0) {
      return std::unexpected(fileError(errno, "cannot resize " + pathOf(id)));
    }
    return {};
  }

  Status remove(const VolumeId& id) override {
    const std::string path = pathOf(id);
    std::error_code ec;
    // Golden snapshots: "<name>@<snap>.raw"; clones are copies, so nothing depends on them.
    const std::string prefix = id.name + "@";
    for (const auto& entry : fs::directory_iterator(nsDir(id.ns), ec)) {
      const std::string file = entry.path().filename().string();
      if (file.starts_with(prefix)) fs::remove(entry.path(), ec);
    }
    for (const char* suffix : {".qos", ".parent"}) fs::remove(path + suffix, ec);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return std::unexpected(fileError(errno, "cannot remove " + path));
    }
    return {};
  }

  Result<std::vector<std::string>> watchers(const VolumeId& id) override {
    if (auto s = stat(id); !s) return std::unexpected(s.error());
    return std::vector<std::string>();  // a file has no watchers; the store knows its users
  }

  Status setQos(const VolumeId& id, const VolumeQos& qos) override {
    if (auto s = stat(id); !s) return std::unexpected(s.error());
    std::ofstream out(pathOf(id) + ".qos", std::ios::trunc);
    out << qos.iops << " " << qos.bytes_per_sec << " " << qos.read_iops << " " << qos.write_iops
        << " " << qos.read_bytes_per_sec << " " << qos.write_bytes_per_sec << "\n";
    if (!out.flush()) return makeError(ErrorCode::kInternal, "local-volume", "cannot write qos");
    return {};
  }

  Result<VolumeQos> qos(const VolumeId& id) override {
    if (auto s = stat(id); !s) return std::unexpected(s.error());
    VolumeQos qos;
    std::ifstream in(pathOf(id) + ".qos");
    in >> qos.iops >> qos.bytes_per_sec;
    // Files written before reads and writes had limits of their own end here.
    if (!(in >> qos.read_iops >> qos.write_iops >> qos.read_bytes_per_sec >>
          qos.write_bytes_per_sec)) {
      qos.read_iops = qos.write_iops = qos.read_bytes_per_sec = qos.write_bytes_per_sec = 0;
    }
    return qos;
  }

  Status createGoldenSnapshot(const VolumeId& id, const std::string& snapshot) override {
    const std::string path = pathOf(id);
    const std::string snap = snapPath(id, snapshot);
    if (::link(path.c_str(), snap.c_str()) != 0 && errno != EEXIST) {
      return std::unexpected(fileError(errno, "cannot snapshot " + path));
    }
    ::chmod(snap.c_str(), 0400);
    return {};
  }

  Status clone(const VolumeId& parent, const std::string& snapshot,
               const VolumeId& child) override {
    const std::string from = snapPath(parent, snapshot);
    const std::string to = pathOf(child);
    const std::string origin = parent.ns + "/" + parent.name + "@" + snapshot;
    if (auto existing = stat(child)) {
      if (existing->parent == origin) return {};
      return makeError(ErrorCode::kConflict, "local-volume",
                       to + " already exists and is not a clone of " + origin);
    }
    std::error_code ec;
    fs::create_directories(nsDir(child.ns), ec);
    UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!in.valid()) return std::unexpected(fileError(errno, "cannot open " + from));
    const std::string tmp = to + ".cloning";
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out.valid()) return std::unexpected(fileError(errno, "cannot create " + tmp));
    if (auto copied = sparseCopy(in.get(), out.get(), from); !copied) {
      ::unlink(tmp.c_str());
      return copied;
    }
    {
      std::ofstream mark(to + ".parent", std::ios::trunc);
      mark << origin << "\n";
    }
    if (::rename(tmp.c_str(), to.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return std::unexpected(fileError(err, "cannot create " + to));
    }
    return {};
  }

  Status flatten(const VolumeId& id) override {
    if (auto s = stat(id); !s) return std::unexpected(s.error());
    std::error_code ec;
    fs::remove(pathOf(id) + ".parent", ec);
    return {};
  }

  Result<std::unique_ptr<VolumeWriter>> openWriter(const VolumeId& id) override {
    const std::string path = pathOf(id);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return std::unexpected(fileError(errno, "cannot open " + path));
    return std::unique_ptr<VolumeWriter>(std::make_unique<LocalWriter>(std::move(fd), path));
  }

  Result<std::string> read(const VolumeId& id, uint64_t offset, size_t length) override {
    const std::string path = pathOf(id);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return std::unexpected(fileError(errno, "cannot open " + path));
    std::string out(length, '\0');
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(fd.get(), out.data() + done, length - done,
                          static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::unexpected(fileError(errno, "cannot read " + path));
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    out.resize(done);
    return out;
  }

  Result<std::vector<std::string>> list(const std::string& ns) override {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(nsDir(ns), ec)) {
      const std::string file = entry.path().filename().string();
      if (file.ends_with(".raw") && file.find('@') == std::string::npos) {
        names.push_back(file.substr(0, file.size() - 4));
      }
    }
    return names;
  }

  DiskSource diskSource(const VolumeId& id) const override {
    DiskSource source;
    source.type = "file";
    source.path = pathOf(id);
    return source;
  }

 private:
  std::string nsDir(const std::string& ns) const {
    return dir_ + "/" + (ns.empty() ? kPublicDir : ns);
  }
  std::string pathOf(const VolumeId& id) const { return nsDir(id.ns) + "/" + id.name + ".raw"; }
  std::string snapPath(const VolumeId& id, const std::string& snap) const {
    return nsDir(id.ns) + "/" + id.name + "@" + snap + ".raw";
  }

  // Copies data extents only (SEEK_DATA/SEEK_HOLE), so a thin image stays thin; a reflink
  // first where the file system has it.
  static Status sparseCopy(int in, int out, const std::string& what) {
    if (::ioctl(out, FICLONE, in) == 0) return {};
    struct stat st{};
    if (::fstat(in, &st) != 0) return std::unexpected(fileError(errno, what));
    if (::ftruncate(out, st.st_size) != 0) return std::unexpected(fileError(errno, what));
    off_t pos = 0;
    std::vector<char> buf(1 << 20);
    while (pos < st.st_size) {
      off_t data = ::lseek(in, pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: only a hole is left
      off_t hole = ::lseek(in, data, SEEK_HOLE);
      if (hole < 0) hole = st.st_size;
      for (off_t at = data; at < hole;) {
        size_t want = static_cast<size_t>(std::min<off_t>(hole - at, static_cast<off_t>(buf.size())));
        ssize_t n = ::pread(in, buf.data(), want, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::unexpected(fileError(n < 0 ? errno : EIO, "cannot read " + what));
        for (ssize_t w = 0; w < n;) {
          ssize_t m = ::pwrite(out, buf.data() + w, static_cast<size_t>(n - w), at + w);
          if (m < 0 && errno == EINTR) continue;
          if (m < 0) return std::unexpected(fileError(errno, "cannot copy " + what));
          w += m;
        }
        at += n;
      }
      pos = hole;
    }
    if (::fsync(out) != 0) return std::unexpected(fileError(errno, "cannot sync a copy"));
    return {};
  }

  std::string dir_;
};

}  // namespace

Result<std::unique_ptr<VolumeDriver>> makeLocalDriver(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return makeError(ErrorCode::kInternal, "local-volume",
                     "cannot create " + dir + ": " + ec.message());
  }
  return std::unique_ptr<VolumeDriver>(std::make_unique<LocalDriver>(dir));
}

}  // namespace qiao
