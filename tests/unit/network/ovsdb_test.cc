// The OVSDB client's pieces: the stream splitter and message parser on hand-made input, and
// OvsdbClient against a scripted server on a unix socket in a temporary directory.
#include "network/ovsdb.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "base/handle.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::vector<std::string> splitAll(std::string_view stream, size_t max_bytes = 1 << 20,
                                  int max_depth = 16) {
  JsonStreamSplitter splitter(max_bytes, max_depth);
  std::vector<std::string> out;
  EXPECT_TRUE(splitter.feed(stream, &out).has_value());
  EXPECT_EQ(splitter.buffered(), 0u);
  return out;
}

// ---- JsonStreamSplitter ----

TEST(JsonStreamSplitter, SplitsBackToBackTexts) {
  auto texts = splitAll("{\"a\":1}{\"b\":[1,{}]} \r\n\t[3]\n");
  ASSERT_EQ(texts.size(), 3u);
  EXPECT_EQ(texts[0], "{\"a\":1}");
  EXPECT_EQ(texts[1], "{\"b\":[1,{}]}");
  EXPECT_EQ(texts[2], "[3]");
}

TEST(JsonStreamSplitter, BracketsAndQuotesInsideStringsDoNotCount) {
  const std::string tricky = R"({"s":"}{][ \" \\","t":"\\\"}"})";
  auto texts = splitAll(tricky + tricky);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0], tricky);
  EXPECT_TRUE(json::accept(texts[0]));
  // A string that ends in an escaped backslash ends there.
  texts = splitAll(R"({"a":"\\"}{"b":"x"})");
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[1], R"({"b":"x"})");
}

TEST(JsonStreamSplitter, AnyCutOfTheStreamGivesTheSameTexts) {
  const std::string stream =
      R"({"id":null,"method":"update","params":["m",{"Interface":{"u":{"new":{"external_ids":)"
      R"(["map",[["k","}{\"\\é"]]]}}}}]})"
      " \n"
      R"({"id":7,"result":[{"rows":[]}],"error":null}[1,[2,[3]]])";
  const auto whole = splitAll(stream);
  ASSERT_EQ(whole.size(), 3u);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonStreamSplitter splitter(1 << 20, 16);
    std::vector<std::string> out;
    ASSERT_TRUE(splitter.feed(std::string_view(stream).substr(0, cut), &out).has_value());
    ASSERT_TRUE(splitter.feed(std::string_view(stream).substr(cut), &out).has_value());
    EXPECT_EQ(out, whole) << "cut at " << cut;
  }
  JsonStreamSplitter bytewise(1 << 20, 16);
  std::vector<std::string> out;
  for (char c : stream) ASSERT_TRUE(bytewise.feed(std::string_view(&c, 1), &out).has_value());
  EXPECT_EQ(out, whole);
}

TEST(JsonStreamSplitter, RefusesTooDeep) {
  JsonStreamSplitter splitter(1 << 20, 4);
  std::vector<std::string> out;
  EXPECT_TRUE(splitter.feed("[[[[]]]]", &out).has_value());  // 4 levels: the limit
  ASSERT_EQ(out.size(), 1u);
  auto deep = splitter.feed("[[[[[", &out);
  ASSERT_FALSE(deep.has_value());
  EXPECT_EQ(deep.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(deep.error().message.find("deeper than 4"), std::string::npos);
  // Failed for good: the stream cannot resynchronise.
  EXPECT_FALSE(splitter.feed("{}", &out).has_value());
  splitter.reset();
  EXPECT_TRUE(splitter.feed("{}", &out).has_value());
}

TEST(JsonStreamSplitter, RefusesTooBigEvenInPieces) {
  JsonStreamSplitter splitter(16, 8);
  std::vector<std::string> out;
  EXPECT_TRUE(splitter.feed(R"({"a":"01234567"})", &out).has_value());  // 16 bytes
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(splitter.feed(R"({"a":"01234)", &out).has_value());
  auto big = splitter.feed(R"(5678"})", &out);  // 17
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_EQ(out.size(), 1u);
  // An unterminated text is cut off too, not buffered without end.
  JsonStreamSplitter endless(16, 8);
  EXPECT_TRUE(endless.feed("[\"", &out).has_value());
  EXPECT_FALSE(endless.feed(std::string(32, 'x'), &out).has_value());
}

TEST(JsonStreamSplitter, RefusesGarbage) {
  for (std::string_view garbage : {"x", "{} 12", "}", "\"s\"", "{\"a\":]", "[}", "\x00"}) {
    JsonStreamSplitter splitter(1 << 20, 8);
    std::vector<std::string> out;
    std::string_view input = garbage.empty() ? std::string_view("\0", 1) : garbage;
    auto fed = splitter.feed(input, &out);
    EXPECT_FALSE(fed.has_value()) << garbage;
    if (!fed) {
      EXPECT_EQ(fed.error().subsystem, "ovsdb");
    }
  }
  // The texts before the garbage are still given.
  JsonStreamSplitter splitter(1 << 20, 8);
  std::vector<std::string> out;
  EXPECT_FALSE(splitter.feed("{\"a\":1}nope", &out).has_value());
  EXPECT_EQ(out, std::vector<std::string>{"{\"a\":1}"});
}

// ---- parseOvsdbMessage ----

TEST(ParseOvsdbMessage, Request) {
  auto m = parseOvsdbMessage(R"({"method":"echo","params":["x"],"id":"echo"})");
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->kind, OvsdbMessage::Kind::kRequest);
  EXPECT_EQ(m->method, "echo");
  EXPECT_EQ(m->params, json::array({"x"}));
  EXPECT_EQ(m->id, "echo");
}

