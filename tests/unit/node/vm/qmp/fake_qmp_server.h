// FakeQmpServer: a scripted QMP server on a unix socket in a temporary directory, for the unit
// tests of the QMP channels. It runs the script on its own thread with plain blocking sockets
// (nothing shared with the code under test) and records what it received.
//
// A script is one list of steps across connections. A step that needs a client accepts the
// next connection first (greeting, then qmp_capabilities answered) unless one is open;
// closeConnection() ends the current one, so the next step waits for the client to reconnect.
// A step that does not go as written (another command came, the client went away) is recorded
// as a failure, and the script stops; tests check failures() at the end.
//
//   FakeQmpServer server;
//   server.expect("query-status", {{"status", "running"}})
//         .event("STOP")
//         .hold("a").hold("b").answer("b", 2).answer("a", 1)   // out of order
//         .closeConnection();
//   server.start();
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace qiao::testing {

class FakeQmpServer {
 public:
  FakeQmpServer();   // binds and listens at path(); the script runs from start()
  ~FakeQmpServer();  // stops the thread, closes everything, removes the directory
  FakeQmpServer(const FakeQmpServer&) = delete;
  FakeQmpServer& operator=(const FakeQmpServer&) = delete;

  const std::string& path() const { return path_; }

  // -- script steps (before start()) --
  // Reads the next command; it must be `command`. Answers {"return": value}.
  FakeQmpServer& expect(std::string command, nlohmann::json value = nlohmann::json::object());
  // Reads the next command (must be `command`) and answers with a QMP error.
  FakeQmpServer& expectError(std::string command, std::string error_class, std::string desc);
  // Reads the next command (must be `command`) and keeps it unanswered; answer() replies later.
  FakeQmpServer& hold(std::string command);
  // Replies to the held `command` (any order), or never when it is not answered at all.
  FakeQmpServer& answer(const std::string& command, nlohmann::json value);
  // Sends an event.
  FakeQmpServer& event(std::string name, nlohmann::json data = nlohmann::json::object());
  // Sends these bytes as they are (garbage, a huge line, half a message...).
  FakeQmpServer& sendRaw(std::string bytes);
  // Reads `count` commands, whatever they are, and answers each with
  // {"return": {"echo": <command>, "arguments": <arguments or null>}}, replying to each batch
  // of commands already waiting in reverse order of arrival (so, out of order).
  FakeQmpServer& echo(size_t count);
  // Waits until the client closes the connection (or `max` passes: a failure).
  FakeQmpServer& expectClientClose(std::chrono::milliseconds max = std::chrono::seconds(10));
  FakeQmpServer& closeConnection();
  // Accepts the next connection and says nothing: no greeting.
  FakeQmpServer& acceptSilently();
  FakeQmpServer& sleepFor(std::chrono::milliseconds d);
  // Runs `fn` on the server's thread (to signal the test at a point of the script).
  FakeQmpServer& call(std::function<void()> fn);

  void start();
  // Waits until the script has run to its end (true) or `max` passes (false).
  bool waitDone(std::chrono::milliseconds max = std::chrono::seconds(10));
  // Waits until at least `n` commands (qmp_capabilities not counted) have been received.
  bool waitReceived(size_t n, std::chrono::milliseconds max = std::chrono::seconds(10));

  std::vector<std::string> failures() const;
  std::vector<nlohmann::json> received() const;  // every command, as sent
  int connections() const;                       // accepted so far

 private:
  struct Conn;
  using Step = std::function<bool(Conn&)>;  // false: the script stops

  void run();
  void fail(const std::string& what);
  bool ensureClient(Conn& c);
  bool readCommand(Conn& c, nlohmann::json* out);
  bool writeLine(Conn& c, const std::string& text);
  bool waitReadable(int fd, int timeout_ms);

  std::string dir_, path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: the destructor wakes the server's poll()
  std::vector<Step> steps_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool stopping_ = false;
  std::vector<std::string> failures_;
  std::vector<nlohmann::json> received_;
  int connections_ = 0;
};

}  // namespace qiao::testing
