// qiaoctl: see node/cli/qiaoctl.h.
#include <unistd.h>

#include <string>
#include <vector>

#include "node/cli/qiaoctl.h"

int main(int argc, char** argv) {
  qiao::CliIo io;
  io.err_is_terminal = isatty(STDERR_FILENO) == 1;
  return qiao::runQiaoctl(std::vector<std::string>(argv + 1, argv + argc), io);
}