TEST(ParseOvsdbMessage, Notification) {
  auto m = parseOvsdbMessage(R"({"id":null,"method":"update","params":["m1",{"Bridge":{}}]})");
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->kind, OvsdbMessage::Kind::kNotification);
  EXPECT_EQ(m->method, "update");
  EXPECT_EQ(m->params[1], json({{"Bridge", json::object()}}));
}

TEST(ParseOvsdbMessage, Responses) {
  auto ok = parseOvsdbMessage(R"({"id":3,"result":[{"count":1}],"error":null})");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->kind, OvsdbMessage::Kind::kResponse);
  EXPECT_EQ(ok->id, 3);
  EXPECT_TRUE(ok->error.is_null());
  EXPECT_EQ(ok->result[0]["count"], 1);
  auto failed = parseOvsdbMessage(R"({"id":4,"result":null,"error":{"error":"unknown database"}})");
  ASSERT_TRUE(failed.has_value()) << failed.error().message;
  EXPECT_EQ(failed->error["error"], "unknown database");
  // Members left out rather than null are fine too.
  EXPECT_TRUE(parseOvsdbMessage(R"({"id":5,"result":{}})").has_value());
}

TEST(ParseOvsdbMessage, RefusesWrongShapes) {
  for (std::string_view text : {
           R"({"method":5,"params":[],"id":1})",                  // method not a string
           R"({"method":"echo","params":{},"id":1})",             // params not an array
           R"({"method":"echo","id":1})",                         // no params
           R"({"method":"echo","params":[]})",                    // no id
           R"({"method":"echo","params":[],"id":1,"result":1})",  // request with a result
           R"({"id":1,"result":1,"error":"x"})",                  // both
           R"({"id":1,"result":null,"error":null})",              // neither
           R"({"id":null,"result":1,"error":null})",              // response with null id
           R"({"id":1,"result":1,"params":[]})",                  // response with params
           R"({"id":1,"result":1,"extra":0})",                    // unknown member
           R"({"id":1,"id":2,"result":1})",                       // duplicate key
           R"([1,2])",                                            // not an object
           R"({"id":1,"result":)",                                // not JSON
           "{\"id\":1,\"result\":\"\xff\"}",                      // not UTF-8
           "",
       }) {
    auto m = parseOvsdbMessage(text);
    EXPECT_FALSE(m.has_value()) << text;
    if (!m) {
      EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
      EXPECT_EQ(m.error().subsystem, "ovsdb");
    }
  }
  std::string deep = "{\"id\":1,\"result\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_FALSE(parseOvsdbMessage(deep, 64).has_value());
}

// ---- OvsdbClient against a scripted server ----

// A unix-socket server that the test drives step by step: accept, read a message, answer.
class ScriptedServer {
 public:
  explicit ScriptedServer(const std::string& path) : path_(path) { listen(); }

