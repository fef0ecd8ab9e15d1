// TaskEngine's cancel: only kinds that say so can be cancelled; a run that sees the request
// ends "cancelled"; a task that finishes first keeps its outcome; a finished task or another
// kind answers kConflict; the request is journaled and survives a restart. Run::waitFor: a
// wait that ends, fails, times out, or is cut by a stop (the task is left for the next start).
// Restarts: unfinished tasks are resumed by the next engine over the same store (open steps
// closed, oldest first, attempts counted) and, interrupted more than max_attempts times, give
// up; a rollback undoes the steps done in reverse order.
#include "node/tasks/task_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/crypto.h"
#include "node/state/store.h"
#include "tests/doubles/memory_task_journal.h"

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
  // An engine whose volume tasks run `body`; volume.copy can be cancelled, volume.resize not.
  void makeEngine(std::function<Status(TaskEngine::Run&)> body) {
    engine_ = std::make_unique<TaskEngine>(store_->tasks(), events_, 2, 3);
    TaskEngine::Kind kind;
    kind.run = std::move(body);
    kind.cancellable = {TaskKind::kVolumeCopy};
    engine_->addFamily(TaskFamily::kVolume, std::move(kind));
  }
  TaskRecord waitEnd(const std::string& id) {
    for (int i = 0; i < 500; ++i) {
      auto task = store_->tasks().get(id);
      if (task && task->state != TaskState::kQueued && task->state != TaskState::kRunning)
        return *task;
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
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeCopy, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  while (!started) std::this_thread::sleep_for(milliseconds(5));
  auto asked = engine_->cancel(task->id, "qiao://c1/user/op");
  ASSERT_TRUE(asked.has_value()) << asked.error().describe();
  EXPECT_TRUE(engine_->cancel(task->id, "again").has_value()) << "asking twice is fine";
  release = true;
  TaskRecord done = waitEnd(task->id);
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(done.state, TaskState::kCancelled);
  EXPECT_EQ(done.message, "cancelled");
  auto journal = store_->tasks().journalOf(task->id);
  ASSERT_TRUE(journal.has_value());
  int marks = 0;
  for (const auto& e : *journal) marks += e.phase == JournalPhase::kCancelRequested ? 1 : 0;
  EXPECT_EQ(marks, 1);
  auto verified = store_->tasks().verifyJournal();
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
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  auto refused = engine_->cancel(task->id, "me");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("volume.resize"), std::string::npos);
  EXPECT_EQ(waitEnd(task->id).state, TaskState::kSucceeded);
  auto unknown = engine_->cancel("no-such-task", "me");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

// A task runs only with its own family's handler: one of a family nobody registered, or of a
// kind this qiaod cannot read (TaskKind::kUnknown), fails as an unknown kind without running.
TEST_F(TaskEngineTest, ATaskOfNoRegisteredFamilyFailsWithoutRunning) {
  std::atomic<int> runs{0};
  makeEngine([&](TaskEngine::Run&) -> Status {
    ++runs;
    return {};
  });
  for (TaskKind kind : {TaskKind::kVmCreate, TaskKind::kUnknown}) {
    auto task = engine_->submit(TaskEngine::newTask(kind, "ta", toString(kind), "me", "{}"));
    ASSERT_TRUE(task.has_value()) << toString(kind);
    TaskRecord done = waitEnd(task->id);
    EXPECT_EQ(done.state, TaskState::kFailed) << toString(kind);
    EXPECT_NE(done.message.find("unknown task kind " + toString(kind)), std::string::npos)
        << done.message;
  }
  EXPECT_EQ(runs.load(), 0);
  auto volume =
      engine_->submit(TaskEngine::newTask(TaskKind::kVolumeCreate, "ta", "v", "me", "{}"));
  ASSERT_TRUE(volume.has_value());
  EXPECT_EQ(waitEnd(volume->id).state, TaskState::kSucceeded);
  EXPECT_EQ(runs.load(), 1);
}

TEST_F(TaskEngineTest, ATaskThatFinishesFirstKeepsItsOutcome) {
  std::atomic<bool> release{false};
  makeEngine([&](TaskEngine::Run& run) {
    return run.step("work", 50, "working", [&]() -> Status {
      while (!release) std::this_thread::sleep_for(milliseconds(5));
      return {};  // never looks at the request
    });
  });
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeCopy, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(engine_->cancel(task->id, "me").has_value());
  release = true;
  EXPECT_EQ(waitEnd(task->id).state, TaskState::kSucceeded);
}

TEST_F(TaskEngineTest, ACancelRequestSurvivesARestart) {
  // The first "qiaod" takes the request and dies before its run saw it.
  TaskRecord task = TaskEngine::newTask(TaskKind::kVolumeCopy, "ta", "x", "me", "{}");
  ASSERT_TRUE(store_->tasks().create(task).has_value());
  ASSERT_TRUE(store_->tasks().update(task.id, TaskState::kRunning, 10, "working").has_value());
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
  EXPECT_EQ(waitEnd(task.id).state, TaskState::kCancelled);
  EXPECT_TRUE(saw);
}

std::vector<std::string> journalOf(Store& store, const std::string& id) {
  std::vector<std::string> out;
  if (auto entries = store.tasks().journalOf(id)) {
    for (const auto& e : *entries) out.push_back(e.step + ":" + toString(e.phase));
  }
  return out;
}

TEST_F(TaskEngineTest, AWaitWithNothingToWaitForIsNotJournaled) {
  makeEngine([](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting", milliseconds(1000),
                       []() -> Result<std::string> { return std::string(); });
  });
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(waitEnd(task->id).state, TaskState::kSucceeded);
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
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(waitEnd(task->id).state, TaskState::kSucceeded);
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
  auto broken =
      engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "broken", "me", "{}"));
  auto slow =
      engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "slow", "me", "{}"));
  ASSERT_TRUE(broken && slow);
  auto b = waitEnd(broken->id);
  EXPECT_EQ(b.state, TaskState::kFailed);
  EXPECT_NE(b.message.find("network ta/web was not made"), std::string::npos) << b.message;
  auto s = waitEnd(slow->id);
  EXPECT_EQ(s.state, TaskState::kFailed);
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
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  for (int i = 0; i < 500 && !waiting; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(waiting);
  const auto stop_began = std::chrono::steady_clock::now();
  engine_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_began, std::chrono::seconds(5))
      << "a stop should not wait out the whole wait";
  engine_.reset();
  auto left = store_->tasks().get(task->id);
  ASSERT_TRUE(left.has_value());
  EXPECT_TRUE(left->state == TaskState::kQueued || left->state == TaskState::kRunning)
      << "no outcome is recorded: the task is unfinished, not " << toString(left->state);
  // The next start resumes it, and this time what it waits for is there.
  makeEngine([](TaskEngine::Run& run) -> Status {
    return run.waitFor("wait", "waiting", milliseconds(1000),
                       []() -> Result<std::string> { return std::string(); });
  });
  engine_->resumeUnfinished();
  auto done = waitEnd(task->id);
  EXPECT_EQ(done.state, TaskState::kSucceeded);
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
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  for (int i = 0; i < 500 && journalOf(*store_, task->id).empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  engine_->resumeUnfinished();
  release = true;
  EXPECT_EQ(waitEnd(task->id).state, TaskState::kSucceeded);
  engine_->drain();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(journalOf(*store_, task->id),
            (std::vector<std::string>{"define:begin", "define:done"}));
  EXPECT_TRUE(store_->tasks().verifyJournal()->ok);
}

