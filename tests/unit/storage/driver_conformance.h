// What every VolumeDriver must do, as one suite: the local driver runs it as a unit test, the
// RBD driver against the real Ceph of the test stack. A driver test instantiates it with a
// factory (INSTANTIATE_TEST_SUITE_P).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <unistd.h>

#include "storage/volume_driver.h"

namespace qiao::testing {

using DriverFactory = std::function<std::unique_ptr<VolumeDriver>()>;

class DriverConformance : public ::testing::TestWithParam<DriverFactory> {
 protected:
  void SetUp() override {
    driver_ = GetParam()();
    ASSERT_NE(driver_, nullptr);
    // Unique per process and test, so that runs never meet each other's volumes.
    suffix_ = std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : suffix_) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '-';
    }
    for (auto& c : suffix_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  void TearDown() override {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) (void)driver_->remove(*it);
  }
  VolumeId id(const std::string& ns, const std::string& name) {
    VolumeId v{ns, name + "-" + suffix_};
    made_.push_back(v);
    return v;
  }
  static std::string pattern(char c, size_t n) { return std::string(n, c); }
  std::string readAll(const VolumeId& v);

  std::unique_ptr<VolumeDriver> driver_;
  std::string suffix_;
  std::vector<VolumeId> made_;
};

}  // namespace qiao::testing