  void listen() {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    ::unlink(path_.c_str());
    ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener_.get(), 8), 0);
  }
  void stopListening() {
    listener_.reset();
    ::unlink(path_.c_str());
  }

  bool accept(milliseconds timeout = milliseconds(3000)) {
    pollfd pfd{listener_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return false;
    client_.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    splitter_.reset();
    queued_.clear();
    return client_.valid();
  }
  void closeClient() { client_.reset(); }

  // The next message from the client, or nullopt at EOF or after `timeout`.
  std::optional<json> receive(milliseconds timeout = milliseconds(3000)) {
    const auto deadline = Clock::now() + timeout;
    while (queued_.empty()) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      pollfd pfd{client_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) != 1) return std::nullopt;
      char buffer[4096];
      ssize_t n = ::read(client_.get(), buffer, sizeof buffer);
      if (n <= 0) return std::nullopt;
      if (!splitter_.feed(std::string_view(buffer, static_cast<size_t>(n)), &queued_)) {
        return std::nullopt;
      }
    }
    auto text = queued_.front();
    queued_.erase(queued_.begin());
    return json::parse(text);
  }
  void send(const std::string& text) {
    ASSERT_EQ(::write(client_.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void reply(const json& request, const json& result) {
    send(json{{"id", request["id"]}, {"result", result}, {"error", nullptr}}.dump());
  }

 private:
  std::string path_;
  UniqueFd listener_;
  UniqueFd client_;
  JsonStreamSplitter splitter_;
  std::vector<std::string> queued_;
};

bool eventually(const std::function<bool()>& condition, milliseconds timeout = milliseconds(3000)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

class OvsdbClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/qiao-ovsdb-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/db.sock";
    server_ = std::make_unique<ScriptedServer>(path_);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  OvsdbClient& startClient(milliseconds call_timeout = milliseconds(2000)) {
    OvsdbClientOptions options;
    options.socket = path_;
    options.call_timeout = call_timeout;
    options.min_backoff = milliseconds(20);
    options.max_backoff = milliseconds(200);
    client_ = std::make_unique<OvsdbClient>(options);
    client_->start();
    return *client_;
  }

  std::string dir_, path_;
  std::unique_ptr<ScriptedServer> server_;
  std::unique_ptr<OvsdbClient> client_;
};

TEST_F(OvsdbClientTest, CallIsAnsweredById) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  auto first = std::async(std::launch::async, [&] { return client.call("echo", {1}); });
  auto second =
      std::async(std::launch::async, [&] { return client.call("list_dbs", json::array()); });
  auto a = server_->receive();
  auto b = server_->receive();
  ASSERT_TRUE(a && b);
  EXPECT_NE((*a)["id"], (*b)["id"]);
  // Answered in the other order.
  server_->reply(*b, (*b)["method"] == "echo" ? json((*b)["params"]) : json::array({"db"}));
  server_->reply(*a, (*a)["method"] == "echo" ? json((*a)["params"]) : json::array({"db"}));
  auto echoed = first.get();
  auto dbs = second.get();
  ASSERT_TRUE(echoed.has_value()) << echoed.error().describe();
  ASSERT_TRUE(dbs.has_value()) << dbs.error().describe();
  EXPECT_EQ(*echoed, json::array({1}));
  EXPECT_EQ(*dbs, json::array({"db"}));
}

TEST_F(OvsdbClientTest, AnswersTheServersEcho) {
  startClient();
  ASSERT_TRUE(server_->accept());
  server_->send(R"({"method":"echo","params":["ping",{"x":"}"}],"id":"echo"})");
  auto answer = server_->receive();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ((*answer)["id"], "echo");
  EXPECT_EQ((*answer)["result"], json::parse(R"(["ping",{"x":"}"}])"));
  EXPECT_TRUE((*answer)["error"].is_null());
}

TEST_F(OvsdbClientTest, CallTimesOutAndALateReplyIsIgnored) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  const auto start = Clock::now();
  auto slow = client.call("echo", json::array(), milliseconds(150));
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code, ErrorCode::kTimeout);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  server_->reply(*request, json::array());  // too late
  auto next = std::async(std::launch::async, [&] { return client.call("echo", {2}); });
  auto again = server_->receive();
  ASSERT_TRUE(again.has_value());
  server_->reply(*again, json::array({2}));
  auto result = next.get();
  ASSERT_TRUE(result.has_value()) << result.error().describe();
  EXPECT_EQ(*result, json::array({2}));
}

