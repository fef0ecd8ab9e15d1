// TaskEngine's cancel: only kinds that say so can be cancelled; a run that sees the request
// ends "cancelled"; a task that finishes first keeps its outcome; a finished task or another
// kind answers kConflict; the request is journaled and survives a restart. Run::waitFor: a
// wait that ends, fails, times out, or is cut by a stop (the task is left for the next start).
#include "node/tasks/task_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "base/crypto.h"
#include "node/state/store.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class TaskEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qiao-tasks-" + newUuid());
    fs::create_directories(dir_);
    openStore();
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void openStore() {
    auto store = Store::open((dir_ / "qiao.db").string());
    ASSERT_TRUE(store.has_value()) << store.error().describe();
    store_ = std::move(*store);
  }
  // An engine whose "job." kinds run `body`; job.copy can be cancelled, job.plain not.
  void makeEngine(std::function<Status(TaskEngine::Run&)> body) {
    engine_ = std::make_unique<TaskEngine>(*store_, events_, 2, 3);
    TaskEngine::Kind kind;
    kind.run = std::move(body);
    kind.cancellable = {"job.copy"};
    engine_->addKind("job.", std::move(kind));
  }
  TaskRecord waitEnd(const std::string& id) {
    for (int i = 0; i < 500; ++i) {
      auto task = store_->getTask(id);
      if (task && task->state != "queued" && task->state != "running") return *task;
      std::this_thread::sleep_for(milliseconds(10));
    }
    ADD_FAILURE() << "task " << id << " did not end";
    return {};
  }
  // A run that waits (up to 1 s) for a cancel, then stops like a block job does.
  static Status untilCancelled(TaskEngine::Run& run, std::atomic<bool>* started) {
    return run.step("work", 50, "working", [&]() -> Status {
      *started = true;
      for (int i = 0; i < 100; ++i) {
        if (run.cancelled()) return std::unexpected(TaskEngine::Run::cancelledError());
        std::this_thread::sleep_for(milliseconds(10));
      }
      return {};
    });
  }

  fs::path dir_;
  EventBus events_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TaskEngine> engine_;
};

