// The untrusted-image probe: Qiao's own parser that decides, from an uploaded disk image's
// content alone, what format it is (raw, qcow2, ISO 9660) and whether it is safe to hand to
// QEMU. It refuses what would let a guest image reach outside itself (qcow2 backing files,
// external data files), what Qiao cannot open (encryption), and what would make QEMU allocate
// or read absurd amounts (huge sizes, tables beyond the file). It never trusts QEMU to probe:
// a raw image whose content looks like qcow2 is refused rather than opened as qcow2.
//
// The probe reads only the few header structures it checks, never past the source's size, never
// allocates more than a few MB whatever the header fields say, and runs in bounded time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.h"
#include "base/handle.h"

namespace qiao {

enum class ImageFormat { kRaw, kQcow2, kIso };

std::string_view imageFormatName(ImageFormat f);                // "raw" | "qcow2" | "iso"
std::optional<ImageFormat> parseImageFormat(std::string_view);  // inverse; nullopt if unknown

struct ProbeLimits {
  int64_t max_virtual_size = int64_t{2} << 40;  // 2 TiB
};

struct ProbeResult {
  ImageFormat format = ImageFormat::kRaw;
  int64_t virtual_size = 0;  // bytes the guest sees (raw/iso: file size)
  int64_t file_size = 0;
  int qcow2_version = 0;  // 2 or 3 for qcow2, else 0
  int cluster_bits = 0;
};

// Positioned reads of an image. The probe never reads past size().
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual uint64_t size() const = 0;
  // Reads up to len bytes at offset; a short read happens only at the end of the source.
  virtual Result<size_t> readAt(uint64_t offset, void* buf, size_t len) = 0;
};

// A regular file, opened with O_RDONLY|O_NOFOLLOW|O_CLOEXEC (and O_NONBLOCK, so that a FIFO
// planted under the name cannot block the open). Its size is taken once, at open.
class FileImageSource final : public ImageSource {
 public:
  static Result<FileImageSource> open(const std::string& path);
  // Takes an already open fd; refused unless it is a regular file.
  static Result<FileImageSource> fromFd(UniqueFd fd, std::string name);

  uint64_t size() const override { return size_; }
  Result<size_t> readAt(uint64_t offset, void* buf, size_t len) override;

 private:
  FileImageSource(UniqueFd fd, std::string name, uint64_t size)
      : fd_(std::move(fd)), name_(std::move(name)), size_(size) {}

  UniqueFd fd_;
  std::string name_;
  uint64_t size_ = 0;
};

// Bytes in memory (tests, the fuzzer). Does not own them.
class MemoryImageSource final : public ImageSource {
 public:
  explicit MemoryImageSource(std::string_view data) : data_(data) {}

  uint64_t size() const override { return data_.size(); }
  Result<size_t> readAt(uint64_t offset, void* buf, size_t len) override;

 private:
  std::string_view data_;
};

// Detects the format from the content and validates it; kInvalidArgument naming the problem
// when the image is refused.
Result<ProbeResult> probeImage(ImageSource& src, const ProbeLimits& limits);
Result<ProbeResult> probeImageFile(const std::string& path, const ProbeLimits& limits);

// The detected format must agree with what the caller declared (declared may be empty = none)
// and with the file name's extension when it has a known one (.qcow2/.qcow -> qcow2, .iso ->
// iso, .raw -> raw, .img -> raw or qcow2); else kInvalidArgument saying what was detected and
// what was claimed.
Status checkImageClaims(const ProbeResult& detected, std::string_view declared_format,
                        std::string_view file_name);

}  // namespace qiao
