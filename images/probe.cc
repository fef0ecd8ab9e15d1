// The untrusted-image probe (see probe.h). The qcow2 checks follow QEMU's docs/interop/qcow2.txt
// and the limits QEMU itself enforces when it opens an image (QCOW_MAX_L1_SIZE,
// QCOW_MAX_REFTABLE_SIZE, QCOW_MAX_SNAPSHOTS), so that whatever passes here QEMU opens without
// allocating or reading more than those limits, and without following any other file.
#include "images/probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

namespace qiao {
namespace {

constexpr const char* kSubsystem = "images";

std::unexpected<Error> refuse(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, kSubsystem, std::move(message));
}

std::string dec(uint64_t v) { return std::to_string(v); }

std::string hex(uint64_t v) {
  std::array<char, 20> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v, 16);
  return "0x" + std::string(buf.data(), r.ptr);
}

// An untrusted string made fit for a message: printable ASCII only (others become '?'), quotes
// and backslashes escaped, at most max_chars of the original followed by "..." when longer.
std::string sanitize(std::string_view raw, size_t max_chars = 64) {
  std::string out;
  size_t n = std::min(raw.size(), max_chars);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += '?';
    }
  }
  if (raw.size() > max_chars) out += "...";
  return out;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t be64(const uint8_t* p) { return (uint64_t{be32(p)} << 32) | be32(p + 4); }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// Reads exactly len bytes at offset. The range must lie within the source; a source that comes
// up short (it shrank under us) is reported as truncated.
Status readExact(ImageSource& src, uint64_t offset, void* buf, size_t len, std::string_view what) {
  uint64_t end = 0;
  if (__builtin_add_overflow(offset, uint64_t{len}, &end) || end > src.size()) {
    return refuse(std::string(what) + " is truncated: " + dec(len) + " bytes at offset " +
                  dec(offset) + " lie past the end of the file (" + dec(src.size()) + " bytes)");
  }
  auto* out = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    auto n = src.readAt(offset + done, out + done, len - done);
    if (!n) return std::unexpected(n.error());
    if (*n == 0 || *n > len - done) {
      return refuse(std::string(what) + " is truncated: the file ended at offset " +
                    dec(offset + done) + " while reading it");
    }
    done += *n;
  }
  return {};
}

Status checkVirtualSize(std::string_view format, uint64_t size, const ProbeLimits& limits) {
  uint64_t max = static_cast<uint64_t>(std::max<int64_t>(0, limits.max_virtual_size));
  if (size > max) {
    return refuse(std::string(format) + " image has a virtual size of " + dec(size) +
                  " bytes, more than the limit of " + dec(max) + " bytes");
  }
  return {};
}

// ---- raw ----------------------------------------------------------------------------------

Result<ProbeResult> probeRaw(uint64_t file_size, const ProbeLimits& limits) {
  if (file_size == 0)
    return refuse("raw image is empty (0 bytes); a disk needs at least one sector");
  if (file_size % 512 != 0) {
    return refuse("raw image size " + dec(file_size) +
                  " bytes is not a multiple of 512 bytes (the disk sector size); it is probably "
                  "truncated or not a disk image");
  }
  if (auto s = checkVirtualSize("raw", file_size, limits); !s) return std::unexpected(s.error());
  ProbeResult r;
  r.format = ImageFormat::kRaw;
  r.virtual_size = static_cast<int64_t>(file_size);
  r.file_size = static_cast<int64_t>(file_size);
  return r;
}

// ---- ISO 9660 -----------------------------------------------------------------------------

constexpr uint64_t kIsoSector = 2048;
constexpr uint64_t kIsoFirstDescriptor = 16;  // sectors 0-15 are the system area
constexpr uint64_t kIsoMaxDescriptors = 64;   // a real set has a handful
constexpr uint8_t kIsoPrimary = 1;
constexpr uint8_t kIsoTerminator = 255;

bool isoDescriptorTypeSane(uint8_t type) { return type <= 3 || type == kIsoTerminator; }