TEST_F(TaskEngineTest, ARunningCancellableTaskEndsCancelledAndItsJournalIsWhole) {
  std::atomic<bool> started{false}, saw_cancel{false}, release{false};
  // The run sees the request, then holds on until the test has asked twice (on a slow
  // machine it could otherwise end between the two requests).
  makeEngine([&](TaskEngine::Run& run) -> Status {
    Status result = untilCancelled(run, &started);
    saw_cancel = run.cancelled();
    for (int i = 0; i < 500 && !release; ++i) std::this_thread::sleep_for(milliseconds(10));
    return result;
  });
  auto task = engine_->submit(TaskEngine::newTask("job.copy", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  while (!started) std::this_thread::sleep_for(milliseconds(5));
  auto asked = engine_->cancel(task->id, "qiao://c1/user/op");
  ASSERT_TRUE(asked.has_value()) << asked.error().describe();
  EXPECT_TRUE(engine_->cancel(task->id, "again").has_value()) << "asking twice is fine";
  release = true;
  TaskRecord done = waitEnd(task->id);
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(done.state, "cancelled");
  EXPECT_EQ(done.message, "cancelled");
  auto journal = store_->journalOf(task->id);
  ASSERT_TRUE(journal.has_value());
  int marks = 0;
  for (const auto& e : *journal) marks += e.phase == "cancel-requested" ? 1 : 0;
  EXPECT_EQ(marks, 1);
  auto verified = store_->verifyJournal();
  ASSERT_TRUE(verified.has_value());
  EXPECT_TRUE(verified->ok) << verified->first_problem;
  // Finished: nothing left to cancel.
  auto late = engine_->cancel(task->id, "me");
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kConflict);
  EXPECT_NE(late.error().message.find("cancelled"), std::string::npos);
}

TEST_F(TaskEngineTest, OtherKindsAndUnknownTasksCannotBeCancelled) {
  std::atomic<bool> started{false};
  makeEngine([&](TaskEngine::Run& run) { return untilCancelled(run, &started); });
  auto task = engine_->submit(TaskEngine::newTask("job.plain", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  auto refused = engine_->cancel(task->id, "me");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("job.plain"), std::string::npos);
  EXPECT_EQ(waitEnd(task->id).state, "succeeded");
  auto unknown = engine_->cancel("no-such-task", "me");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_F(TaskEngineTest, ATaskThatFinishesFirstKeepsItsOutcome) {
  std::atomic<bool> release{false};
  makeEngine([&](TaskEngine::Run& run) {
    return run.step("work", 50, "working", [&]() -> Status {
      while (!release) std::this_thread::sleep_for(milliseconds(5));
      return {};  // never looks at the request
    });
  });
  auto task = engine_->submit(TaskEngine::newTask("job.copy", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(engine_->cancel(task->id, "me").has_value());
  release = true;
  EXPECT_EQ(waitEnd(task->id).state, "succeeded");
}

TEST_F(TaskEngineTest, ACancelRequestSurvivesARestart) {
  // The first "qiaod" takes the request and dies before its run saw it.
  TaskRecord task = TaskEngine::newTask("job.copy", "ta", "x", "me", "{}");
  ASSERT_TRUE(store_->createTask(task).has_value());
  ASSERT_TRUE(store_->updateTask(task.id, "running", 10, "working").has_value());
  makeEngine([](TaskEngine::Run&) -> Status { return {}; });
  ASSERT_TRUE(engine_->cancel(task.id, "me").has_value());
  engine_.reset();
  // The next one resumes it, and its run sees the request at once.
  std::atomic<bool> saw{false};
  makeEngine([&](TaskEngine::Run& run) -> Status {
    saw = run.cancelled();
    if (saw) return std::unexpected(TaskEngine::Run::cancelledError());
    return {};
  });
  engine_->resumeUnfinished();
  EXPECT_EQ(waitEnd(task.id).state, "cancelled");
  EXPECT_TRUE(saw);
}

std::vector<std::string> journalOf(Store& store, const std::string& id) {
  std::vector<std::string> out;
  if (auto entries = store.journalOf(id)) {
    for (const auto& e : *entries) out.push_back(e.step + ":" + e.phase);
  }
  return out;
}

TEST_F(TaskEngineTest, AWaitWithNothingToWaitForIsNotJournaled) {
  makeEngine([](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting", milliseconds(1000),
                       []() -> Result<std::string> { return std::string(); });
  });
  auto task = engine_->submit(TaskEngine::newTask("job.plain", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(waitEnd(task->id).state, "succeeded");
  EXPECT_TRUE(journalOf(*store_, task->id).empty());
}

TEST_F(TaskEngineTest, AWaitEndsWhenWhatItWaitsForIsThereAndSaysWhatItWaitedFor) {
  std::atomic<int> checks{0};
  std::vector<std::string> messages;
  std::mutex mu;
  const uint64_t subscription = events_.subscribe([&](const Event& e) {
    std::lock_guard lock(mu);
    if (e.type == "task") messages.push_back(e.json);
  });
  makeEngine([&](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting for the parts", milliseconds(5000),
                       [&]() -> Result<std::string> {
                         return ++checks < 3 ? std::string("network ta/web (creating)")
                                             : std::string();
                       });
  });
  auto task = engine_->submit(TaskEngine::newTask("job.plain", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(waitEnd(task->id).state, "succeeded");
  EXPECT_EQ(checks.load(), 3);
  EXPECT_EQ(journalOf(*store_, task->id), (std::vector<std::string>{"wait:begin", "wait:done"}));
  engine_->drain();  // the last update is published after the state is written
  events_.unsubscribe(subscription);
  std::lock_guard lock(mu);
  bool said = false;
  for (const auto& m : messages) {
    said = said ||
           m.find("waiting for the parts: waiting for network ta/web (creating)") != std::string::npos;
  }
  EXPECT_TRUE(said) << "the task's message should name what it waits for";
}

TEST_F(TaskEngineTest, AWaitFailsWithTheCheckErrorOrTimesOut) {
  makeEngine([](TaskEngine::Run& run) -> Status {
    if (run.task().target == "broken") {
      return run.waitFor("wait", "waiting", milliseconds(5000), []() -> Result<std::string> {
        return makeError(ErrorCode::kConflict, "network", "network ta/web was not made");
      });
    }
    return run.waitFor("wait", "waiting", milliseconds(300),
                       []() -> Result<std::string> { return std::string("image ta/os"); });
  });
  auto broken = engine_->submit(TaskEngine::newTask("job.plain", "ta", "broken", "me", "{}"));
  auto slow = engine_->submit(TaskEngine::newTask("job.plain", "ta", "slow", "me", "{}"));
  ASSERT_TRUE(broken && slow);
  auto b = waitEnd(broken->id);
  EXPECT_EQ(b.state, "failed");
  EXPECT_NE(b.message.find("network ta/web was not made"), std::string::npos) << b.message;
  auto s = waitEnd(slow->id);
  EXPECT_EQ(s.state, "failed");
  EXPECT_NE(s.error_json.find("\"timeout\""), std::string::npos) << s.error_json;
  EXPECT_NE(s.message.find("waiting for image ta/os"), std::string::npos) << s.message;
  EXPECT_EQ(journalOf(*store_, s.id), (std::vector<std::string>{"wait:begin", "wait:failed"}));
}

TEST_F(TaskEngineTest, AStopDuringAWaitLeavesTheTaskForTheNextStart) {
  std::atomic<bool> waiting{false};
  makeEngine([&](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting", milliseconds(60000), [&]() -> Result<std::string> {
      waiting = true;
      return std::string("network ta/web (creating)");
    });
  });
  auto task = engine_->submit(TaskEngine::newTask("job.plain", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  for (int i = 0; i < 500 && !waiting; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(waiting);
  const auto stop_began = std::chrono::steady_clock::now();
  engine_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_began, std::chrono::seconds(5))
      << "a stop should not wait out the whole wait";
  engine_.reset();
  auto left = store_->getTask(task->id);
  ASSERT_TRUE(left.has_value());
  EXPECT_TRUE(left->state == "queued" || left->state == "running")
      << "no outcome is recorded: the task is unfinished, not " << left->state;
  // The next start resumes it, and this time what it waits for is there.
  makeEngine([](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting", milliseconds(1000),
                       []() -> Result<std::string> { return std::string(); });
  });
  engine_->resumeUnfinished();
  auto done = waitEnd(task->id);
  EXPECT_EQ(done.state, "succeeded");
  EXPECT_EQ(done.attempts, 1) << "resumed once";
}

TEST_F(TaskEngineTest, AResumeAtStartLeavesTheTasksThisProcessTookMeanwhileToTheirRun) {
  // The API serves before the start-up reconciliation ends: a task taken then must not be
  // resumed as if a previous run had left it (two runs of one task broke the journal).
  std::atomic<int> runs{0};
  std::atomic<bool> release{false};
  makeEngine([&](TaskEngine::Run& run) -> Status {
    ++runs;
    return run.step("define", 50, "defining", [&]() -> Status {
      for (int i = 0; i < 500 && !release; ++i) std::this_thread::sleep_for(milliseconds(2));
      return {};
    });
  });
  auto task = engine_->submit(TaskEngine::newTask("job.plain", "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  for (int i = 0; i < 500 && journalOf(*store_, task->id).empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  engine_->resumeUnfinished();
  release = true;
  EXPECT_EQ(waitEnd(task->id).state, "succeeded");
  engine_->drain();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(journalOf(*store_, task->id),
            (std::vector<std::string>{"define:begin", "define:done"}));
  EXPECT_TRUE(store_->verifyJournal()->ok);
}

}  // namespace
}  // namespace qiao
