// qiaoctl: the command line of the node API. runQiaoctl is the whole program (qiaoctl_main.cc
// only fills CliIo and calls it), so that tests drive it with arguments and capture what it
// prints. The parser and the help are in cli_args.h; the table of commands and the commands
// themselves in commands.cc.
// Exit codes: 0 ok, 1 the operation failed (an API or connection error, a failed task, a
// timeout), 2 usage error.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace qiao {

struct CliIo {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  std::FILE* in = stdin;
  bool err_is_terminal = false;  // the task progress bar, redrawn in place
  bool out_is_terminal = false;  // colour (never when NO_COLOR is set)
  int poll_interval_ms = 200;    // how often a wait asks for the task
};

// args without the program name.
int runQiaoctl(const std::vector<std::string>& args, const CliIo& io);

}  // namespace qiao
