#include "node/cli/qiaoctl.h"

#include "node/cli/cli_args.h"
#include "node/cli/commands.h"

namespace qiao {

int runQiaoctl(const std::vector<std::string>& args, const CliIo& io) {
  ParsedCommandLine parsed = parseCommandLine(args);
  switch (parsed.outcome) {
    case ParsedCommandLine::Outcome::kHelp: std::fputs(parsed.text.c_str(), io.out); return 0;
    case ParsedCommandLine::Outcome::kVersion:
      std::fprintf(io.out, "qiaoctl %s\n", QIAO_VERSION);
      return 0;
    case ParsedCommandLine::Outcome::kUsageError: std::fputs(parsed.text.c_str(), io.err); return 2;
    case ParsedCommandLine::Outcome::kRun: break;
  }
  int rc = runInvocation(parsed.invocation, io);
  std::fflush(io.out);
  return rc;
}

}  // namespace qiao