// Sector 16, bytes 0-6: type, "CD001", version 1.
Result<bool> looksLikeIso(ImageSource& src) {
  uint64_t at = kIsoFirstDescriptor * kIsoSector;
  if (src.size() < at + 7) return false;
  uint8_t d[7];
  if (auto s = readExact(src, at, d, sizeof d, "image"); !s) return std::unexpected(s.error());
  return std::memcmp(d + 1, "CD001", 5) == 0 && d[6] == 1 && isoDescriptorTypeSane(d[0]);
}

Result<ProbeResult> probeIso(ImageSource& src, uint64_t file_size, const ProbeLimits& limits) {
  if (file_size % kIsoSector != 0) {
    return refuse("iso image size " + dec(file_size) + " bytes is not a multiple of its " +
                  dec(kIsoSector) + "-byte sectors; it is probably truncated");
  }
  if (file_size < (kIsoFirstDescriptor + 1) * kIsoSector) {
    return refuse("iso image is truncated: " + dec(file_size) +
                  " bytes cannot hold the volume descriptor at sector 16");
  }
  // Walk the volume descriptor set to its terminator; the first primary descriptor counts.
  std::vector<uint8_t> sector(kIsoSector);
  bool found = false;
  bool terminated = false;
  uint32_t blocks = 0;
  uint16_t block_size = 0;
  for (uint64_t i = 0; i < kIsoMaxDescriptors && !terminated; ++i) {
    uint64_t at = (kIsoFirstDescriptor + i) * kIsoSector;
    if (at + kIsoSector > file_size) {
      return refuse(
          "iso image is truncated: its volume descriptor set runs past the end of the "
          "file");
    }
    if (auto s = readExact(src, at, sector.data(), sector.size(), "iso image"); !s) {
      return std::unexpected(s.error());
    }
    if (std::memcmp(sector.data() + 1, "CD001", 5) != 0 || sector[6] != 1 ||
        !isoDescriptorTypeSane(sector[0])) {
      return refuse("iso image has a malformed volume descriptor at sector " +
                    dec(kIsoFirstDescriptor + i));
    }
    terminated = sector[0] == kIsoTerminator;
    if (sector[0] != kIsoPrimary || found) continue;
    found = true;
    // Both-endian fields: little-endian copy first, big-endian second; they must agree.
    blocks = le32(sector.data() + 80);
    block_size = le16(sector.data() + 128);
    if (blocks != be32(sector.data() + 84) || block_size != be16(sector.data() + 130)) {
      return refuse(
          "iso image's primary volume descriptor is inconsistent: its little- and "
          "big-endian volume space size or block size differ");
    }
  }
  if (!found) return refuse("iso image has no primary volume descriptor");
  if (!terminated) {
    return refuse("iso image's volume descriptor set has no terminator in its first " +
                  dec(kIsoMaxDescriptors) + " sectors");
  }
  if (block_size < 512 || block_size > kIsoSector || (block_size & (block_size - 1)) != 0) {
    return refuse("iso image has an invalid logical block size of " + dec(block_size) + " bytes");
  }
  uint64_t claimed = uint64_t{blocks} * block_size;
  if (claimed > file_size) {
    return refuse("iso image is truncated: its volume descriptor claims " + dec(blocks) +
                  " blocks of " + dec(block_size) + " bytes (" + dec(claimed) +
                  " bytes) but the file has " + dec(file_size) + " bytes");
  }
  if (auto s = checkVirtualSize("iso", file_size, limits); !s) return std::unexpected(s.error());
  ProbeResult r;
  r.format = ImageFormat::kIso;
  r.virtual_size = static_cast<int64_t>(file_size);
  r.file_size = static_cast<int64_t>(file_size);
  return r;
}

// ---- qcow2 --------------------------------------------------------------------------------

