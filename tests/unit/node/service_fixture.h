// ServiceFixture: the node as qiaod builds it (NodeServices, by tests/doubles/test_node.h) in
// a temporary directory, for the unit tests of one of its services: on libvirt's test driver,
// with volumes in a local directory and no networks unless the test gives the node its own
// parts at each start (parts(): a FaultyHypervisor, a FaultyVolumeDriver, Open vSwitch in
// memory). And a restart of qiaod over the same directory: the node built anew, the VMs
// reconciled, the unfinished tasks resumed.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/crypto.h"
#include "base/event_bus.h"
#include "node/node_services.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"
#include "node/vm/hypervisor.h"
#include "tests/doubles/test_node.h"

namespace qiao::testing {

class ServiceFixture : public ::testing::Test {
 protected:
  // Derived fixtures call this first, change config_ and make their doubles, then startNode().
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qiao-unit-" + newUuid());
    std::filesystem::create_directories(dir_);
    config_ = testNodeConfig(dir_, "unit");
    config_.vm.shutdown_timeout_s = 5;
  }
  void TearDown() override {
    stopNode();
    std::filesystem::remove_all(dir_);
  }

  // What the node is given instead of the real thing, asked anew at each start (the node owns
  // what it is given). No hypervisor: a connection to libvirt's test driver.
  virtual NodeParts parts() { return {}; }
  // The node is built and not started yet: the test takes the service it drives from node_
  // (and subscribes to the events it looks at).
  virtual void nodeBuilt() {}

  // Builds and starts the node, as qiaod does, and waits until it is idle.
  void startNode() {
    NodeParts given = parts();
    if (!given.hypervisor) given.hypervisor = makeTestDriverHypervisor();
    hypervisor_ = given.hypervisor.get();
    auto node = buildTestNode(config_, std::move(given));
    ASSERT_TRUE(node.has_value()) << node.error().describe();
    node_ = std::move(*node);
    store_ = &node_->store();
    tasks_ = &node_->tasks();
    events_ = &node_->events();
    nodeBuilt();
    node_->start();
    node_->waitIdle();
  }
  void stopNode() {
    node_.reset();
    store_ = nullptr;
    tasks_ = nullptr;
    events_ = nullptr;
    hypervisor_ = nullptr;
  }
  // The next start of qiaod: what the last one left unfinished is resumed and run to its end.
  void restartAndResume() {
    stopNode();
    startNode();
  }
  // Until the VM service's queue and the tasks are done.
  void waitIdle() { node_->waitIdle(); }

  // The one task a node recorded but never ran (its engine had stopped, as a crash leaves it).
  std::string onlyUnfinishedTask() {
    auto unfinished = store_->tasks().unfinished();
    EXPECT_TRUE(unfinished.has_value());
    if (!unfinished || unfinished->size() != 1) {
      ADD_FAILURE() << "not one unfinished task";
      return {};
    }
    return unfinished->front().id;
  }
  // Makes the task look interrupted by as many restarts as the engine allows: the next start
  // gives it up.
  void interruptedTooOften(const std::string& id) {
    for (int i = 0; i < kMaxAttempts; ++i) ASSERT_TRUE(store_->tasks().bumpAttempts(id));
  }

  // The task, accepted, once it has ended.
  TaskRecord finish(const Result<TaskRecord>& task) {
    EXPECT_TRUE(task.has_value()) << task.error().describe();
    if (!task) return {};
    waitIdle();
    auto done = store_->tasks().get(task->id);
    EXPECT_TRUE(done.has_value());
    return done ? *done : TaskRecord{};
  }
  // The task's journal as "step:phase".
  std::vector<std::string> steps(const std::string& task_id) {
    std::vector<std::string> out;
    if (auto journal = store_->tasks().journalOf(task_id)) {
      for (const auto& e : *journal) out.push_back(e.step + ":" + toString(e.phase));
    }
    return out;
  }

  // The node's TaskEngine gives a task up after this many interrupted runs.
  static constexpr int kMaxAttempts = 3;
  std::filesystem::path dir_;
  Config config_;  // the node's, from testNodeConfig
  std::unique_ptr<NodeServices> node_;
  // The node's, while it is up.
  Store* store_ = nullptr;
  TaskEngine* tasks_ = nullptr;
  EventBus* events_ = nullptr;
  Hypervisor* hypervisor_ = nullptr;
};

}  // namespace qiao::testing
