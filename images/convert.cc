#include "images/convert.h"

#include <unistd.h>

#include "base/process.h"

namespace qiao {

Status convertToRaw(const std::string& source, ImageFormat format,
                    const std::string& destination, const ConvertLimits& limits) {
  if (format != ImageFormat::kQcow2) {
    return makeError(ErrorCode::kInvalidArgument, "images",
                     std::string(imageFormatName(format)) + " images are stored as they are");
  }
  ::unlink(destination.c_str());
  ProcessOptions options;
  // prlimit bounds qemu-img's CPU time and memory; the timeout bounds the wall clock.
  options.argv = {"prlimit",
                  "--cpu=" + std::to_string(limits.cpu_seconds),
                  "--as=" + std::to_string(limits.memory_bytes),
                  "qemu-img", "convert", "-q",
                  "-f", std::string(imageFormatName(format)),
                  "-O", "raw",
                  source, destination};
  options.timeout_ms = limits.timeout_s * 1000;
  options.max_output_bytes = 64 << 10;
  auto result = runProcess(options);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    ::unlink(destination.c_str());
    std::string why = result->timed_out ? "it ran longer than " +
                                              std::to_string(limits.timeout_s) + " s"
                      : result->term_signal != 0
                          ? "it was killed by signal " + std::to_string(result->term_signal) +
                                " (CPU or memory limit)"
                          : result->err.substr(0, 500);
    return makeError(ErrorCode::kInvalidArgument, "images",
                     "qemu-img could not convert the image: " + why);
  }
  return {};
}

}  // namespace qiao
