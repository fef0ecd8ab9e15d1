// FaultyHypervisor: a Hypervisor that passes every call to a real one (libvirt's test driver in
// unit tests) except the calls a test tells it to fail (fault_plan.h): "the 2nd start from now
// fails with kInternal", "every undefine fails". VmService's undo paths are driven with it: a
// create whose start fails, a delete that fails half way and is asked again.
#pragma once

#include <string>
#include <vector>

#include "node/vm/hypervisor.h"
#include "tests/doubles/fault_plan.h"

namespace qiao::testing {

enum class HypervisorOp {
  kInfo,
  kListDomains,
  kLookup,
  kDefine,
  kStart,
  kShutdown,
  kDestroy,
  kReboot,
  kSuspend,
  kResume,
  kUndefine,
  kDomainXml,
  kAttachDevice,
  kDetachDevice,
  kSetVcpus,
  kSetMemory,
  kStats,
  kDomainStats,
  kMigrate,
};

class FaultyHypervisor : public Hypervisor {
 public:
  explicit FaultyHypervisor(Hypervisor& real) : real_(real) {}

  FaultPlan<HypervisorOp>& faults() { return faults_; }

  Result<HypervisorInfo> info() override {
    return faults_.run<Result<HypervisorInfo>>(HypervisorOp::kInfo, [&] { return real_.info(); });
  }
  Result<std::vector<DomainInfo>> listDomains() override {
    return faults_.run<Result<std::vector<DomainInfo>>>(HypervisorOp::kListDomains,
                                                        [&] { return real_.listDomains(); });
  }
  Result<DomainInfo> lookup(const std::string& name) override {
    return faults_.run<Result<DomainInfo>>(HypervisorOp::kLookup,
                                           [&] { return real_.lookup(name); });
  }
  Status define(const std::string& xml) override {
    return faults_.run<Status>(HypervisorOp::kDefine, [&] { return real_.define(xml); });
  }
  Status start(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kStart, [&] { return real_.start(name); });
  }
  Status shutdown(const std::string& name, int timeout_ms) override {
    return faults_.run<Status>(HypervisorOp::kShutdown,
                               [&] { return real_.shutdown(name, timeout_ms); });
  }
  Status destroy(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kDestroy, [&] { return real_.destroy(name); });
  }
  Status reboot(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kReboot, [&] { return real_.reboot(name); });
  }
  Status suspend(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kSuspend, [&] { return real_.suspend(name); });
  }
  Status resume(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kResume, [&] { return real_.resume(name); });
  }
  Status undefine(const std::string& name) override {
    return faults_.run<Status>(HypervisorOp::kUndefine, [&] { return real_.undefine(name); });
  }
  Result<std::string> domainXml(const std::string& name) override {
    return faults_.run<Result<std::string>>(HypervisorOp::kDomainXml,
                                            [&] { return real_.domainXml(name); });
  }
  Status attachDevice(const std::string& name, const std::string& device_xml) override {
    return faults_.run<Status>(HypervisorOp::kAttachDevice,
                               [&] { return real_.attachDevice(name, device_xml); });
  }
  Status detachDevice(const std::string& name, const std::string& device_xml) override {
    return faults_.run<Status>(HypervisorOp::kDetachDevice,
                               [&] { return real_.detachDevice(name, device_xml); });
  }
  Status setVcpus(const std::string& name, int vcpus) override {
    return faults_.run<Status>(HypervisorOp::kSetVcpus,
                               [&] { return real_.setVcpus(name, vcpus); });
  }
  Status setMemory(const std::string& name, uint64_t kib) override {
    return faults_.run<Status>(HypervisorOp::kSetMemory,
                               [&] { return real_.setMemory(name, kib); });
  }
  Result<std::vector<DomainStats>> stats() override {
    return faults_.run<Result<std::vector<DomainStats>>>(HypervisorOp::kStats,
                                                         [&] { return real_.stats(); });
  }
  Result<DomainStats> domainStats(const std::string& name) override {
    return faults_.run<Result<DomainStats>>(HypervisorOp::kDomainStats,
                                            [&] { return real_.domainStats(name); });
  }
  // Events are the real hypervisor's: a failed call changes nothing there to report.
  Subscription subscribe(std::function<void(const DomainEvent&)> handler) override {
    return real_.subscribe(std::move(handler));
  }
  Status migrate(const std::string& name, const MigrateOptions& options) override {
    return faults_.run<Status>(HypervisorOp::kMigrate,
                               [&] { return real_.migrate(name, options); });
  }
  // The real one is its owner's to stop.
  void stop() override {}

 private:
  Hypervisor& real_;
  FaultPlan<HypervisorOp> faults_;
};

}  // namespace qiao::testing