// ---- Restarts, giving up, and rollback ----------------------------------------------------

// A one-shot signal a run raises and the test waits for (bounded, without sleeping).
class Signal {
 public:
  void raise() {
    std::lock_guard lock(mu_);
    raised_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return raised_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool raised_ = false;
};

constexpr auto kSignalTimeout = std::chrono::seconds(20);

class TaskEngineRestartTest : public TaskEngineTest {
 protected:
  // qiaod restarts: the engine and the store go; the next start opens the same file.
  void restart() {
    engine_.reset();
    store_.reset();
    openStore();
  }
  // An engine of `workers` workers whose volume tasks run `body`, and `give_up` when a task
  // was interrupted more than 3 (max_attempts) times.
  void makeEngineWith(size_t workers, std::function<Status(TaskEngine::Run&)> body,
                      std::function<void(TaskEngine::Run&)> give_up = nullptr) {
    engine_ = std::make_unique<TaskEngine>(store_->tasks(), events_, workers, 3);
    TaskEngine::Kind kind;
    kind.run = std::move(body);
    kind.give_up = std::move(give_up);
    engine_->addFamily(TaskFamily::kVolume, std::move(kind));
  }
  // A task the previous qiaod recorded in `state`, after `attempts` restarts.
  TaskRecord recorded(const std::string& target, TaskState state, int attempts = 0,
                      const std::string& params = "{}") {
    TaskRecord task =
        TaskEngine::newTask(TaskKind::kVolumeResize, "ta", target, "qiao://c1/user/op", params);
    task.state = state;
    task.attempts = attempts;
    EXPECT_TRUE(store_->tasks().create(task).has_value());
    return task;
  }
  void journal(const std::string& id, const std::string& step, JournalPhase phase) {
    ASSERT_TRUE(store_->tasks().journal(id, step, phase).has_value());
  }
  TaskRecord stored(const std::string& id) {
    auto task = store_->tasks().get(id);
    EXPECT_TRUE(task.has_value()) << id;
    return task ? *task : TaskRecord{};
  }
  void expectJournalWhole() {
    auto verified = store_->tasks().verifyJournal();
    ASSERT_TRUE(verified.has_value());
    EXPECT_TRUE(verified->ok) << verified->first_problem;
  }
};

Status ok() { return {}; }

TEST_F(TaskEngineRestartTest, TheNextStartResumesUnfinishedTasksClosingTheStepsLeftOpen) {
  // What the previous qiaod left: "crashed" died in step b (a done); "unwinding" died undoing
  // a after b failed; "queued" never started; two tasks had finished.
  TaskRecord crashed = recorded("crashed", TaskState::kRunning, 0, R"({"size":3})");
  journal(crashed.id, "a", JournalPhase::kBegin);
  journal(crashed.id, "a", JournalPhase::kDone);
  journal(crashed.id, "b", JournalPhase::kBegin);
  TaskRecord unwinding = recorded("unwinding", TaskState::kRunning);
  journal(unwinding.id, "a", JournalPhase::kBegin);
  journal(unwinding.id, "a", JournalPhase::kDone);
  journal(unwinding.id, "b", JournalPhase::kBegin);
  journal(unwinding.id, "b", JournalPhase::kFailed);
  journal(unwinding.id, "a", JournalPhase::kUndoBegin);
  TaskRecord queued = recorded("queued", TaskState::kQueued);
  TaskRecord succeeded = recorded("succeeded", TaskState::kSucceeded);
  TaskRecord failed = recorded("failed", TaskState::kFailed);
  restart();

  std::mutex mu;
  std::map<std::string, TaskRecord> given;  // by target: what each run was handed
  std::atomic<int> runs{0};
  makeEngineWith(2, [&](TaskEngine::Run& run) -> Status {
    ++runs;
    {
      std::lock_guard lock(mu);
      given[run.task().target] = run.task();
    }
    if (auto a = run.step("a", 40, "doing a", ok); !a) return a;
    return run.step("b", 80, "doing b", ok);
  });
  engine_->resumeUnfinished();
  engine_->drain();

  EXPECT_EQ(runs.load(), 3) << "finished tasks are not run again";
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(given.size(), 3u);
    EXPECT_TRUE(given.contains("crashed") && given.contains("unwinding") &&
                given.contains("queued"));
    // The run is handed the task as recorded, with this restart counted.
    const TaskRecord& c = given["crashed"];
    EXPECT_EQ(c.id, crashed.id);
    EXPECT_EQ(c.kind, TaskKind::kVolumeResize);
    EXPECT_EQ(c.tenant, "ta");
    EXPECT_EQ(c.identity, "qiao://c1/user/op");
    EXPECT_EQ(c.params_json, R"({"size":3})");
    EXPECT_EQ(c.attempts, 1);
  }
  for (const TaskRecord* t : {&crashed, &unwinding, &queued}) {
    TaskRecord now = stored(t->id);
    EXPECT_EQ(now.state, TaskState::kSucceeded) << t->target;
    EXPECT_EQ(now.progress, 100) << t->target;
    EXPECT_EQ(now.attempts, 1) << t->target << ": one restart counted";
  }
  for (const TaskRecord* t : {&succeeded, &failed}) {
    TaskRecord now = stored(t->id);
    EXPECT_EQ(toString(now.state), t->target) << "a finished task keeps its outcome";
    EXPECT_EQ(now.attempts, 0) << t->target;
    EXPECT_TRUE(journalOf(*store_, t->id).empty());
  }
  // The step the crash left open is closed as failed, then the task runs from its start
  // (steps are idempotent).
  EXPECT_EQ(journalOf(*store_, crashed.id),
            (std::vector<std::string>{"a:begin", "a:done", "b:begin", "b:failed", "a:begin",
                                      "a:done", "b:begin", "b:done"}));
  auto entries = store_->tasks().journalOf(crashed.id);
  ASSERT_TRUE(entries.has_value());
  ASSERT_GE(entries->size(), 4u);
  EXPECT_NE((*entries)[3].detail.find("interrupted by a restart"), std::string::npos)
      << (*entries)[3].detail;
  // An undo the crash cut short is closed likewise.
  EXPECT_EQ(journalOf(*store_, unwinding.id),
            (std::vector<std::string>{"a:begin", "a:done", "b:begin", "b:failed", "a:undo-begin",
                                      "a:failed", "a:begin", "a:done", "b:begin", "b:done"}));
  EXPECT_EQ(journalOf(*store_, queued.id),
            (std::vector<std::string>{"a:begin", "a:done", "b:begin", "b:done"}));
  expectJournalWhole();

