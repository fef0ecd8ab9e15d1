// Terminal output of qiaoctl: aligned tables, ages, sizes, the task progress line and colour.
// Plain text functions, so that the formats are unit-tested without a terminal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qiao {

// Columns aligned with two spaces between them, no trailing blanks; the first row is the
// header. Widths count UTF-8 code points, not bytes.
std::string formatTable(const std::vector<std::vector<std::string>>& rows);

// "45s", "12m", "5h", "3d" since an RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions and
// a numeric offset allowed); "-" when it does not parse.
std::string ageSince(const std::string& rfc3339, long long now_unix);

// 512 -> "512Mi", 2048 -> "2Gi", 1536 -> "1536Mi".
std::string formatMib(long long mib);

// "[#########-----------]  45% vm.create web1: defining domain", at most `width` characters.
std::string progressLine(int progress, std::string_view kind, std::string_view target,
                         std::string_view message, size_t width);

enum class Colour { kNone, kGreen, kYellow, kRed };
// `text` in ANSI colour when `enabled` (a terminal), else as is.
std::string colourize(std::string_view text, Colour colour, bool enabled);

}  // namespace qiao
