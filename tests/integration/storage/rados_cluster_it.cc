// LibradosCluster against the real Ceph of the test stack, as the cluster's coordinator: the
// same conformance suite MemoryCeph passes (leases, fencing by blocklist, breaking a fenced
// holder's lock), with client.qiao's own capabilities. Each client blocklists only the exact
// address of another client of this test (IP:0/NONCE), never an IP.
#include <thread>

#include "tests/integration/storage/stack_ceph.h"
#include "tests/unit/storage/rados_conformance.h"

namespace qiao::testing {
namespace {

class CephWorld final : public RadosWorld {
 public:
  std::unique_ptr<RadosCluster> client() override { return stackCephClient(); }
  std::string pool() override { return "qiao-cluster"; }
  void pass(std::chrono::seconds d) override { std::this_thread::sleep_for(d); }
};

INSTANTIATE_TEST_SUITE_P(Ceph, RadosConformance, ::testing::Values(RadosWorldFactory([] {
                           return std::unique_ptr<RadosWorld>(new CephWorld);
                         })));

}  // namespace
}  // namespace qiao::testing
