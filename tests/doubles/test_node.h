// The node as qiaod builds it (NodeServices), on libvirt's test driver, a local directory for
// volumes and no networks, in `dir` (its PKI, state and volumes), for tests that need the
// real wiring without a hypervisor: the API's unit tests, the tests that read the route
// table the node serves, and the unit tests of one service (tests/unit/node/service_fixture.h),
// which give the node their doubles as NodeParts.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "base/config.h"
#include "base/error.h"
#include "node/node_services.h"

namespace qiao {

class Hypervisor;

// An x86_64 host of 4 cores and 8 GiB whatever runs the test, in cluster "c1".
Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir);
// The same in `cluster`, with what `parts` gives (its log sink and failpoints: several nodes
// in one test); the hypervisor and the host facts are the ones above when it does not.
Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir,
                                                    NodeParts parts, const std::string& cluster);

// The two halves of the above, for a test that changes the configuration in between.
// The configuration of a test node in `dir`, whose PKI (written there) names `cluster`: tcg,
// volumes in <dir>/volumes, networks off.
Config testNodeConfig(const std::filesystem::path& dir, const std::string& cluster);
Result<std::unique_ptr<NodeServices>> buildTestNode(const Config& config, NodeParts parts);

// A connection to libvirt's test driver (test:///default): the hypervisor of a test node.
// Its domains are the process's, whichever connection made them.
std::unique_ptr<Hypervisor> makeTestDriverHypervisor();

}  // namespace qiao
