// The local directory driver: the conformance suite, and what is particular to files.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/storage/driver_conformance.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;

fs::path testDir() {
  static const fs::path dir =
      fs::temp_directory_path() / ("qiao-local-driver-" + std::to_string(::getpid()));
  return dir;
}

std::unique_ptr<VolumeDriver> makeLocal() {
  auto driver = makeLocalDriver(testDir().string());
  return driver ? std::move(*driver) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Local, DriverConformance, ::testing::Values(DriverFactory(makeLocal)));

TEST(LocalDriver, VolumesAreSparseAndClonesStayThin) {
  auto driver = makeLocal();
  VolumeId golden{"", "img-thin"};
  VolumeId clone{"t1", "vol-thin"};
  ASSERT_TRUE(driver->create(golden, int64_t{1} << 30).has_value());
  auto writer = driver->openWriter(golden);
  std::string data(4096, 'z');
  ASSERT_TRUE((*writer)->write(0, data.data(), data.size()).has_value());
  ASSERT_TRUE((*writer)->finish().has_value());
  ASSERT_TRUE(driver->createGoldenSnapshot(golden, "golden").has_value());
  ASSERT_TRUE(driver->clone(golden, "golden", clone).has_value());
  struct stat st{};
  ASSERT_EQ(::stat(driver->diskSource(clone).path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, int64_t{1} << 30);
  EXPECT_LT(st.st_blocks * 512, 16 << 20) << "a 1 GiB clone of 4 KiB of data is not thin";
  // The golden snapshot cannot be written through its path.
  fs::path snap = fs::path(driver->diskSource(golden).path).parent_path() / "img-thin@golden.raw";
  EXPECT_EQ(fs::status(snap).permissions() & fs::perms::owner_write, fs::perms::none);
  ASSERT_TRUE(driver->remove(clone).has_value());
  ASSERT_TRUE(driver->remove(golden).has_value());
  EXPECT_FALSE(fs::exists(snap));
}

class CleanUp : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(testDir()); }
};
const auto* const kCleanUp = ::testing::AddGlobalTestEnvironment(new CleanUp);

}  // namespace
}  // namespace qiao::testing

namespace qiao::testing {
namespace {

TEST(CephKeyring, TheUsersKeyIsReadAndNothingElse) {
  const fs::path file = testDir().string() + "-keyring";
  {
    std::ofstream out(file);
    out << "[client.admin]\n\tkey = AQBadmin==\n[client.qiao]\n\tcaps mon = \"profile rbd\"\n"
        << "\tkey = AQCqiaoKey+/09==\n";
  }
  auto key = readCephKey(file.string(), "qiao");
  ASSERT_TRUE(key.has_value()) << key.error().describe();
  EXPECT_EQ(*key, "AQCqiaoKey+/09==");
  EXPECT_EQ(readCephKey(file.string(), "other").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(readCephKey("/nonexistent/keyring", "qiao").error().code, ErrorCode::kUnavailable);
  {
    std::ofstream out(file);
    out << "[client.qiao]\nkey = AQ\"; rm -rf /\n";
  }
  EXPECT_EQ(readCephKey(file.string(), "qiao").error().code, ErrorCode::kInvalidArgument);
  fs::remove(file);
}

}  // namespace
}  // namespace qiao::testing