  // Nothing is left for a further pass.
  engine_->resumeUnfinished();
  engine_->drain();
  EXPECT_EQ(runs.load(), 3);
}

TEST_F(TaskEngineRestartTest, ResumedTasksAreTakenOldestFirst) {
  std::vector<std::string> made;
  for (const char* target : {"d", "b", "c", "a"}) {
    made.push_back(
        recorded(target, std::string(target) == "c" ? TaskState::kQueued : TaskState::kRunning).id);
  }
  restart();
  std::mutex mu;
  std::vector<std::string> order;
  makeEngineWith(1, [&](TaskEngine::Run& run) -> Status {  // one worker: one at a time
    std::lock_guard lock(mu);
    order.push_back(run.task().id);
    return {};
  });
  engine_->resumeUnfinished();
  engine_->drain();
  std::lock_guard lock(mu);
  EXPECT_EQ(order, made);
}

// A run that makes something, then waits (Run::waitFor) for parts that never come, raising
// `reached` when it waits: a stop of qiaod interrupts it there and leaves the task unfinished.
std::function<Status(TaskEngine::Run&)> interruptible(std::shared_ptr<Signal> reached,
                                                      std::mutex* mu, std::vector<int>* attempts) {
  return [reached, mu, attempts](TaskEngine::Run& run) -> Status {
    {
      std::lock_guard lock(*mu);
      attempts->push_back(run.task().attempts);
    }
    if (auto made = run.step("make", 30, "making", ok, ok); !made) return made;
    return run.waitFor("parts", "waiting", std::chrono::seconds(60),
                       [reached]() -> Result<std::string> {
                         reached->raise();
                         return std::string("the parts");
                       });
  };
}

