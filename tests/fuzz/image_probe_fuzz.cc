// libFuzzer target: the untrusted-image probe on arbitrary bytes. It must never crash, hang,
// leak or read outside the image; what it accepts must be self-consistent, and what it refuses
// must be refused with an invalid-argument error whose message is printable ASCII (the probe
// puts names taken from the image into its messages, sanitized).
//
// Each input is probed three ways: as it is; zero-extended to a size taken from its last byte, so
// that offsets far beyond the bytes the fuzzer can afford still land "inside the file"; and
// placed at sector 16 (0x8000) of such a zero-filled file, where ISO 9660's volume descriptors
// live, so that small inputs reach the ISO checks.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "images/probe.h"

namespace {

// A file of size bytes: zeros, with data at offset at; aborts on any read past size.
class StrictSource final : public qiao::ImageSource {
 public:
  StrictSource(std::string_view data, uint64_t at, uint64_t size)
      : data_(data), at_(at), size_(size) {}
  uint64_t size() const override { return size_; }
  qiao::Result<size_t> readAt(uint64_t offset, void* buf, size_t len) override {
    if (offset > size_ || len > size_ - offset) std::abort();  // the probe read past the end
    if (len > (uint64_t{64} << 20)) std::abort();              // a read sized by a header field
    auto* out = static_cast<char*>(buf);
    for (size_t i = 0; i < len; ++i) {
      uint64_t pos = offset + i;
      out[i] = pos >= at_ && pos - at_ < data_.size() ? data_[pos - at_] : '\0';
    }
    return len;
  }

 private:
  std::string_view data_;
  uint64_t at_;
  uint64_t size_;
};

bool printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return !s.empty();
}

void check(std::string_view data, uint64_t at, uint64_t size) {
  StrictSource src(data, at, size);
  qiao::ProbeLimits limits;
  auto r = qiao::probeImage(src, limits);
  if (!r) {
    if (r.error().code != qiao::ErrorCode::kInvalidArgument) std::abort();
    if (!printable(r.error().message)) std::abort();
    return;
  }
  if (r->virtual_size <= 0 || r->virtual_size > limits.max_virtual_size) std::abort();
  if (static_cast<uint64_t>(r->file_size) != size) std::abort();
  switch (r->format) {
    case qiao::ImageFormat::kQcow2:
      if (r->qcow2_version != 2 && r->qcow2_version != 3) std::abort();
      if (r->cluster_bits < 9 || r->cluster_bits > 21) std::abort();
      break;
    case qiao::ImageFormat::kRaw:
      if (r->virtual_size != r->file_size || r->file_size % 512 != 0) std::abort();
      if (r->qcow2_version != 0) std::abort();
      break;
    case qiao::ImageFormat::kIso:
      if (r->virtual_size != r->file_size || r->file_size % 2048 != 0) std::abort();
      break;
  }
  if (!qiao::checkImageClaims(*r, qiao::imageFormatName(r->format), "")) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes, 0, size);
  if (size > 0) {
    // The last byte k: a size rounded up to 2048 (a whole number of ISO sectors, so of disk
    // sectors too), plus k sectors when k < 0x80, else 2^(k & 0x3f) bytes (up to 2^42).
    uint8_t k = data[size - 1];
    uint64_t base = (uint64_t{size} + 2047) / 2048 * 2048;
    uint64_t grow = (k & 0x80) ? (uint64_t{1} << (k & 0x3f)) : uint64_t{k} * 2048;
    if (grow <= (uint64_t{1} << 42)) {
      check(bytes, 0, base + grow);
      check(bytes, 0x8000, 0x8000 + base + grow);
    }
  }
  // The claims check on names from the input.
  std::string_view declared = bytes.substr(0, std::min<size_t>(size, 8));
  std::string_view name = size > 8 ? bytes.substr(8, 80) : std::string_view();
  qiao::ProbeResult fake;
  auto s = qiao::checkImageClaims(fake, declared, name);
  if (!s && !printable(s.error().message)) std::abort();
  return 0;
}