constexpr uint8_t kQcow2Magic[4] = {'Q', 'F', 'I', 0xfb};
constexpr uint64_t kQcow2V2HeaderSize = 72;
constexpr uint64_t kQcow2V3HeaderSize = 104;
constexpr uint32_t kMinClusterBits = 9;
constexpr uint32_t kMaxClusterBits = 21;
constexpr uint64_t kMaxL1Entries = (uint64_t{32} << 20) / 8;    // QEMU's QCOW_MAX_L1_SIZE
constexpr uint64_t kMaxRefcountTableBytes = uint64_t{8} << 20;  // QCOW_MAX_REFTABLE_SIZE
constexpr uint32_t kMaxSnapshots = 65536;                       // QCOW_MAX_SNAPSHOTS
constexpr uint64_t kMinSnapshotEntry = 40;  // the fixed part of a snapshot table entry
constexpr uint32_t kMaxRefcountOrder = 6;
constexpr int kMaxExtensions = 1024;

constexpr uint64_t kIncompatDirty = 1u << 0;
constexpr uint64_t kIncompatCorrupt = 1u << 1;
constexpr uint64_t kIncompatDataFile = 1u << 2;
constexpr uint64_t kIncompatCompression = 1u << 3;
constexpr uint64_t kIncompatExtendedL2 = 1u << 4;
constexpr uint64_t kIncompatKnown = kIncompatDirty | kIncompatCorrupt | kIncompatDataFile |
                                    kIncompatCompression | kIncompatExtendedL2;

constexpr uint32_t kExtEnd = 0x00000000;
constexpr uint32_t kExtBackingFormat = 0xe2792aca;
constexpr uint32_t kExtFeatureTable = 0x6803f857;
constexpr uint32_t kExtBitmaps = 0x23852875;
constexpr uint32_t kExtFullDiskEncryption = 0x0537be77;
constexpr uint32_t kExtDataFile = 0x44415441;

struct Qcow2Header {
  uint32_t version = 0;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 0;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  // Version 3; a version 2 header has the values these defaults give.
  uint64_t incompatible_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kQcow2V2HeaderSize;
  uint8_t compression_type = 0;
};

std::string truncatedTable(std::string_view what, uint64_t offset, uint64_t bytes,
                           uint64_t file_size) {
  return "qcow2 image is truncated: its " + std::string(what) + " (offset " + dec(offset) + ", " +
         dec(bytes) + " bytes) ends past the end of the file (" + dec(file_size) + " bytes)";
}

// A table at offset of `bytes` bytes: cluster aligned, not in the header cluster, inside the file.
Status checkTable(std::string_view what, uint64_t offset, uint64_t bytes, uint64_t cluster_size,
                  uint64_t file_size) {
  if (offset == 0) return refuse("qcow2 image has no " + std::string(what) + " (offset 0)");
  if (offset % cluster_size != 0) {
    return refuse("qcow2 image's " + std::string(what) + " offset " + hex(offset) +
                  " is not aligned to its " + dec(cluster_size) + "-byte clusters");
  }
  uint64_t end = 0;
  if (__builtin_add_overflow(offset, bytes, &end) || end > file_size) {
    return refuse(truncatedTable(what, offset, bytes, file_size));
  }
  return {};
}

// The backing file's name for the refusal message, when it lies within the file.
std::string describeBacking(ImageSource& src, const Qcow2Header& h, uint64_t file_size) {
  if (h.backing_file_offset == 0 || h.backing_file_size == 0) {
    return "backing_file_offset " + hex(h.backing_file_offset) + ", backing_file_size " +
           dec(h.backing_file_size);
  }
  uint64_t end = 0;
  if (__builtin_add_overflow(h.backing_file_offset, uint64_t{h.backing_file_size}, &end) ||
      end > file_size) {
    return "its name at offset " + dec(h.backing_file_offset) + " (" + dec(h.backing_file_size) +
           " bytes) lies outside the file";
  }
  // One byte more than is shown, so that sanitize() knows to add "...".
  std::string name(std::min<uint64_t>(h.backing_file_size, 65), '\0');
  if (!readExact(src, h.backing_file_offset, name.data(), name.size(), "qcow2 image")) {
    return "its name could not be read";
  }
  return "\"" + sanitize(name) + "\"";
}

