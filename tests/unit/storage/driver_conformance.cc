#include "tests/unit/storage/driver_conformance.h"

#include <algorithm>

namespace qiao::testing {
namespace {

constexpr int64_t kMiB = 1 << 20;

#define ASSERT_OK(expr)                                                     \
  do {                                                                      \
    auto _r = (expr);                                                       \
    ASSERT_TRUE(_r.has_value()) << #expr << ": " << _r.error().describe(); \
  } while (0)

void writeAt(VolumeDriver& d, const VolumeId& v, uint64_t offset, const std::string& data) {
  auto writer = d.openWriter(v);
  ASSERT_TRUE(writer.has_value()) << writer.error().describe();
  ASSERT_OK((*writer)->write(offset, data.data(), data.size()));
  ASSERT_OK((*writer)->finish());
}

std::string readAt(VolumeDriver& d, const VolumeId& v, uint64_t offset, size_t n) {
  auto data = d.read(v, offset, n);
  EXPECT_TRUE(data.has_value()) << data.error().describe();
  return data ? *data : std::string();
}

TEST_P(DriverConformance, CreateIsIdempotentResizeOnlyGrowsRemoveIsFinal) {
  auto v = id("tenant-a", "vol-size");
  ASSERT_OK(driver_->create(v, 8 * kMiB));
  ASSERT_OK(driver_->create(v, 8 * kMiB));  // a step run again
  auto other = driver_->create(v, 16 * kMiB);
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kConflict);

  auto stat = driver_->stat(v);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->size_bytes, 8 * kMiB);
  EXPECT_EQ(stat->parent, "");

