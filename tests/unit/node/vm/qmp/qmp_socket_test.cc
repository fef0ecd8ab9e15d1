// QmpSocketChannel against FakeQmpServer: replies matched by id in any order, events between
// replies, timeouts, disconnects and reconnection, garbage and oversized lines, QMP errors,
// several callers at once, and stopping with commands in flight.
#include "node/vm/qmp/qmp_socket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/unit/node/vm/qmp/fake_qmp_server.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

QmpSocketOptions optionsFor(const FakeQmpServer& server) {
  QmpSocketOptions options;
  options.path = server.path();
  options.connect_timeout = milliseconds(2000);
  options.write_timeout = milliseconds(2000);
  return options;
}

void expectScriptOk(FakeQmpServer& server) {
  EXPECT_TRUE(server.waitDone()) << "the fake server's script did not finish";
  for (const auto& failure : server.failures()) ADD_FAILURE() << "fake server: " << failure;
}

// Collects events on the channel's thread; the test waits for a count.
class EventLog {
 public:
  QmpEventHandler handler() {
    return [this](const QmpEvent& event) {
      std::lock_guard lock(mu_);
      names_.push_back(event.name);
      data_.push_back(event.data);
      cv_.notify_all();
    };
  }
  std::vector<std::string> waitFor(size_t n, milliseconds max = milliseconds(5000)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, max, [&] { return names_.size() >= n; });
    return names_;
  }
  std::vector<std::string> names() {
    std::lock_guard lock(mu_);
    return names_;
  }
  json data(size_t i) {
    std::lock_guard lock(mu_);
    return data_.at(i);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> names_;
  std::vector<json> data_;
};

TEST(QmpSocket, ExecuteReturnsTheReturnValue) {
  FakeQmpServer server;
  server.expect("query-status", {{"status", "running"}, {"running", true}})
      .expect("blockdev-add", json::object());
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  EXPECT_EQ(channel.generation(), 0u);
  auto status = channel.execute("query-status");
  ASSERT_TRUE(status.has_value()) << status.error().describe();
  EXPECT_EQ((*status)["status"], "running");
  EXPECT_EQ(channel.generation(), 1u);
  EXPECT_EQ(channel.serverVersion()["qemu"]["major"], 7);
  auto added = channel.execute("blockdev-add", {{"driver", "null-co"}, {"node-name", "n0"}});
  ASSERT_TRUE(added.has_value()) << added.error().describe();
  expectScriptOk(server);
  auto sent = server.received();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_FALSE(sent[0].contains("arguments"));  // none given: none sent
  EXPECT_TRUE(sent[0]["id"].is_number_integer());
  EXPECT_NE(sent[0]["id"], sent[1]["id"]);
  EXPECT_EQ(sent[1]["arguments"], json({{"driver", "null-co"}, {"node-name", "n0"}}));
}

TEST(QmpSocket, RefusesBadArgumentsWithoutConnecting) {
  FakeQmpServer server;
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto result = channel.execute("x", json::array({1}));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  result = channel.execute("");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(server.connections(), 0);
}

TEST(QmpSocket, NonUtf8ArgumentsAreAnErrorNotACrash) {
  FakeQmpServer server;
  server.expect("after", {{"ok", true}});
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto result = channel.execute("x", {{"name", "\xff\xfe"}});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(result.error().message.find("UTF-8"), std::string::npos);
  EXPECT_EQ(server.connections(), 0);  // refused before connecting
  auto after = channel.execute("after");
  ASSERT_TRUE(after.has_value()) << after.error().describe();
  expectScriptOk(server);
}

TEST(QmpSocket, RepliesOutOfOrderReachTheirCommands) {
  FakeQmpServer server;
  server.hold("first").hold("second").answer("second", {{"n", 2}}).answer("first", {{"n", 1}});
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  ASSERT_TRUE(channel.connect().has_value());
  auto first = std::async(std::launch::async, [&] { return channel.execute("first"); });
  ASSERT_TRUE(server.waitReceived(1));  // "first" is on the wire before "second"
  auto second = std::async(std::launch::async, [&] { return channel.execute("second"); });
  auto r1 = first.get();
  auto r2 = second.get();
  ASSERT_TRUE(r1.has_value()) << r1.error().describe();
  ASSERT_TRUE(r2.has_value()) << r2.error().describe();
  EXPECT_EQ((*r1)["n"], 1);
  EXPECT_EQ((*r2)["n"], 2);
  expectScriptOk(server);
}