TEST_F(OvsdbClientTest, ServerErrorsAndFailedOperationsAreReported) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  auto refused = std::async(std::launch::async, [&] {
    return client.transact("Nope", json::array({{{"op", "comment"}, {"comment", "x"}}}));
  });
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ((*request)["params"][0], "Nope");
  server_->send(json{{"id", (*request)["id"]},
                     {"result", nullptr},
                     {"error", {{"error", "unknown database"}, {"details", "Nope"}}}}
                    .dump());
  auto r = refused.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("unknown database"), std::string::npos);

  json ops = json::array({{{"op", "insert"}, {"table", "Interface"}, {"row", json::object()}},
                          {{"op", "insert"}, {"table", "Port"}, {"row", json::object()}}});
  auto failed = std::async(std::launch::async, [&] { return client.transact("db", ops); });
  request = server_->receive();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ((*request)["params"], json::array({"db", ops[0], ops[1]}));
  server_->reply(*request, json::parse(R"([{"uuid":["uuid","1"]},
      {"error":"constraint violation","details":"Transaction causes multiple rows"}])"));
  auto f = failed.get();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(f.error().message.find("operation 2 (insert Port)"), std::string::npos)
      << f.error().message;
  EXPECT_NE(f.error().message.find("multiple rows"), std::string::npos);

  auto commit = std::async(std::launch::async, [&] { return client.transact("db", ops); });
  request = server_->receive();
  ASSERT_TRUE(request.has_value());
  server_->reply(*request, json::parse(R"([{"uuid":["uuid","1"]},{"uuid":["uuid","2"]},
      {"error":"referential integrity violation"}])"));
  auto c = commit.get();
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::kConflict);
  EXPECT_NE(c.error().message.find("the commit"), std::string::npos);
}

TEST_F(OvsdbClientTest, UnreachableServerFailsFast) {
  server_->stopListening();
  auto& client = startClient(milliseconds(5000));
  const auto start = Clock::now();
  auto r = client.call("echo", json::array());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find(path_), std::string::npos);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
  // When it comes, the next call connects.
  server_->listen();
  auto later = std::async(std::launch::async, [&] { return client.call("echo", {3}); });
  ASSERT_TRUE(server_->accept());
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  server_->reply(*request, json::array({3}));
  auto result = later.get();
  ASSERT_TRUE(result.has_value()) << result.error().describe();
}

TEST_F(OvsdbClientTest, NotificationsAndReconnectionReachTheMonitor) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  std::mutex mu;
  std::vector<std::pair<json, bool>> seen;
  const json requests = {{"Bridge", {{"columns", json::array({"name"})}}}};
  auto monitored = std::async(std::launch::async, [&] {
    return client.monitor("Open_vSwitch", requests, [&](const json& updates, bool initial) {
      std::lock_guard lock(mu);
      seen.emplace_back(updates, initial);
    });
  });
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ((*request)["method"], "monitor");
  EXPECT_EQ((*request)["params"][0], "Open_vSwitch");
  EXPECT_EQ((*request)["params"][2], requests);
  const json monitor_id = (*request)["params"][1];
  server_->reply(*request, json{{"Bridge", {{"u1", {{"new", {{"name", "br0"}}}}}}}});
  auto initial = monitored.get();
  ASSERT_TRUE(initial.has_value()) << initial.error().describe();
  EXPECT_EQ((*initial)["Bridge"]["u1"]["new"]["name"], "br0");
  const uint64_t first_generation = client.generation();
  EXPECT_GT(first_generation, 0u);

  server_->send(json{{"id", nullptr},
                     {"method", "update"},
                     {"params", {monitor_id, {{"Bridge", {{"u2", {{"new", {{"name", "br1"}}}}}}}}}}}
                    .dump());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() == 2;
  }));
  // The handler had the initial contents first, then the update, in the server's order.
  EXPECT_TRUE(seen[0].second);
  EXPECT_EQ(seen[0].first["Bridge"]["u1"]["new"]["name"], "br0");
  EXPECT_FALSE(seen[1].second);
  EXPECT_EQ(seen[1].first["Bridge"]["u2"]["new"]["name"], "br1");

  // A call in flight when the server goes fails, the client comes back by itself and sets the
  // monitor up again, and the handler gets the whole contents again.
  auto cut = std::async(std::launch::async, [&] { return client.call("echo", json::array()); });
  ASSERT_TRUE(server_->receive().has_value());
  server_->closeClient();
  auto lost = cut.get();
  ASSERT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(server_->accept());
  auto again = server_->receive();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)["method"], "monitor");
  EXPECT_EQ((*again)["params"][1], monitor_id);
  server_->reply(*again, json{{"Bridge", json::object()}});
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() == 3;
  }));
  EXPECT_TRUE(seen[2].second);
  EXPECT_TRUE(client.connected());
  EXPECT_GT(client.generation(), first_generation);
}