  ASSERT_OK(driver_->resize(v, 24 * kMiB));
  EXPECT_EQ(driver_->stat(v)->size_bytes, 24 * kMiB);
  ASSERT_OK(driver_->resize(v, 24 * kMiB));
  auto shrink = driver_->resize(v, 4 * kMiB);
  ASSERT_FALSE(shrink.has_value());
  EXPECT_EQ(shrink.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(driver_->stat(v)->size_bytes, 24 * kMiB);

  ASSERT_OK(driver_->remove(v));
  auto gone = driver_->stat(v);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  ASSERT_OK(driver_->remove(v));  // again: nothing to do
}

TEST_P(DriverConformance, WritesReadBackAndUnwrittenRangesAreZero) {
  auto v = id("tenant-a", "vol-data");
  ASSERT_OK(driver_->create(v, 8 * kMiB));
  writeAt(*driver_, v, 0, pattern('x', 4096));
  writeAt(*driver_, v, 5 * kMiB, pattern('y', 70000));
  EXPECT_EQ(readAt(*driver_, v, 0, 4096), pattern('x', 4096));
  EXPECT_EQ(readAt(*driver_, v, 5 * kMiB, 70000), pattern('y', 70000));
  EXPECT_EQ(readAt(*driver_, v, 1 * kMiB, 4096), pattern('\0', 4096));
  // Reads stop at the end of the volume.
  EXPECT_EQ(readAt(*driver_, v, 8 * kMiB - 100, 4096).size(), 100u);
}

TEST_P(DriverConformance, ClonesOfAGoldenSnapshotShareItsDataButNotTheirWrites) {
  auto golden = id("", "img-golden");
  ASSERT_OK(driver_->create(golden, 8 * kMiB));
  writeAt(*driver_, golden, 0, pattern('G', 65536));
  ASSERT_OK(driver_->createGoldenSnapshot(golden, "golden"));
  ASSERT_OK(driver_->createGoldenSnapshot(golden, "golden"));  // idempotent

  auto a = id("tenant-a", "vol-clone");
  auto b = id("tenant-b", "vol-clone");
  ASSERT_OK(driver_->clone(golden, "golden", a));
  ASSERT_OK(driver_->clone(golden, "golden", a));  // a step run again
  ASSERT_OK(driver_->clone(golden, "golden", b));
  EXPECT_EQ(readAt(*driver_, a, 0, 65536), pattern('G', 65536));
  EXPECT_EQ(readAt(*driver_, b, 0, 65536), pattern('G', 65536));
  EXPECT_NE(driver_->stat(a)->parent, "");

  writeAt(*driver_, a, 0, pattern('A', 4096));
  EXPECT_EQ(readAt(*driver_, a, 0, 4096), pattern('A', 4096));
  EXPECT_EQ(readAt(*driver_, b, 0, 4096), pattern('G', 4096));
  EXPECT_EQ(readAt(*driver_, golden, 0, 4096), pattern('G', 4096));

  // A clone grows past its parent's size.
  ASSERT_OK(driver_->resize(b, 32 * kMiB));
  EXPECT_EQ(driver_->stat(b)->size_bytes, 32 * kMiB);
  EXPECT_EQ(readAt(*driver_, b, 0, 4096), pattern('G', 4096));

  // A clone that is not a clone of this snapshot is not taken for one.
  auto plain = id("tenant-a", "vol-plain");
  ASSERT_OK(driver_->create(plain, 8 * kMiB));
  auto clash = driver_->clone(golden, "golden", plain);
  ASSERT_FALSE(clash.has_value());
  EXPECT_EQ(clash.error().code, ErrorCode::kConflict);

  // Flattened clones keep their data and free the parent.
  ASSERT_OK(driver_->flatten(a));
  ASSERT_OK(driver_->flatten(b));
  EXPECT_EQ(driver_->stat(a)->parent, "");
  EXPECT_EQ(readAt(*driver_, a, 0, 4096), pattern('A', 4096));
  EXPECT_EQ(readAt(*driver_, b, 4096, 4096), pattern('G', 4096));
  ASSERT_OK(driver_->remove(golden));
  EXPECT_EQ(readAt(*driver_, b, 0, 4096), pattern('G', 4096));
}

TEST_P(DriverConformance, NamespacesKeepTenantsApart) {
  auto a = id("tenant-a", "vol-same");
  auto b = id("tenant-b", "vol-same");
  ASSERT_OK(driver_->create(a, 4 * kMiB));
  ASSERT_OK(driver_->create(b, 8 * kMiB));
  writeAt(*driver_, a, 0, pattern('a', 512));
  EXPECT_EQ(readAt(*driver_, b, 0, 512), pattern('\0', 512));
  auto list_a = driver_->list("tenant-a");
  ASSERT_TRUE(list_a.has_value());
  EXPECT_NE(std::find(list_a->begin(), list_a->end(), a.name), list_a->end());
  auto list_c = driver_->list("tenant-c-" + suffix_);
  ASSERT_TRUE(list_c.has_value());
  EXPECT_TRUE(list_c->empty());
  ASSERT_OK(driver_->remove(a));
  EXPECT_EQ(driver_->stat(b)->size_bytes, 8 * kMiB);
  auto missing = driver_->stat(VolumeId{"tenant-c-" + suffix_, a.name});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_P(DriverConformance, IoLimitsAreKeptWithTheVolume) {
  auto v = id("tenant-a", "vol-qos");
  ASSERT_OK(driver_->create(v, 4 * kMiB));
  EXPECT_EQ(*driver_->qos(v), VolumeQos{});
  ASSERT_OK(driver_->setQos(v, VolumeQos{500, 10 * kMiB}));
  EXPECT_EQ(*driver_->qos(v), (VolumeQos{500, 10 * kMiB}));
  ASSERT_OK(driver_->setQos(v, VolumeQos{0, 1 * kMiB}));
  EXPECT_EQ(*driver_->qos(v), (VolumeQos{0, 1 * kMiB}));
}

TEST_P(DriverConformance, DiskSourceNamesTheVolume) {
  auto v = id("tenant-a", "vol-src");
  auto source = driver_->diskSource(v);
  if (source.type == "rbd") {
    EXPECT_EQ(source.ns, "tenant-a");
    EXPECT_EQ(source.image, v.name);
    EXPECT_FALSE(source.pool.empty());
  } else {
    EXPECT_EQ(source.type, "file");
    EXPECT_NE(source.path.find("/tenant-a/" + v.name), std::string::npos);
  }
}

}  // namespace
}  // namespace qiao::testing