TEST(QmpSocket, EventsBetweenRepliesGoToTheirSubscribersInOrder) {
  FakeQmpServer server;
  server.hold("query-status")
      .event("STOP")
      // An event that carries the held command's id (1, the first on the connection) is still an
      // event: it must not complete the command.
      .sendRaw(R"({"event": "RESUME", "id": 1, "timestamp": {"seconds": 1, "microseconds": 2}})"
               "\r\n")
      .event("BLOCK_JOB_READY", {{"device", "job0"}})
      .event("STOP")
      .answer("query-status", {{"status", "paused"}})
      .event("RESUME");
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  EventLog all, stops, resumes, dropped;
  auto sub_all = channel.subscribe("", all.handler());
  auto sub_stop = channel.subscribe("STOP", stops.handler());
  auto sub_resume = channel.subscribe("RESUME", resumes.handler());
  { auto sub_dropped = channel.subscribe("STOP", dropped.handler()); }  // unsubscribed at once
  server.start();
  auto status = channel.execute("query-status");
  ASSERT_TRUE(status.has_value()) << status.error().describe();
  EXPECT_EQ((*status)["status"], "paused");
  EXPECT_EQ(server.received().at(0)["id"], 1);
  // Events sent before the reply have been delivered by the time the reply is returned.
  auto before_reply = all.names();
  ASSERT_GE(before_reply.size(), 4u);
  before_reply.resize(4);  // the RESUME after the reply may have come already
  EXPECT_EQ(before_reply, (std::vector<std::string>{"STOP", "RESUME", "BLOCK_JOB_READY", "STOP"}));
  EXPECT_EQ(all.data(2), json({{"device", "job0"}}));
  EXPECT_EQ(all.waitFor(5),
            (std::vector<std::string>{"STOP", "RESUME", "BLOCK_JOB_READY", "STOP", "RESUME"}));
  EXPECT_EQ(stops.names(), (std::vector<std::string>{"STOP", "STOP"}));
  EXPECT_EQ(resumes.waitFor(2), (std::vector<std::string>{"RESUME", "RESUME"}));
  EXPECT_TRUE(dropped.names().empty());
  expectScriptOk(server);
}

TEST(QmpSocket, UnsubscribedHandlersGetNothingMore) {
  FakeQmpServer server;
  std::promise<void> first_sent, go_on;
  auto go = go_on.get_future().share();
  server.event("A")
      .call([&] { first_sent.set_value(); })
      .call([go] { go.wait(); })
      .event("B")
      .event("C");
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  EventLog kept, stopped;
  auto sub_kept = channel.subscribe("", kept.handler());
  auto sub_stopped = channel.subscribe("", stopped.handler());
  server.start();
  ASSERT_TRUE(channel.connect().has_value());
  first_sent.get_future().wait();
  EXPECT_EQ(stopped.waitFor(1), std::vector<std::string>{"A"});
  sub_stopped.reset();
  EXPECT_FALSE(sub_stopped.active());
  go_on.set_value();
  EXPECT_EQ(kept.waitFor(3), (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_EQ(stopped.names(), std::vector<std::string>{"A"});
  expectScriptOk(server);
}

TEST(QmpSocket, HandlersMayUnsubscribeThemselvesButNotExecute) {
  FakeQmpServer server;
  server.event("A").event("B").expect("after");
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  std::promise<Result<json>> from_handler;
  std::atomic<int> calls{0};
  QmpSubscription self_removing;
  self_removing = channel.subscribe("", [&](const QmpEvent&) {
    if (calls++ == 0) from_handler.set_value(channel.execute("query-status"));
    self_removing.reset();  // from inside its own handler: no deadlock
  });
  server.start();
  ASSERT_TRUE(channel.connect().has_value());  // events flow only on a connection
  auto inner = from_handler.get_future().get();
  ASSERT_FALSE(inner.has_value());
  EXPECT_EQ(inner.error().code, ErrorCode::kInternal);
  auto after = channel.execute("after");
  ASSERT_TRUE(after.has_value()) << after.error().describe();
  EXPECT_EQ(calls.load(), 1);
  expectScriptOk(server);
}

TEST(QmpSocket, QmpErrorReplyBecomesAnError) {
  FakeQmpServer server;
  server.expectError("blockdev-del", "GenericError", "Failed to find node with node-name='n9'")
      .expect("query-status", {{"status", "running"}});
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto result = channel.execute("blockdev-del", {{"node-name", "n9"}});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().subsystem, "qmp");
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().message,
            "QEMU refused blockdev-del: GenericError: Failed to find node with node-name='n9'");
  // An error reply is an answer, not a broken connection.
  auto status = channel.execute("query-status");
  ASSERT_TRUE(status.has_value()) << status.error().describe();
  EXPECT_EQ(channel.generation(), 1u);
  expectScriptOk(server);
}