TEST(OvsdbTableCache, FollowsInitialContentsInsertsModifiesAndDeletes) {
  OvsdbTableCache cache;
  ASSERT_TRUE(cache.apply({{"Port", {{"p1", {{"new", {{"name", "a"}}}}},
                                     {"p2", {{"new", {{"name", "b"}}}}}}}},
                          true));
  auto ports = cache.rows("Port");
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]["_uuid"], json::array({"uuid", "p1"}));
  EXPECT_EQ(ports[0]["name"], "a");
  // Modify (old and new: new is the row), insert, delete (old only).
  ASSERT_TRUE(cache.apply({{"Port",
                            {{"p1", {{"old", {{"name", "a"}}}, {"new", {{"name", "a2"}}}}},
                             {"p3", {{"new", {{"name", "c"}}}}},
                             {"p2", {{"old", {{"name", "b"}}}}}}}},
                          false));
  ports = cache.rows("Port");
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]["name"], "a2");
  EXPECT_EQ(ports[1]["name"], "c");
  EXPECT_TRUE(cache.rows("Bridge").empty());
  // Wrong shapes change nothing.
  for (const json& bad : {json::array(), json{{"Port", 1}}, json{{"Port", {{"p1", 2}}}},
                          json{{"Port", {{"p1", {{"new", 3}}}}}}}) {
    auto applied = cache.apply(bad, false);
    ASSERT_FALSE(applied.has_value()) << bad.dump();
    EXPECT_EQ(applied.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(cache.rows("Port").size(), 2u);
  // A new initial replaces everything (rows gone while disconnected go).
  ASSERT_TRUE(cache.apply({{"Bridge", {{"b1", {{"new", {{"name", "br"}}}}}}}}, true));
  EXPECT_TRUE(cache.rows("Port").empty());
  EXPECT_EQ(cache.rows("Bridge").size(), 1u);
}

TEST_F(OvsdbClientTest, GarbageDropsTheConnection) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  auto pending = std::async(std::launch::async, [&] { return client.call("echo", json::array()); });
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  server_->send(json{{"id", (*request)["id"]}, {"result", json::array()}}.dump() +
                " this is not JSON");
  auto r = pending.get();
  // The reply came before the garbage, and still counts.
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  ASSERT_TRUE(server_->accept());  // it reconnected
  EXPECT_FALSE(server_->receive(milliseconds(100)).has_value());
}

TEST_F(OvsdbClientTest, MonitorHandlersCannotCallBack) {
  auto& client = startClient();
  ASSERT_TRUE(server_->accept());
  // The handler runs for the initial contents and for the update: every call back fails, the
  // first answer is kept.
  std::promise<Error> error;
  std::atomic<int> calls{0};
  auto monitored = std::async(std::launch::async, [&] {
    return client.monitor("db", json::object(), [&](const json&, bool) {
      auto r = client.call("echo", json::array());
      if (calls++ == 0) error.set_value(r ? Error{} : r.error());
    });
  });
  auto request = server_->receive();
  ASSERT_TRUE(request.has_value());
  server_->reply(*request, json::object());
  ASSERT_TRUE(monitored.get().has_value());
  server_->send(json{
      {"id", nullptr}, {"method", "update"}, {"params", {(*request)["params"][1], json::object()}}}
                    .dump());
  auto future = error.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  EXPECT_EQ(future.get().code, ErrorCode::kInternal);
}

TEST_F(OvsdbClientTest, StopFailsCallsAndClosesTheSocket) {
  auto& client = startClient(milliseconds(10000));
  ASSERT_TRUE(server_->accept());
  auto pending = std::async(std::launch::async, [&] { return client.call("echo", json::array()); });
  ASSERT_TRUE(server_->receive().has_value());
  const auto start = Clock::now();
  client.stop();
  auto r = pending.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  EXPECT_FALSE(server_->receive(milliseconds(500)).has_value());  // EOF
  auto after = client.call("echo", json::array());
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace qiao::testing
