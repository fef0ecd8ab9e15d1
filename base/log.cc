#include "base/log.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace qiao {
namespace {

thread_local LogSink* tls_sink = nullptr;  // the innermost LogScope's

std::string_view levelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

void appendTimestamp(std::string& out) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t secs = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  out += buf;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid.
size_t utf8SequenceLength(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

bool parseLogLevel(std::string_view text, LogLevel* out) {
  for (auto level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == levelName(level)) {
      *out = level;
      return true;
    }
  }
  return false;
}

void appendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
      continue;
    }
    size_t len = utf8SequenceLength(text, i);
    if (len == 0) {  // not UTF-8: show the byte, keep the line valid JSON
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
      continue;
    }
    out.append(text.substr(i, len));
    i += len;
  }
}

LogSink::LogSink(std::string node, std::FILE* file, LogLevel level)
    : node_(std::move(node)), level_(static_cast<int>(level)), file_(file) {}

void LogSink::setLevel(LogLevel level) { level_.store(static_cast<int>(level)); }
void LogSink::setFile(std::FILE* file) { file_.store(file); }

bool LogSink::enabled(LogLevel level) const {
  return static_cast<int>(level) >= level_.load(std::memory_order_relaxed);
}

void LogSink::write(std::string_view line) {
  std::FILE* file = file_.load();
  if (file == nullptr) file = stderr;
  std::lock_guard lock(write_mutex_);
  std::fwrite(line.data(), 1, line.size(), file);
  std::fflush(file);
}

LogSink& LogSink::process() {
  // Never destroyed: detached threads and static destructors may log until the very end.
  static LogSink* const sink = new LogSink();
  return *sink;
}

LogSink& LogSink::current() { return tls_sink != nullptr ? *tls_sink : process(); }

LogScope::LogScope(LogSink& sink) : previous_(tls_sink) { tls_sink = &sink; }
LogScope::~LogScope() { tls_sink = previous_; }

void Logger::setLevel(LogLevel level) { LogSink::process().setLevel(level); }
void Logger::setSink(std::FILE* sink) { LogSink::process().setFile(sink); }

void Logger::write(LogLevel level, std::string_view msg,
                   std::initializer_list<LogField> fields) const {
  LogSink& sink = sink_ != nullptr ? *sink_ : LogSink::current();
  if (!sink.enabled(level)) return;
  std::string line;
  line.reserve(128 + msg.size());
  line += "{\"ts\":\"";
  appendTimestamp(line);
  line += "\",\"level\":\"";
  line += levelName(level);
  line += "\",\"component\":\"";
  appendJsonEscaped(line, component_);
  if (!sink.node().empty()) {
    line += "\",\"node\":\"";
    appendJsonEscaped(line, sink.node());
  }
  line += "\",\"msg\":\"";
  appendJsonEscaped(line, msg);
  line += '"';
  for (const auto& [key, value] : fields) {
    line += ",\"";
    appendJsonEscaped(line, key);
    line += "\":\"";
    appendJsonEscaped(line, value);
    line += '"';
  }
  line += "}\n";
  sink.write(line);
}

}  // namespace qiao
