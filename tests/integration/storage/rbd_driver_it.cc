// The RBD driver against the real Ceph of the test stack (scripts/ceph-stack): the same
// conformance suite as the local driver, plus what only Ceph does (watchers, namespaces that
// the restricted client.qiao key is limited to).
#include <cstdlib>
#include <filesystem>

#include "tests/unit/storage/driver_conformance.h"

namespace qiao::testing {
namespace {

RbdOptions cephOptions() {
  RbdOptions options;
  const char* dir = std::getenv("QIAO_CEPH_DIR");
  const std::string base = dir ? dir : "/var/lib/qiao-ceph";
  options.conf = base + "/ceph.conf";
  options.keyring = base + "/client.qiao.keyring";
  options.user = "qiao";
  options.pool = "qiao";
  options.op_timeout_s = 20;
  return options;
}

std::unique_ptr<VolumeDriver> makeRbd() {
  auto driver = makeRbdDriver(cephOptions());
  return driver ? std::move(*driver) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Rbd, DriverConformance, ::testing::Values(DriverFactory(makeRbd)));

TEST(RbdDriver, ReachesTheStackCeph) {
  auto driver = makeRbd();
  auto ping = driver->ping();
  ASSERT_TRUE(ping.has_value()) << ping.error().describe();
  EXPECT_EQ(driver->location(), "rbd pool qiao");
}

TEST(RbdDriver, AnotherPoolIsRefusedToTheRestrictedKey) {
  RbdOptions options = cephOptions();
  options.pool = "not-qiao-pool";
  auto driver = makeRbdDriver(options);
  ASSERT_TRUE(driver.has_value());
  auto made = (*driver)->create(VolumeId{"t1", "vol-x"}, 1 << 20);
  ASSERT_FALSE(made.has_value());
}

TEST(RbdDriver, AnUnreachableClusterIsUnavailableNotAHang) {
  const std::string dir = std::filesystem::temp_directory_path() / "qiao-rbd-down";
  std::filesystem::create_directories(dir);
  {
    FILE* f = std::fopen((dir + "/ceph.conf").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("[global]\nmon host = 127.0.0.1:1\n", f);  // nothing listens on port 1
    std::fclose(f);
  }
  RbdOptions options = cephOptions();
  options.conf = dir + "/ceph.conf";
  options.op_timeout_s = 3;
  auto driver = makeRbdDriver(options);
  ASSERT_TRUE(driver.has_value());
  auto started = std::chrono::steady_clock::now();
  auto ping = (*driver)->ping();
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error().code, ErrorCode::kUnavailable) << ping.error().describe();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qiao::testing
