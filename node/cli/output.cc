#include "node/cli/output.h"

#include <algorithm>
#include <ctime>

namespace qiao {
namespace {

size_t displayWidth(std::string_view s) {
  // UTF-8 continuation bytes take no column of their own.
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// The first `columns` code points of s.
std::string_view prefixColumns(std::string_view s, size_t columns) {
  size_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((s[i] & 0xC0) != 0x80) {
      if (seen == columns) return s.substr(0, i);
      ++seen;
    }
  }
  return s;
}

}  // namespace

std::string formatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], displayWidth(row[i]));
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - displayWidth(row[i]) + 2, ' ');
    }
    while (line.ends_with(' ')) line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::string ageSince(const std::string& t, long long now_unix) {
  std::tm tm{};
  const char* end = t.size() >= 19 ? strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) : nullptr;
  if (end == nullptr) return "-";
  std::string_view rest(end);
  if (rest.starts_with('.')) {
    size_t digits = rest.find_first_not_of("0123456789", 1);
    rest.remove_prefix(digits == std::string_view::npos ? rest.size() : digits);
  }
  long long offset = 0;
  if (rest == "Z" || rest == "z") {
    offset = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    auto digit = [&](size_t i) { return rest[i] - '0'; };
    for (size_t i : {1, 2, 4, 5}) {
      if (rest[i] < '0' || rest[i] > '9') return "-";
    }
    offset = (digit(1) * 10 + digit(2)) * 3600 + (digit(4) * 10 + digit(5)) * 60;
    if (rest[0] == '-') offset = -offset;
  } else {
    return "-";
  }
  long long then = static_cast<long long>(timegm(&tm)) - offset;
  long long d = std::max(0LL, now_unix - then);
  if (d < 120) return std::to_string(d) + "s";
  if (d < 120 * 60) return std::to_string(d / 60) + "m";
  if (d < 48 * 3600) return std::to_string(d / 3600) + "h";
  return std::to_string(d / 86400) + "d";
}

std::string formatMib(long long mib) {
  if (mib > 0 && mib % (1024 * 1024) == 0) return std::to_string(mib / (1024 * 1024)) + "Ti";
  if (mib > 0 && mib % 1024 == 0) return std::to_string(mib / 1024) + "Gi";
  return std::to_string(mib) + "Mi";
}

std::string progressLine(int progress, std::string_view kind, std::string_view target,
                         std::string_view message, size_t width) {
  constexpr int kBar = 20;
  progress = std::clamp(progress, 0, 100);
  int filled = progress * kBar / 100;
  std::string line = "[" + std::string(static_cast<size_t>(filled), '#') +
                     std::string(static_cast<size_t>(kBar - filled), '-') + "] ";
  std::string percent = std::to_string(progress) + "%";
  line.append(4 - std::min<size_t>(4, percent.size()), ' ');
  line += percent;
  line += ' ';
  line += kind;
  if (!target.empty()) {
    line += ' ';
    line += target;
  }
  if (!message.empty()) {
    line += ": ";
    line += message;
  }
  std::replace_if(
      line.begin(), line.end(),
      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
  return std::string(prefixColumns(line, width));
}

std::string colourize(std::string_view text, Colour colour, bool enabled) {
  if (!enabled || colour == Colour::kNone) return std::string(text);
  const char* code = colour == Colour::kGreen ? "32" : colour == Colour::kYellow ? "33" : "31";
  return "\033[" + std::string(code) + "m" + std::string(text) + "\033[0m";
}

}  // namespace qiao
