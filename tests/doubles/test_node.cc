#include "tests/doubles/test_node.h"

#include <fstream>

#include "node/host/host.h"
#include "node/vm/hypervisor.h"
#include "storage/volume_driver.h"

namespace qiao {

Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir) {
  return buildTestNode(dir, NodeParts{}, "c1");
}

Result<std::unique_ptr<NodeServices>> buildTestNode(const std::filesystem::path& dir,
                                                    NodeParts parts, const std::string& cluster) {
  return buildTestNode(testNodeConfig(dir, cluster), std::move(parts));
}

Config testNodeConfig(const std::filesystem::path& dir, const std::string& cluster) {
  namespace fs = std::filesystem;
  fs::create_directories(dir / "pki");
  std::ofstream(dir / "pki" / "cluster") << cluster << "\n";
  Config config;
  config.pki.dir = (dir / "pki").string();
  config.state.dir = dir.string();
  config.vm.accelerator = "tcg";
  config.storage.backend = "local";
  config.storage.local_dir = (dir / "volumes").string();
  config.network.mode = "off";
  return config;
}

Result<std::unique_ptr<NodeServices>> buildTestNode(const Config& config, NodeParts parts) {
  if (!parts.hypervisor) parts.hypervisor = makeTestDriverHypervisor();
  if (!parts.host) {
    // Not this machine's facts: the arm64 unit tests run under qemu-user, where the spec
    // defaults would make aarch64 guests.
    HostFacts host;
    host.hostname = "unit";
    host.arch = "x86_64";
    host.cores = 4;
    host.memory_bytes = uint64_t{8} << 30;
    parts.host = host;
  }
  return NodeServices::build(config, std::move(parts));
}

std::unique_ptr<Hypervisor> makeTestDriverHypervisor() {
  LibvirtOptions lv;
  lv.uri = "test:///default";
  return makeLibvirtHypervisor(lv);
}

}  // namespace qiao
