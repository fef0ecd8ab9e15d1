// Structured logging: one JSON object per line on the configured sink (stderr by default),
// each with time, level, component, message and the ids of the objects it concerns.
//
//   Logger log("vm");
//   log.info("domain started", {{"vm", "acme/web1"}, {"task", id}});
//
// Where lines go is a LogSink: a file, a minimum level and, for a node that is one of several
// in a process, the node's name (then every line has "node":"<name>" after its component).
// The process has one, LogSink::process(), that main sets up (Logger::setSink/setLevel) and
// that has no name: the daemon's lines are as they always were. Loggers are cheap values
// that name no sink, so that a component's file-level `const Logger kLog("vm")` serves every
// node: a line goes to the sink of the writing thread's LogScope, else to the process's.
// NodeServices builds a node inside a scope of that node's sink, WorkQueue workers keep the
// scope of the thread that made the queue, and other long-lived threads take it along with
// withLogScope(). Two simulated hosts in one test process thus log apart.
#pragma once

#include <atomic>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace qiao {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug" | "info" | "warn" | "error".
bool parseLogLevel(std::string_view text, LogLevel* out);

using LogField = std::pair<std::string_view, std::string_view>;

class LogSink {
 public:
  // `file` null: stderr. Does not take ownership of the FILE.
  explicit LogSink(std::string node = {}, std::FILE* file = nullptr,
                   LogLevel level = LogLevel::kInfo);
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  void setLevel(LogLevel level);
  void setFile(std::FILE* file);
  bool enabled(LogLevel level) const;
  const std::string& node() const { return node_; }
  // One whole line, written and flushed at once.
  void write(std::string_view line);

  static LogSink& process();
  // The sink of this thread's innermost LogScope, else process().
  static LogSink& current();

 private:
  const std::string node_;
  std::atomic<int> level_;
  std::atomic<std::FILE*> file_;
  std::mutex write_mutex_;
};

// Sends this thread's lines to `sink` until destroyed (scopes nest). The sink must outlive it.
class LogScope {
 public:
  explicit LogScope(LogSink& sink);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogSink* previous_;
};

// `fn`, to be run on another thread with the sink that is current on this one.
template <typename F>
auto withLogScope(F fn) {
  return [sink = &LogSink::current(), fn = std::move(fn)]() mutable {
    LogScope scope(*sink);
    return fn();
  };
}

class Logger {
 public:
  explicit Logger(std::string component) : component_(std::move(component)) {}
  // A logger bound to one sink whatever the thread's scope.
  Logger(std::string component, LogSink& sink) : component_(std::move(component)), sink_(&sink) {}

  void debug(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::kDebug, msg, fields);
  }
  void info(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::kInfo, msg, fields);
  }
  void warn(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::kWarn, msg, fields);
  }
  void error(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
    write(LogLevel::kError, msg, fields);
  }
  void write(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) const;

  // The process's sink (LogSink::process()). setSink does not take ownership of the FILE.
  static void setLevel(LogLevel level);
  static void setSink(std::FILE* sink);

 private:
  std::string component_;
  LogSink* sink_ = nullptr;  // null: LogSink::current()
};

// Appends `text` to `out` as the body of a JSON string (quotes not included),
// escaping control characters and invalid UTF-8 bytes (as \u00XX). Shared by every
// hand-written JSON producer in base so that escaping lives in one place.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace qiao
