// qiaoctl: see node/cli/qiaoctl.h.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "node/cli/qiaoctl.h"

int main(int argc, char** argv) {
  qiao::CliIo io;
  const char* term = std::getenv("TERM");
  bool dumb = term == nullptr || std::strcmp(term, "dumb") == 0;
  io.err_is_terminal = isatty(STDERR_FILENO) == 1 && !dumb;
  io.out_is_terminal = isatty(STDOUT_FILENO) == 1 && !dumb && std::getenv("NO_COLOR") == nullptr;
  return qiao::runQiaoctl(std::vector<std::string>(argv + 1, argv + argc), io);
}
