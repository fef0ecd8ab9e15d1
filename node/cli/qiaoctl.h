// qiaoctl: the command line of the node API. runQiaoctl is the whole program (qiaoctl_main.cc
// only calls it), so that tests can drive it with arguments and capture what it prints.
// Exit codes: 0 ok, 1 the operation failed (an API error, a failed task), 2 usage error.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace qiao {

struct CliIo {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  std::FILE* in = stdin;
  bool err_is_terminal = false;  // progress bars only on a terminal
};

int runQiaoctl(const std::vector<std::string>& args, const CliIo& io);

// "3s", "5m", "2h", "4d" since an RFC 3339 UTC timestamp; "-" when it does not parse.
std::string ageSince(const std::string& rfc3339, long long now_unix);

// Columns aligned with two spaces between them; the first row is the header.
std::string formatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace qiao