Status checkIncompatibleFeatures(const Qcow2Header& h) {
  uint64_t f = h.incompatible_features;
  if ((f & ~kIncompatKnown) != 0) {
    return refuse("qcow2 image uses unknown incompatible features (bits " +
                  hex(f & ~kIncompatKnown) + "); it needs a newer QEMU than Qiao knows about");
  }
  if (f & kIncompatCorrupt) {
    return refuse(
        "qcow2 image is marked corrupt; repair it with qemu-img check -r all before "
        "uploading it");
  }
  if (f & kIncompatDataFile) {
    return refuse(
        "qcow2 image uses an external data file; images whose data lies in another "
        "file are refused");
  }
  if (f & kIncompatDirty) {
    return refuse(
        "qcow2 image is dirty: needs a repair by qemu-img check -r all (it was not "
        "closed cleanly with lazy refcounts)");
  }
  if (f & kIncompatCompression) {
    if (h.header_length <= 104) {
      return refuse("qcow2 image sets the compression type feature but its header (" +
                    dec(h.header_length) + " bytes) has no compression type field");
    }
    if (h.compression_type > 1) {
      return refuse("qcow2 image uses unknown compression type " + dec(h.compression_type) +
                    " (only zlib (0) and zstd (1) are supported)");
    }
  } else if (h.compression_type != 0) {
    return refuse("qcow2 image has compression type " + dec(h.compression_type) +
                  " without the compression type feature bit");
  }
  return {};
}

// Header extensions: from the end of the header to the end of the first cluster (or of the
// file, if it is shorter), each {u32 type, u32 length, data padded to 8 bytes}, until type 0.
Status checkExtensions(ImageSource& src, const Qcow2Header& h, uint64_t cluster_size,
                       uint64_t file_size) {
  const uint64_t start = h.header_length;
  const uint64_t end = std::min(cluster_size, file_size);
  const char* bound = cluster_size <= file_size ? "the first cluster" : "the end of the file";
  if (start >= end) return {};
  // At most one cluster, so at most 2 MiB.
  std::vector<uint8_t> area(end - start);
  if (auto s = readExact(src, start, area.data(), area.size(), "qcow2 image"); !s) return s;
  uint64_t off = start;
  for (int count = 0;; ++count) {
    if (off == end) return {};  // no end marker, but nothing past the cluster either (as QEMU)
    if (count >= kMaxExtensions) {
      return refuse("qcow2 image has more than " + dec(kMaxExtensions) + " header extensions");
    }
    if (end - off < 8) {
      return refuse("qcow2 header extension at offset " + dec(off) + " runs past " + bound);
    }
    const uint8_t* p = area.data() + (off - start);
    uint32_t type = be32(p);
    uint32_t len = be32(p + 4);
    if (type == kExtEnd) return {};
    uint64_t padded = (uint64_t{len} + 7) & ~uint64_t{7};
    if (padded > end - off - 8) {
      return refuse("qcow2 header extension " + hex(type) + " at offset " + dec(off) + " (" +
                    dec(len) + " bytes) runs past " + bound + " (" + dec(end) + " bytes)");
    }
    std::string_view data(reinterpret_cast<const char*>(p + 8), len);
    switch (type) {
      case kExtBackingFormat:
        return refuse("qcow2 image has a backing format header extension (\"" + sanitize(data) +
                      "\"), which implies a backing file; images with backing files are refused");
      case kExtFullDiskEncryption:
        return refuse(
            "qcow2 image is encrypted (full disk encryption header extension); "
            "encrypted images are refused");
      case kExtDataFile:
        return refuse("qcow2 image names an external data file (\"" + sanitize(data) +
                      "\"); images whose data lies in another file are refused");
      case kExtFeatureTable:
      case kExtBitmaps:
      default: break;  // harmless, or unknown and within bounds: QEMU ignores those too
    }
    off += 8 + padded;
  }
}

