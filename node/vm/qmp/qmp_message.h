// The QMP wire messages (QEMU's docs/interop/qmp-spec): what one line from a QMP server
// (QEMU, qemu-storage-daemon, or libvirt's passthrough reply) says, as a typed value. This is
// the parser of untrusted input behind every QMP channel and the fuzz target's entry.
//
// Strictness: the members QMP defines must have their types; exactly one of "QMP", "return",
// "error", "event" must be present; duplicate keys and nesting beyond the limit are refused.
// Members QMP does not define are ignored, as the spec asks of clients (servers may add some).
// Everything answers Result with subsystem "qmp" and never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"

namespace qiao {

// A real reply is far smaller (query-named-block-nodes of a big storage daemon is a few MiB);
// the caps only stop a broken peer from exhausting memory or the parser's stack.
inline constexpr size_t kQmpMaxMessageBytes = size_t{16} << 20;
inline constexpr int kQmpMaxDepth = 64;

struct QmpLimits {
  size_t max_message_bytes = kQmpMaxMessageBytes;  // one line, without its "\r\n"
  int max_depth = kQmpMaxDepth;
};

// {"QMP": {"version": {...}, "capabilities": [...]}}: the first line of every connection.
struct QmpGreeting {
  nlohmann::json version;                 // an object, as sent ({"qemu": {...}, "package": ...})
  std::vector<std::string> capabilities;  // "oob", ...
};

// {"return": VALUE, "id": ID}
struct QmpReturn {
  nlohmann::json id;     // as the command sent it; null when it had none
  nlohmann::json value;  // any JSON value ({} for commands that return nothing)
};

// {"error": {"class": C, "desc": D}, "id": ID}
struct QmpErrorReply {
  nlohmann::json id;
  std::string error_class;  // "GenericError", "CommandNotFound", "DeviceNotFound", ...
  std::string desc;         // QEMU's human-readable text
};

// {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": U}}
struct QmpEvent {
  std::string name;          // "STOP", "BLOCK_JOB_COMPLETED", ...
  nlohmann::json data;       // an object; {} when the event has none
  int64_t seconds = 0;       // wall-clock time of the event on the QMP server's host
  int64_t microseconds = 0;  // 0..999999; both -1 when the server had no time to give
};

using QmpMessage = std::variant<QmpGreeting, QmpReturn, QmpErrorReply, QmpEvent>;

// Parses one line (a trailing "\r\n" or "\n" is allowed and ignored). kPayloadTooLarge when
// `line` is longer than limits.max_message_bytes, kInvalidArgument for anything that is not a
// QMP message.
Result<QmpMessage> parseQmpMessage(std::string_view line, const QmpLimits& limits = {});

// The one mapping of a QMP error reply to Qiao's Error, at the edge: subsystem "qmp", and the
// command, class and desc in the message. The class is all QMP says about the kind of failure:
// CommandNotFound and DeviceNotFound are kNotFound, DeviceNotActive kConflict, and
// GenericError (QEMU's answer to nearly everything: bad arguments, a node name in use, a file
// it cannot open) kInvalidArgument - QEMU refused what was asked. Callers that know a
// command's failures better map its descs themselves.
Error qmpErrorToError(std::string_view command, const QmpErrorReply& reply);

// Bounded text of a JSON value received, for messages and logs; never throws on bad UTF-8.
std::string qmpShortDump(const nlohmann::json& value, size_t max_chars = 256);

}  // namespace qiao
