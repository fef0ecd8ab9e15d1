// Running other programs: by argv only (never through a shell), with a timeout, with stdout
// and stderr captured concurrently and capped. A process that outlives its timeout gets
// SIGTERM, then SIGKILL two seconds later, with its whole process group. A child dies with
// its parent (PR_SET_PDEATHSIG): nothing a killed qiaod started keeps running behind it.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace qiao {

struct ProcessOptions {
  std::vector<std::string> argv;        // argv[0] is looked up in PATH when it has no '/'
  int timeout_ms = 30000;
  std::string stdin_data;
  std::vector<std::string> extra_env;   // "K=V", added to the inherited environment
  std::string cwd;
  size_t max_output_bytes = 4 << 20;    // per stream; the rest is read and discarded
};

struct ProcessResult {
  int exit_code = -1;   // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
  // What the program said about its failure: stderr (stdout when stderr is empty), without
  // trailing newlines and spaces; "timed out" when it was killed for its deadline.
  std::string message() const;
};

// An error only when the program could not be started (kNotFound when it does not exist);
// a non-zero exit is a ProcessResult.
Result<ProcessResult> runProcess(const ProcessOptions& options);

}  // namespace qiao
