#include "images/convert.h"

#include "base/process.h"

namespace qiao {
namespace {

// QemuOpts values double their commas.
std::string optValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

}  // namespace

Status convertInto(const std::string& source, ImageFormat format, const ConvertTarget& target,
                   const ConvertLimits& limits) {
  ProcessOptions options;
  // prlimit bounds qemu-img's CPU time and memory; the timeout bounds the wall clock.
  options.argv = {"prlimit", "--cpu=" + std::to_string(limits.cpu_seconds),
                  "--as=" + std::to_string(limits.memory_bytes), "qemu-img", "convert", "-q",
                  "-n", "-W", "-m", "16",
                  // ISO images are stored as they are: raw bytes.
                  "-f", format == ImageFormat::kQcow2 ? "qcow2" : "raw"};
  if (target.path.empty()) {
    options.argv.insert(options.argv.end(),
                        {"--object", "secret,id=qiao-key,format=base64,file=" +
                                         optValue(target.key_file),
                         "--target-image-opts", source});
    std::string opts = "driver=raw,file.driver=rbd,file.pool=" + optValue(target.pool) +
                       ",file.image=" + optValue(target.image) +
                       ",file.user=" + optValue(target.user) +
                       ",file.key-secret=qiao-key";
    if (!target.ns.empty()) opts += ",file.namespace=" + optValue(target.ns);
    if (!target.conf.empty()) opts += ",file.conf=" + optValue(target.conf);
    options.argv.push_back(opts);
  } else {
    options.argv.insert(options.argv.end(), {"-O", "raw", source, target.path});
  }
  options.timeout_ms = limits.timeout_s * 1000;
  options.max_output_bytes = 64 << 10;
  auto result = runProcess(options);
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    std::string why = result->timed_out ? "it ran longer than " +
                                              std::to_string(limits.timeout_s) + " s"
                      : result->term_signal != 0
                          ? "it was killed by signal " + std::to_string(result->term_signal) +
                                " (CPU or memory limit)"
                          : result->err.substr(0, 500);
    return makeError(ErrorCode::kInvalidArgument, "images",
                     "qemu-img could not write the image: " + why);
  }
  return {};
}

}  // namespace qiao