TEST_F(TaskEngineRestartTest, ATaskInterruptedMoreThanMaxAttemptsTimesGivesUpAndFails) {
  std::mutex mu;
  std::vector<int> run_attempts;
  std::atomic<int> give_ups{0}, given_up_at{-1};
  auto give_up = [&](TaskEngine::Run& run) {
    ++give_ups;
    given_up_at = run.task().attempts;
    (void)run.step("unmake", 90, "removing what was made", ok);
  };

  // The first run, then three resumed ones, are each interrupted by a stop of qiaod.
  auto reached = std::make_shared<Signal>();
  makeEngineWith(2, interruptible(reached, &mu, &run_attempts), give_up);
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  const std::string id = task->id;
  for (int restarts = 0;; ++restarts) {
    ASSERT_TRUE(reached->wait(kSignalTimeout)) << "run " << restarts << " never got to its wait";
    engine_->stop();  // returns once the run has left (its wait sees the stop)
    TaskRecord left = stored(id);
    EXPECT_EQ(left.state, TaskState::kRunning) << "no outcome recorded at run " << restarts;
    EXPECT_EQ(left.attempts, restarts);
    restart();
    if (restarts == 3) break;
    reached = std::make_shared<Signal>();
    makeEngineWith(2, interruptible(reached, &mu, &run_attempts), give_up);
    engine_->resumeUnfinished();
  }

  // The fourth restart: interrupted more than 3 times, the task gives up instead of running.
  makeEngineWith(2, interruptible(std::make_shared<Signal>(), &mu, &run_attempts), give_up);
  engine_->resumeUnfinished();
  engine_->drain();
  TaskRecord done = stored(id);
  EXPECT_EQ(done.state, TaskState::kFailed);
  EXPECT_EQ(done.attempts, 4);
  EXPECT_NE(done.message.find("gave up"), std::string::npos) << done.message;
  EXPECT_NE(done.error_json.find("\"internal\""), std::string::npos) << done.error_json;
  EXPECT_EQ(give_ups.load(), 1);
  EXPECT_EQ(given_up_at.load(), 4);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(run_attempts, (std::vector<int>{0, 1, 2, 3}))
        << "run ran at every attempt up to max_attempts, and not after";
  }
  auto journal = journalOf(*store_, id);
  ASSERT_GE(journal.size(), 2u);
  EXPECT_EQ(std::vector<std::string>(journal.end() - 2, journal.end()),
            (std::vector<std::string>{"unmake:begin", "unmake:done"}))
      << "give_up's steps are journaled like any";
  expectJournalWhole();

  // Failed is final: a further start neither resumes nor gives up again.
  restart();
  makeEngineWith(2, interruptible(std::make_shared<Signal>(), &mu, &run_attempts), give_up);
  engine_->resumeUnfinished();
  engine_->drain();
  EXPECT_EQ(give_ups.load(), 1);
  EXPECT_EQ(stored(id).state, TaskState::kFailed);
  std::lock_guard lock(mu);
  EXPECT_EQ(run_attempts.size(), 4u);
}

