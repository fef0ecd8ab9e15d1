// Structured logging: one JSON object per line on the configured sink (stderr by default),
// each with time, level, component, message and the ids of the objects it concerns.
//
//   Logger log("vm");
//   log.info("domain started", {{"vm", "acme/web1"}, {"task", id}});
//
// The sink and level are process-wide (set once by main); Loggers are cheap values.
#pragma once

#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace qiao {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug" | "info" | "warn" | "error".
bool parseLogLevel(std::string_view text, LogLevel* out);

using LogField = std::pair<std::string_view, std::string_view>;

class Logger {
 public:
  explicit Logger(std::string component) : component_(std::move(component)) {}

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

  // Process-wide settings. setLogSink does not take ownership of the FILE.
  static void setLevel(LogLevel level);
  static void setSink(std::FILE* sink);

 private:
  std::string component_;
};

// Appends `text` to `out` as the body of a JSON string (quotes not included),
// escaping control characters and invalid UTF-8 bytes (as \u00XX). Shared by every
// hand-written JSON producer in base so that escaping lives in one place.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace qiao
