// The node as qiaod builds it (NodeServices), on libvirt's test driver, a local directory for
// volumes and no networks, in `dir` (its PKI, state and volumes), for tests that need the
// real wiring without a hypervisor: the API's unit tests, and the tests that read the route
// table the node serves.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "base/error.h"
#include "node/node_services.h"

namespace qiao {

// An x86_64 host of 4 cores and 8 GiB whatever runs the test, in cluster "c1".
Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir);
// The same in `cluster`, with what `parts` gives (its log sink and failpoints: several nodes
// in one test); the hypervisor and the host facts are the ones above when it does not.
Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir,
                                                    NodeParts parts, const std::string& cluster);

}  // namespace qiao