TEST_F(TaskEngineRestartTest, AtMaxAttemptsATaskStillRunsAndAKindWithoutGiveUpJustFails) {
  // Restarted twice before: this start is the third attempt, still within max_attempts (3).
  TaskRecord within = recorded("within", TaskState::kRunning, 2);
  // Restarted three times before: this start is one too many.
  TaskRecord beyond = recorded("beyond", TaskState::kRunning, 3);
  restart();
  std::atomic<int> runs{0};
  makeEngineWith(2, [&](TaskEngine::Run&) -> Status {
    ++runs;
    return {};
  });  // no give_up: the task fails all the same
  engine_->resumeUnfinished();
  engine_->drain();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(stored(within.id).state, TaskState::kSucceeded);
  EXPECT_EQ(stored(within.id).attempts, 3);
  TaskRecord gave_up = stored(beyond.id);
  EXPECT_EQ(gave_up.state, TaskState::kFailed);
  EXPECT_EQ(gave_up.attempts, 4);
  EXPECT_NE(gave_up.message.find("gave up"), std::string::npos) << gave_up.message;
}

// `attempts` counts the restarts that found the task unfinished, each of which interrupted
// it: at attempts 4 (max_attempts 3) it was interrupted 4 times (the message said 3).
TEST_F(TaskEngineRestartTest, TheGiveUpMessageCountsEveryInterruption) {
  TaskRecord beyond = recorded("beyond", TaskState::kRunning, 3);
  restart();
  makeEngineWith(2, [](TaskEngine::Run&) -> Status { return {}; });
  engine_->resumeUnfinished();
  engine_->drain();
  TaskRecord gave_up = stored(beyond.id);
  EXPECT_EQ(gave_up.attempts, 4);
  EXPECT_NE(gave_up.message.find("interrupted 4 times"), std::string::npos) << gave_up.message;
}

TEST_F(TaskEngineRestartTest, ARollbackUndoesTheStepsDoneNewestFirst) {
  std::mutex mu;
  std::vector<std::string> calls;
  auto note = [&](std::string what, Status outcome = {}) {
    return [&mu, &calls, what, outcome]() -> Status {
      std::lock_guard lock(mu);
      calls.push_back(what);
      return outcome;
    };
  };
  makeEngineWith(2, [&](TaskEngine::Run& run) -> Status {
    for (const auto& [name, undo] : std::vector<std::pair<std::string, bool>>{
             {"a", true}, {"b", false}, {"c", true}, {"d", true}}) {
      auto done = run.step(name, name == "d" ? 40 : 10, "doing " + name, note("do " + name),
                           undo ? std::function<Status()>(note("undo " + name)) : nullptr);
      if (!done) return done;
    }
    Status failed =
        run.step("e", 90, "doing e",
                 note("do e", makeError(ErrorCode::kConflict, "test", "e broke")), note("undo e"));
    if (failed) return failed;
    run.rollback();
    run.rollback();  // the undos are spent: nothing runs twice
    return failed;
  });
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  engine_->drain();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(calls, (std::vector<std::string>{"do a", "do b", "do c", "do d", "do e", "undo d",
                                               "undo c", "undo a"}))
        << "a step without an undo is skipped; the failed step's undo is never run";
  }
  EXPECT_EQ(journalOf(*store_, task->id),
            (std::vector<std::string>{"a:begin", "a:done", "b:begin", "b:done", "c:begin", "c:done",
                                      "d:begin", "d:done", "e:begin", "e:failed", "d:undo-begin",
                                      "d:undone", "c:undo-begin", "c:undone", "a:undo-begin",
                                      "a:undone"}));
  TaskRecord done = stored(task->id);
  EXPECT_EQ(done.state, TaskState::kFailed);
  EXPECT_NE(done.message.find("e broke"), std::string::npos) << done.message;
  EXPECT_NE(done.error_json.find("\"conflict\""), std::string::npos) << done.error_json;
  EXPECT_EQ(done.progress, 40) << "the progress of the last step done";
  expectJournalWhole();
}