Result<ProbeResult> probeQcow2(ImageSource& src, uint64_t file_size, const ProbeLimits& limits) {
  if (file_size < kQcow2V2HeaderSize) {
    return refuse("qcow2 image is truncated: the file has " + dec(file_size) +
                  " bytes, fewer than the " + dec(kQcow2V2HeaderSize) + "-byte header");
  }
  uint8_t b[kQcow2V3HeaderSize + 1] = {};
  if (auto s = readExact(src, 0, b, kQcow2V2HeaderSize, "qcow2 image"); !s) {
    return std::unexpected(s.error());
  }
  Qcow2Header h;
  h.version = be32(b + 4);
  h.backing_file_offset = be64(b + 8);
  h.backing_file_size = be32(b + 16);
  h.cluster_bits = be32(b + 20);
  h.size = be64(b + 24);
  h.crypt_method = be32(b + 32);
  h.l1_size = be32(b + 36);
  h.l1_table_offset = be64(b + 40);
  h.refcount_table_offset = be64(b + 48);
  h.refcount_table_clusters = be32(b + 56);
  h.nb_snapshots = be32(b + 60);
  h.snapshots_offset = be64(b + 64);

  if (h.version != 2 && h.version != 3) {
    return refuse("qcow2 image has version " + dec(h.version) + "; only versions 2 and 3 exist");
  }
  if (h.backing_file_offset != 0 || h.backing_file_size != 0) {
    return refuse("qcow2 image has a backing file (" + describeBacking(src, h, file_size) +
                  "); images with backing files are refused");
  }
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return refuse("qcow2 image has cluster_bits " + dec(h.cluster_bits) + "; it must be between " +
                  dec(kMinClusterBits) + " and " + dec(kMaxClusterBits) +
                  " (512 bytes to 2 MiB clusters)");
  }
  const uint64_t cluster_size = uint64_t{1} << h.cluster_bits;

  if (h.version == 3) {
    if (file_size < kQcow2V3HeaderSize) {
      return refuse("qcow2 image is truncated: the file has " + dec(file_size) +
                    " bytes, fewer than the " + dec(kQcow2V3HeaderSize) + "-byte version 3 header");
    }
    if (auto s = readExact(src, kQcow2V2HeaderSize, b + kQcow2V2HeaderSize,
                           kQcow2V3HeaderSize - kQcow2V2HeaderSize, "qcow2 image");
        !s) {
      return std::unexpected(s.error());
    }
    h.incompatible_features = be64(b + 72);
    h.refcount_order = be32(b + 96);
    h.header_length = be32(b + 100);
    if (h.header_length < kQcow2V3HeaderSize || h.header_length % 8 != 0 ||
        h.header_length > cluster_size) {
      return refuse("qcow2 image has an invalid header_length of " + dec(h.header_length) +
                    " bytes (it must be a multiple of 8 between 104 and the cluster size " +
                    dec(cluster_size) + ")");
    }
    if (file_size < h.header_length) {
      return refuse("qcow2 image is truncated: the file has " + dec(file_size) +
                    " bytes, fewer than its " + dec(h.header_length) + "-byte header");
    }
    if (h.header_length > kQcow2V3HeaderSize) {
      if (auto s = readExact(src, kQcow2V3HeaderSize, b + kQcow2V3HeaderSize, 1, "qcow2 image");
          !s) {
        return std::unexpected(s.error());
      }
      h.compression_type = b[kQcow2V3HeaderSize];
    }
  }

  if (h.crypt_method != 0) {
    std::string kind = h.crypt_method == 1   ? "legacy AES"
                       : h.crypt_method == 2 ? "LUKS"
                                             : "unknown method";
    return refuse("qcow2 image is encrypted (crypt_method " + dec(h.crypt_method) + ", " + kind +
                  "); encrypted images are refused");
  }
  if (h.size == 0) return refuse("qcow2 image has a virtual size of 0 bytes");
  if (auto s = checkVirtualSize("qcow2", h.size, limits); !s) return std::unexpected(s.error());
  if (h.version == 3) {
    if (auto s = checkIncompatibleFeatures(h); !s) return std::unexpected(s.error());
    if (h.refcount_order > kMaxRefcountOrder) {
      return refuse("qcow2 image has refcount_order " + dec(h.refcount_order) +
                    "; at most 6 (64-bit refcounts) is valid");
    }
  }

  // L1 table: enough entries to map the whole virtual disk, no more than QEMU accepts.
  const uint32_t l2_bits =
      h.cluster_bits - ((h.incompatible_features & kIncompatExtendedL2) ? 4 : 3);
  const uint32_t shift = h.cluster_bits + l2_bits;  // bytes mapped by one L1 entry, as a shift
  const uint64_t l1_needed = (h.size >> shift) + ((h.size & ((uint64_t{1} << shift) - 1)) ? 1 : 0);
  if (h.l1_size > kMaxL1Entries) {
    return refuse("qcow2 image has an L1 table of " + dec(h.l1_size) +
                  " entries, more than the limit of " + dec(kMaxL1Entries));
  }
  if (h.l1_size < l1_needed) {
    return refuse("qcow2 image has an L1 table of " + dec(h.l1_size) + " entries, too small for " +
                  "its virtual size of " + dec(h.size) + " bytes (" + dec(l1_needed) + " needed)");
  }
  uint64_t l1_bytes = 0;
  if (__builtin_mul_overflow(uint64_t{h.l1_size}, uint64_t{8}, &l1_bytes)) {
    return refuse("qcow2 image has an L1 table size that overflows");
  }
  if (auto s = checkTable("L1 table", h.l1_table_offset, l1_bytes, cluster_size, file_size); !s) {
    return std::unexpected(s.error());
  }

  // Refcount table.
  if (h.refcount_table_clusters == 0) return refuse("qcow2 image has an empty refcount table");
  uint64_t rt_bytes = 0;
  if (__builtin_mul_overflow(uint64_t{h.refcount_table_clusters}, cluster_size, &rt_bytes) ||
      rt_bytes > kMaxRefcountTableBytes) {
    return refuse("qcow2 image has a refcount table of " + dec(h.refcount_table_clusters) +
                  " clusters, more than the limit of " + dec(kMaxRefcountTableBytes) + " bytes");
  }
  if (auto s =
          checkTable("refcount table", h.refcount_table_offset, rt_bytes, cluster_size, file_size);
      !s) {
    return std::unexpected(s.error());
  }

  // Snapshot table.
  if (h.nb_snapshots > kMaxSnapshots) {
    return refuse("qcow2 image has " + dec(h.nb_snapshots) + " snapshots, more than the limit of " +
                  dec(kMaxSnapshots));
  }
  if (h.nb_snapshots > 0) {
    if (auto s = checkTable("snapshot table", h.snapshots_offset,
                            uint64_t{h.nb_snapshots} * kMinSnapshotEntry, cluster_size, file_size);
        !s) {
      return std::unexpected(s.error());
    }
  } else if (h.snapshots_offset >= file_size && h.snapshots_offset != 0) {
    return refuse("qcow2 image's snapshot table offset " + hex(h.snapshots_offset) +
                  " lies outside the file (" + dec(file_size) + " bytes)");
  }

  if (auto s = checkExtensions(src, h, cluster_size, file_size); !s) {
    return std::unexpected(s.error());
  }

  ProbeResult r;
  r.format = ImageFormat::kQcow2;
  r.virtual_size = static_cast<int64_t>(h.size);
  r.file_size = static_cast<int64_t>(file_size);
  r.qcow2_version = static_cast<int>(h.version);
  r.cluster_bits = static_cast<int>(h.cluster_bits);
  return r;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string_view imageFormatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::kRaw: return "raw";
    case ImageFormat::kQcow2: return "qcow2";
    case ImageFormat::kIso: return "iso";
  }
  return "unknown";
}

