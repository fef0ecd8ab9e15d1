// Two simulated hosts in one process, each a NodeServices as qiaod builds it (buildTestNode:
// libvirt's test driver, local volumes, no networks): each node's log lines go to its own sink with its name,
// none to the other's or the process's, and each has its own failpoints.
#include "node/node_services.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/vm/hypervisor.h"
#include "tests/doubles/test_node.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<json> linesOf(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::vector<json> out;
  char buf[8192];
  while (std::fgets(buf, sizeof buf, f) != nullptr) out.push_back(json::parse(buf));
  return out;
}

struct SimulatedHost {
  SimulatedHost(const fs::path& root, const std::string& name)
      : dir(root / name), file(std::tmpfile()), sink(name, file) {}
  ~SimulatedHost() { std::fclose(file); }

  void build() {
    NodeParts parts;
    parts.log = &sink;
    parts.failpoints = std::make_unique<Failpoints>(
        std::vector<std::string>{}, [this](std::string_view hit) { hits.emplace_back(hit); });
    auto built = buildTestNode(dir, std::move(parts), "c-" + sink.node());
    ASSERT_TRUE(built) << built.error().describe();
    node = std::move(*built);
  }

  fs::path dir;
  std::FILE* file;
  LogSink sink;
  std::vector<std::string> hits;
  std::unique_ptr<NodeServices> node;
};

TEST(NodeServices, TwoNodesInOneProcessLogApartAndHaveTheirOwnFailpoints) {
  const fs::path root = fs::temp_directory_path() / ("qiao-nodes-" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::FILE* process = std::tmpfile();
  Logger::setSink(process);
  {
    SimulatedHost a(root, "host-a"), b(root, "host-b");
    a.build();
    b.build();
    ASSERT_TRUE(a.node && b.node);
    a.node->start();
    b.node->start();
    a.node->waitIdle();
    b.node->waitIdle();
    a.node->failpoints().arm("vm.create/define:after");
    EXPECT_NE(&a.node->failpoints(), &b.node->failpoints());
    a.node->stop();
    b.node->stop();
    a.node.reset();
    b.node.reset();

    for (SimulatedHost* host : {&a, &b}) {
      auto lines = linesOf(host->file);
      ASSERT_FALSE(lines.empty()) << host->sink.node() << " logged nothing";
      bool chose_accelerator = false;
      for (const auto& line : lines) {
        EXPECT_EQ(line.value("node", ""), host->sink.node()) << line.dump();
        chose_accelerator |= line.value("msg", "") == "accelerator chosen";
      }
      EXPECT_TRUE(chose_accelerator) << "the node's build logs to its sink";
    }
  }
  Logger::setSink(nullptr);
  for (const auto& line : linesOf(process)) {
    EXPECT_NE(line.value("msg", ""), "accelerator chosen") << "a node's line in the process's";
  }
  std::fclose(process);
  fs::remove_all(root);
}

}  // namespace
}  // namespace qiao