TEST(QmpSocket, CommandThatNeverAnswersTimesOutAndItsLateReplyIsDropped) {
  FakeQmpServer server;
  // "slow" is answered only after "next" was sent; then "next" is answered.
  server.hold("slow")
      .hold("next")
      .answer("slow", {{"who", "slow"}})
      .answer("next", {{"who", "next"}});
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  const auto start = Clock::now();
  auto slow = channel.execute("slow", {}, milliseconds(200));
  const auto waited = Clock::now() - start;
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code, ErrorCode::kTimeout);
  EXPECT_NE(slow.error().message.find("within 200 ms"), std::string::npos);
  EXPECT_GE(waited, milliseconds(200));
  EXPECT_LT(waited, milliseconds(2000));
  auto next = channel.execute("next");
  ASSERT_TRUE(next.has_value()) << next.error().describe();
  EXPECT_EQ((*next)["who"], "next");
  EXPECT_EQ(channel.generation(), 1u);  // the timeout did not cost the connection
  expectScriptOk(server);
}

TEST(QmpSocket, DisconnectFailsPendingAndNextExecuteReconnects) {
  FakeQmpServer server;
  server.hold("a").hold("b").closeConnection().expect("c", {{"again", true}});
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  ASSERT_TRUE(channel.connect().has_value());
  EXPECT_EQ(channel.generation(), 1u);
  auto a = std::async(std::launch::async, [&] { return channel.execute("a"); });
  ASSERT_TRUE(server.waitReceived(1));
  auto b = std::async(std::launch::async, [&] { return channel.execute("b"); });
  for (auto* pending : {&a, &b}) {
    auto result = pending->get();
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message.find("closed the connection"), std::string::npos)
        << result.error().message;
  }
  auto c = channel.execute("c");
  ASSERT_TRUE(c.has_value()) << c.error().describe();
  EXPECT_EQ(channel.generation(), 2u);
  EXPECT_EQ(server.connections(), 2);
  expectScriptOk(server);
}

TEST(QmpSocket, GarbageDropsTheConnectionWithAClearError) {
  FakeQmpServer server;
  server.hold("a").sendRaw("this is not QMP\r\n").expectClientClose().expect("b");
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto a = channel.execute("a");
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(a.error().message.find("unreadable message"), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find("not valid JSON"), std::string::npos) << a.error().message;
  auto b = channel.execute("b");
  ASSERT_TRUE(b.has_value()) << b.error().describe();
  EXPECT_EQ(server.connections(), 2);
  expectScriptOk(server);
}

TEST(QmpSocket, OversizedLineDropsTheConnectionWithAClearError) {
  FakeQmpServer server;
  // A well-formed reply to "a", but over the channel's limit of 4 KiB - and no newline for a
  // long while, so the channel must give up before the end of the line.
  const std::string huge = R"({"id": 1, "return": ")" + std::string(1 << 20, 'x') + "\"}\r\n";
  server.hold("a").sendRaw(huge).expectClientClose().expect("b");
  server.start();
  QmpRuntime runtime;
  auto options = optionsFor(server);
  options.limits.max_message_bytes = 4096;
  QmpSocketChannel channel(runtime, options);
  auto a = channel.execute("a");
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(a.error().message.find("larger than 4096 bytes"), std::string::npos)
      << a.error().message;
  auto b = channel.execute("b");
  ASSERT_TRUE(b.has_value()) << b.error().describe();
  expectScriptOk(server);
}

TEST(QmpSocket, DefaultLimitTakesBigRepliesAndRefusesBiggerOnes) {
  FakeQmpServer server;
  const std::string fits(kQmpMaxMessageBytes - 64, 'y');
  server.expect("big", fits);
  server.hold("too-big")
      .sendRaw(R"({"id": 2, "return": ")" + std::string(kQmpMaxMessageBytes, 'z') + "\"}\r\n")
      .expectClientClose();
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto big = channel.execute("big");
  ASSERT_TRUE(big.has_value()) << big.error().describe();
  EXPECT_EQ(big->get_ref<const std::string&>().size(), fits.size());
  auto too_big = channel.execute("too-big");
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("larger than 16777216 bytes"), std::string::npos)
      << too_big.error().message;
  expectScriptOk(server);
}

TEST(QmpSocket, PeerThatDoesNotGreetFailsTheAttemptInBoundedTime) {
  FakeQmpServer server;
  server.acceptSilently().expectClientClose().expect("after");
  server.start();
  QmpRuntime runtime;
  auto options = optionsFor(server);
  options.connect_timeout = milliseconds(300);
  QmpSocketChannel channel(runtime, options);
  const auto start = Clock::now();
  auto result = channel.execute("first", {}, milliseconds(5000));
  ASSERT_FALSE(result.has_value());
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(result.error().message.find("no QMP greeting"), std::string::npos)
      << result.error().message;
  // The next execute() makes the next attempt.
  auto after = channel.execute("after");
  ASSERT_TRUE(after.has_value()) << after.error().describe();
  expectScriptOk(server);
}

