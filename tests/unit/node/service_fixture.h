// ServiceFixture: what a unit test of a service that runs tasks starts from - a SQLite store in
// a temporary directory, the event bus and a TaskEngine - and a restart of qiaod over the same
// store: the engine and the service built anew, the unfinished tasks resumed.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/crypto.h"
#include "base/event_bus.h"
#include "node/state/store.h"
#include "node/tasks/task_engine.h"

namespace qiao::testing {

class ServiceFixture : public ::testing::Test {
 protected:
  // Derived fixtures call this first, make their doubles, then startNode().
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("qiao-unit-" + newUuid());
    std::filesystem::create_directories(dir_);
    auto store = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(store.has_value()) << store.error().describe();
    store_ = std::move(*store);
  }
  void TearDown() override {
    stopNode();
    std::filesystem::remove_all(dir_);
  }

  // The service under test, built on tasks_ (and dropped) by the derived fixture.
  virtual void makeService() = 0;
  virtual void dropService() = 0;
  // Until the service's tasks (and whatever else it queues) are done.
  virtual void waitIdle() { tasks_->drain(); }

  void startNode() {
    tasks_ = std::make_unique<TaskEngine>(store_->tasks(), events_, 2, kMaxAttempts);
    makeService();
  }
  void stopNode() {
    if (tasks_) tasks_->stop();
    dropService();
    tasks_.reset();
  }
  // The next start of qiaod: what the last one left unfinished is resumed and run to its end.
  void restartAndResume() {
    stopNode();
    startNode();
    tasks_->resumeUnfinished();
    waitIdle();
  }
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
      for (const auto& e : *journal) out.push_back(e.step + ":" + e.phase);
    }
    return out;
  }

  static constexpr int kMaxAttempts = 3;
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  EventBus events_;
  std::unique_ptr<TaskEngine> tasks_;
};

}  // namespace qiao::testing
