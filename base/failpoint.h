// Failpoints: named places where a test can make qiaod die at once (SIGKILL to itself), to
// prove that every operation finishes or rolls back after a crash at any step.
// Armed only by the environment variable QIAO_FAILPOINT (a comma-separated list of names);
// a production daemon never has it set. Names look like "vm.create/define:after".
#pragma once

#include <string_view>

namespace qiao {

// Kills the process with SIGKILL when `name` is armed. Cheap when nothing is armed.
void failpoint(std::string_view name);

}  // namespace qiao
