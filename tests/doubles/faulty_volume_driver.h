// FaultyVolumeDriver: a VolumeDriver that passes every call to a real one (the local directory
// driver in unit tests) except the calls a test tells it to fail (fault_plan.h), so that the
// services' undo paths run: a create whose limits cannot be set, an import whose golden
// snapshot fails, a remove that fails half way.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/volume_driver.h"
#include "tests/doubles/fault_plan.h"

namespace qiao::testing {

enum class VolumeOp {
  kCreate,
  kResize,
  kRemove,
  kWatchers,
  kSetQos,
  kCreateGoldenSnapshot,
  kClone,
  kFlatten,
  kOpenWriter,
};

class FaultyVolumeDriver : public VolumeDriver {
 public:
  explicit FaultyVolumeDriver(VolumeDriver& real) : real_(real) {}

  FaultPlan<VolumeOp>& faults() { return faults_; }

  std::string_view backend() const override { return real_.backend(); }
  std::string location() const override { return real_.location(); }
  Status ping() override { return real_.ping(); }
  std::string defaultPool() const override { return real_.defaultPool(); }
  Status create(const VolumeId& id, int64_t size_bytes) override {
    return faults_.run<Status>(VolumeOp::kCreate, [&] { return real_.create(id, size_bytes); });
  }
  Result<VolumeStat> stat(const VolumeId& id) override { return real_.stat(id); }
  Status resize(const VolumeId& id, int64_t size_bytes) override {
    return faults_.run<Status>(VolumeOp::kResize, [&] { return real_.resize(id, size_bytes); });
  }
  Status remove(const VolumeId& id) override {
    return faults_.run<Status>(VolumeOp::kRemove, [&] { return real_.remove(id); });
  }
  Result<std::vector<std::string>> watchers(const VolumeId& id) override {
    return faults_.run<Result<std::vector<std::string>>>(VolumeOp::kWatchers,
                                                         [&] { return real_.watchers(id); });
  }
  Status setQos(const VolumeId& id, const VolumeQos& qos) override {
    return faults_.run<Status>(VolumeOp::kSetQos, [&] { return real_.setQos(id, qos); });
  }
  Result<VolumeQos> qos(const VolumeId& id) override { return real_.qos(id); }
  Status createGoldenSnapshot(const VolumeId& id, const std::string& snapshot) override {
    return faults_.run<Status>(VolumeOp::kCreateGoldenSnapshot,
                               [&] { return real_.createGoldenSnapshot(id, snapshot); });
  }
  Status clone(const VolumeId& parent, const std::string& snapshot,
               const VolumeId& child) override {
    return faults_.run<Status>(VolumeOp::kClone,
                               [&] { return real_.clone(parent, snapshot, child); });
  }
  Status flatten(const VolumeId& id) override {
    return faults_.run<Status>(VolumeOp::kFlatten, [&] { return real_.flatten(id); });
  }
  Result<std::unique_ptr<VolumeWriter>> openWriter(const VolumeId& id) override {
    return faults_.run<Result<std::unique_ptr<VolumeWriter>>>(VolumeOp::kOpenWriter,
                                                              [&] { return real_.openWriter(id); });
  }
  Result<std::string> read(const VolumeId& id, uint64_t offset, size_t length) override {
    return real_.read(id, offset, length);
  }
  Result<std::vector<std::string>> list(const std::string& ns) override { return real_.list(ns); }
  DiskSource diskSource(const VolumeId& id) const override { return real_.diskSource(id); }

 private:
  VolumeDriver& real_;
  FaultPlan<VolumeOp> faults_;
};

}  // namespace qiao::testing