std::optional<ImageFormat> parseImageFormat(std::string_view name) {
  for (ImageFormat f : {ImageFormat::kRaw, ImageFormat::kQcow2, ImageFormat::kIso}) {
    if (imageFormatName(f) == name) return f;
  }
  return std::nullopt;
}

Result<FileImageSource> FileImageSource::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    std::string what = "cannot open image " + path + ": ";
    switch (err) {
      case ENOENT: return makeError(ErrorCode::kNotFound, kSubsystem, what + "no such file");
      case ELOOP: return refuse(what + "it is a symbolic link");
      case EACCES:
      case EPERM: return makeError(ErrorCode::kPermissionDenied, kSubsystem, what + strerror(err));
      default: return makeError(ErrorCode::kInternal, kSubsystem, what + strerror(err));
    }
  }
  return fromFd(UniqueFd(fd), path);
}

Result<FileImageSource> FileImageSource::fromFd(UniqueFd fd, std::string name) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return makeError(ErrorCode::kInternal, kSubsystem,
                     "cannot stat image " + name + ": " + strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return refuse("image " + name + " is not a regular file");
  if (st.st_size < 0) return refuse("image " + name + " has a negative size");
  return FileImageSource(std::move(fd), std::move(name), static_cast<uint64_t>(st.st_size));
}