TEST_F(TaskEngineRestartTest, AFailedUndoIsJournaledAndTheEarlierUndosStillRun) {
  std::mutex mu;
  std::vector<std::string> calls;
  auto note = [&](std::string what, Status outcome = {}) {
    return [&mu, &calls, what, outcome]() -> Status {
      std::lock_guard lock(mu);
      calls.push_back(what);
      return outcome;
    };
  };
  makeEngineWith(2, [&](TaskEngine::Run& run) -> Status {
    if (auto a = run.step("a", 10, "a", note("do a"), note("undo a")); !a) return a;
    if (auto b = run.step("b", 20, "b", note("do b"),
                          note("undo b", makeError(ErrorCode::kInternal, "test", "b is stuck")));
        !b) {
      return b;
    }
    if (auto c = run.step("c", 30, "c", note("do c"), note("undo c")); !c) return c;
    Status d = run.step("d", 40, "d", note("do d", makeError(ErrorCode::kInternal, "test", "no")));
    run.rollback();
    return d;
  });
  auto task = engine_->submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task.has_value());
  engine_->drain();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(calls, (std::vector<std::string>{"do a", "do b", "do c", "do d", "undo c", "undo b",
                                               "undo a"}));
  }
  EXPECT_EQ(journalOf(*store_, task->id),
            (std::vector<std::string>{"a:begin", "a:done", "b:begin", "b:done", "c:begin", "c:done",
                                      "d:begin", "d:failed", "c:undo-begin", "c:undone",
                                      "b:undo-begin", "b:failed", "a:undo-begin", "a:undone"}));
  auto entries = store_->tasks().journalOf(task->id);
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 14u);
  EXPECT_NE((*entries)[11].detail.find("undo: test: b is stuck"), std::string::npos)
      << (*entries)[11].detail;
  EXPECT_EQ(stored(task->id).state, TaskState::kFailed);
  expectJournalWhole();
}

// Two nodes' engines in one process, each given its node's failpoints: a step's failpoint
// fires in the node that armed it, and only there.
TEST_F(TaskEngineTest, EachEngineHitsItsOwnNodesFailpoints) {
  std::mutex mu;
  std::vector<std::string> hits_a, hits_b;
  Failpoints a({"volume.resize/work:after"}, [&](std::string_view name) {
    std::lock_guard lock(mu);
    hits_a.emplace_back(name);
  });
  Failpoints b({"volume.resize/work:before"}, [&](std::string_view name) {
    std::lock_guard lock(mu);
    hits_b.emplace_back(name);
  });
  TaskEngine::Kind kind;
  kind.run = [](TaskEngine::Run& run) -> Status {
    return run.step("work", 50, "working", []() -> Status { return {}; });
  };
  TaskEngine engine_a(store_->tasks(), events_, 1, 3, a);
  TaskEngine engine_b(store_->tasks(), events_, 1, 3, b);
  engine_a.addFamily(TaskFamily::kVolume, kind);
  engine_b.addFamily(TaskFamily::kVolume, kind);
  auto task_a =
      engine_a.submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "x", "me", "{}"));
  ASSERT_TRUE(task_a.has_value());
  EXPECT_EQ(waitEnd(task_a->id).state, TaskState::kSucceeded);
  auto task_b =
      engine_b.submit(TaskEngine::newTask(TaskKind::kVolumeResize, "ta", "y", "me", "{}"));
  ASSERT_TRUE(task_b.has_value());
  EXPECT_EQ(waitEnd(task_b->id).state, TaskState::kSucceeded);
  std::lock_guard lock(mu);
  EXPECT_EQ(hits_a, std::vector<std::string>{"volume.resize/work:after"});
  EXPECT_EQ(hits_b, std::vector<std::string>{"volume.resize/work:before"});
}

}  // namespace
}  // namespace qiao