TEST(QmpSocket, PeerThatDoesNotStartWithAGreetingIsRefused) {
  FakeQmpServer server;
  server.acceptSilently().sendRaw("{\"return\": {}}\r\n").expectClientClose();
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  auto result = channel.execute("x");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(result.error().message.find("did not start with a QMP greeting"), std::string::npos)
      << result.error().message;
  expectScriptOk(server);
}

TEST(QmpSocket, NoServerIsUnavailableAtOnce) {
  QmpRuntime runtime;
  QmpSocketOptions options;
  options.path = "/nonexistent/qiao-qmp-test.sock";
  QmpSocketChannel channel(runtime, options);
  const auto start = Clock::now();
  auto result = channel.execute("query-status");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(result.error().message.find(options.path), std::string::npos);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  EXPECT_FALSE(channel.connected());
}

TEST(QmpSocket, ConcurrentExecuteFromSeveralThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  FakeQmpServer server;
  server.echo(kThreads * kPerThread);
  server.start();
  QmpRuntime runtime;
  QmpSocketChannel channel(runtime, optionsFor(server));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::mutex failures_mu;
  std::vector<std::string> failures;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        json args = {{"thread", t}, {"i", i}};
        auto result = channel.execute("echo-" + std::to_string(t), args);
        std::string failure;
        if (!result) {
          failure = result.error().describe();
        } else if ((*result)["echo"] != "echo-" + std::to_string(t) ||
                   (*result)["arguments"] != args) {
          failure = "thread " + std::to_string(t) + " got another's reply: " + result->dump();
        }
        if (failure.empty()) {
          ++ok;
        } else {
          std::lock_guard lock(failures_mu);
          failures.push_back(failure);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) ADD_FAILURE() << failure;
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(server.connections(), 1);  // concurrent first calls shared one connection attempt
  expectScriptOk(server);
}

TEST(QmpSocket, StopFailsPendingCommandsAndJoins) {
  FakeQmpServer server;
  server.hold("a").hold("b");
  server.start();
  auto runtime = std::make_unique<QmpRuntime>();
  QmpSocketChannel channel(*runtime, optionsFor(server));
  auto a =
      std::async(std::launch::async, [&] { return channel.execute("a", {}, milliseconds(30000)); });
  ASSERT_TRUE(server.waitReceived(1));
  auto b =
      std::async(std::launch::async, [&] { return channel.execute("b", {}, milliseconds(30000)); });
  ASSERT_TRUE(server.waitReceived(2));
  const auto start = Clock::now();
  runtime->stop();
  for (auto* pending : {&a, &b}) {
    auto result = pending->get();
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message.find("runtime stopped"), std::string::npos)
        << result.error().message;
  }
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  // Stopped for good; the channel may outlive the runtime.
  runtime.reset();
  auto after = channel.execute("c");
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable);
}

TEST(QmpSocket, DestroyingTheChannelClosesItsConnection) {
  FakeQmpServer server;
  server.expect("a").expectClientClose(milliseconds(3000)).expect("again");
  server.start();
  QmpRuntime runtime;
  auto channel = std::make_unique<QmpSocketChannel>(runtime, optionsFor(server));
  ASSERT_TRUE(channel->execute("a").has_value());
  channel.reset();
  // A new channel to the same server: QMP takes one client at a time, so this works only
  // because the first one is gone.
  QmpSocketChannel next(runtime, optionsFor(server));
  auto again = next.execute("again");
  ASSERT_TRUE(again.has_value()) << again.error().describe();
  expectScriptOk(server);
}

TEST(QmpSocket, ChannelsShareOneRuntime) {
  FakeQmpServer one, two;
  one.expect("q", {{"server", 1}});
  two.expect("q", {{"server", 2}});
  one.start();
  two.start();
  QmpRuntime runtime;
  QmpSocketChannel a(runtime, optionsFor(one));
  QmpSocketChannel b(runtime, optionsFor(two));
  auto ra = a.execute("q");
  auto rb = b.execute("q");
  ASSERT_TRUE(ra.has_value() && rb.has_value());
  EXPECT_EQ((*ra)["server"], 1);
  EXPECT_EQ((*rb)["server"], 2);
  expectScriptOk(one);
  expectScriptOk(two);
}

}  // namespace
}  // namespace qiao::testing