Result<size_t> FileImageSource::readAt(uint64_t offset, void* buf, size_t len) {
  auto* out = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    uint64_t at = offset + done;
    if (at < offset || at > static_cast<uint64_t>(INT64_MAX)) break;
    ssize_t n = ::pread(fd_.get(), out + done, len - done, static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      return makeError(ErrorCode::kInternal, kSubsystem,
                       "reading image " + name_ + " at offset " + dec(at) + ": " + strerror(errno));
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<size_t> MemoryImageSource::readAt(uint64_t offset, void* buf, size_t len) {
  if (offset >= data_.size()) return size_t{0};
  size_t n = std::min<uint64_t>(len, data_.size() - offset);
  std::memcpy(buf, data_.data() + offset, n);
  return n;
}

Result<ProbeResult> probeImage(ImageSource& src, const ProbeLimits& limits) {
  const uint64_t file_size = src.size();
  if (file_size > static_cast<uint64_t>(INT64_MAX)) {
    return refuse("image is larger than any file can be (" + dec(file_size) + " bytes)");
  }
  if (file_size >= sizeof kQcow2Magic) {
    uint8_t magic[sizeof kQcow2Magic];
    if (auto s = readExact(src, 0, magic, sizeof magic, "image"); !s) {
      return std::unexpected(s.error());
    }
    if (std::memcmp(magic, kQcow2Magic, sizeof magic) == 0) {
      return probeQcow2(src, file_size, limits);
    }
  }
  auto iso = looksLikeIso(src);
  if (!iso) return std::unexpected(iso.error());
  if (*iso) return probeIso(src, file_size, limits);
  return probeRaw(file_size, limits);
}

Result<ProbeResult> probeImageFile(const std::string& path, const ProbeLimits& limits) {
  auto src = FileImageSource::open(path);
  if (!src) return std::unexpected(src.error());
  return probeImage(*src, limits);
}

Status checkImageClaims(const ProbeResult& detected, std::string_view declared_format,
                        std::string_view file_name) {
  const std::string_view actual = imageFormatName(detected.format);
  if (!declared_format.empty()) {
    auto declared = parseImageFormat(declared_format);
    if (!declared) {
      return refuse("unknown image format \"" + sanitize(declared_format) +
                    "\" declared; expected raw, qcow2 or iso");
    }
    if (*declared != detected.format) {
      return refuse("image content is " + std::string(actual) + " but it was declared as " +
                    std::string(imageFormatName(*declared)));
    }
  }
  std::string_view base = file_name;
  if (auto slash = base.find_last_of('/'); slash != std::string_view::npos) {
    base = base.substr(slash + 1);
  }
  auto dot = base.find_last_of('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  const std::string ext = lower(base.substr(dot + 1));
  bool known = true;
  bool ok = false;
  if (ext == "qcow2" || ext == "qcow") {
    ok = detected.format == ImageFormat::kQcow2;
  } else if (ext == "iso") {
    ok = detected.format == ImageFormat::kIso;
  } else if (ext == "raw") {
    ok = detected.format == ImageFormat::kRaw;
  } else if (ext == "img") {
    // .img is used for raw disks and, by many cloud images, for qcow2.
    ok = detected.format == ImageFormat::kRaw || detected.format == ImageFormat::kQcow2;
  } else {
    known = false;
  }
  if (known && !ok) {
    return refuse("image content is " + std::string(actual) + " but its file name \"" +
                  sanitize(file_name) + "\" claims ." + ext);
  }
  return {};
}

}  // namespace qiao
