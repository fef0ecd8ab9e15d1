// What Ceph as the coordinator must do for the cluster (storage/rados_cluster.h), as one suite:
// MemoryCeph (tests/doubles) runs it as a unit test, LibradosCluster against the real Ceph of
// the test stack, so the double the cluster's unit tests use behaves as Ceph does.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "storage/rados_cluster.h"

namespace qiao::testing {

// One cluster, as a test sees it: clients of it, a pool to put objects in, and time.
class RadosWorld {
 public:
  virtual ~RadosWorld() = default;
  virtual std::unique_ptr<RadosCluster> client() = 0;
  virtual std::string pool() = 0;
  // Lets `d` pass (the real one sleeps; the double moves its clock).
  virtual void pass(std::chrono::seconds d) = 0;
};
using RadosWorldFactory = std::function<std::unique_ptr<RadosWorld>()>;

class RadosConformance : public ::testing::TestWithParam<RadosWorldFactory> {
 protected:
  void SetUp() override;
  // Removes the objects of the test's namespace (the real pool outlives the test).
  void TearDown() override;
  // An object of this test alone (its own namespace per process and test).
  RadosObject object(const std::string& name) const;

  std::unique_ptr<RadosWorld> world_;
  std::string ns_;
};

}  // namespace qiao::testing
