#include "node/vm/qmp/qmp_message.h"

#include <climits>

#include "base/json_input.h"

namespace qiao {
namespace {

using nlohmann::json;

std::unexpected<Error> invalid(std::string message) {
  return makeError(ErrorCode::kInvalidArgument, "qmp", std::move(message));
}

// An integer member of `obj` within [min, max], or an error naming `what`.
Result<int64_t> integerMember(const json& obj, const char* key, int64_t min, int64_t max,
                              const char* what) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    return invalid(std::string("a QMP ") + what + " has no \"" + key + "\"");
  }
  int64_t n = 0;
  if (it->is_number_unsigned()) {
    if (it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return invalid(std::string("a QMP ") + what + "'s \"" + key + "\" is out of range");
    }
    n = static_cast<int64_t>(it->get<uint64_t>());
  } else if (it->is_number_integer()) {
    n = it->get<int64_t>();
  } else {
    return invalid(std::string("a QMP ") + what + "'s \"" + key + "\" is " + describeJsonType(*it) +
                   ", not an integer");
  }
  if (n < min || n > max) {
    return invalid(std::string("a QMP ") + what + "'s \"" + key + "\" is out of range (" +
                   std::to_string(n) + ")");
  }
  return n;
}

Result<QmpMessage> parseGreeting(const json& body) {
  if (!body.is_object()) {
    return invalid("a QMP greeting's \"QMP\" is " + describeJsonType(body) + ", not an object");
  }
  QmpGreeting greeting;
  auto version = body.find("version");
  if (version == body.end() || !version->is_object()) {
    return invalid("a QMP greeting has no \"version\" object");
  }
  greeting.version = *version;
  auto caps = body.find("capabilities");
  if (caps == body.end() || !caps->is_array()) {
    return invalid("a QMP greeting has no \"capabilities\" array");
  }
  for (const auto& cap : *caps) {
    if (!cap.is_string()) {
      return invalid("a QMP greeting's capability is " + describeJsonType(cap) + ", not a string");
    }
    greeting.capabilities.push_back(cap.get<std::string>());
  }
  return greeting;
}

Result<QmpMessage> parseError(const json& obj) {
  const json& body = obj["error"];
  if (!body.is_object()) {
    return invalid("a QMP error's \"error\" is " + describeJsonType(body) + ", not an object");
  }
  QmpErrorReply reply;
  reply.id = obj.value("id", json());
  auto cls = body.find("class");
  auto desc = body.find("desc");
  if (cls == body.end() || !cls->is_string()) {
    return invalid("a QMP error has no \"class\" string");
  }
  if (desc == body.end() || !desc->is_string()) {
    return invalid("a QMP error has no \"desc\" string");
  }
  reply.error_class = cls->get<std::string>();
  reply.desc = desc->get<std::string>();
  return reply;
}

Result<QmpMessage> parseEvent(const json& obj) {
  QmpEvent event;
  const json& name = obj["event"];
  if (!name.is_string() || name.get_ref<const std::string&>().empty()) {
    return invalid("a QMP event's \"event\" is " + describeJsonType(name) +
                   ", not a non-empty string");
  }
  event.name = name.get<std::string>();
  event.data = json::object();
  if (auto data = obj.find("data"); data != obj.end()) {
    if (!data->is_object()) {
      return invalid("the QMP event " + event.name + " has \"data\" that is " +
                     describeJsonType(*data) + ", not an object");
    }
    event.data = *data;
  }
  auto stamp = obj.find("timestamp");
  if (stamp == obj.end() || !stamp->is_object()) {
    return invalid("the QMP event " + event.name + " has no \"timestamp\" object");
  }
  // QEMU stamps every event with g_get_real_time(); -1 in both is how QEMU's own code marks
  // a time it could not read, so accept it rather than drop the connection over a clock.
  auto seconds = integerMember(*stamp, "seconds", -1, INT64_MAX, "event timestamp");
  if (!seconds) return std::unexpected(seconds.error());
  auto micros = integerMember(*stamp, "microseconds", -1, 999999, "event timestamp");
  if (!micros) return std::unexpected(micros.error());
  event.seconds = *seconds;
  event.microseconds = *micros;
  return event;
}

}  // namespace

std::string qmpShortDump(const json& value, size_t max_chars) {
  std::string text = value.is_string() ? value.get<std::string>()
                                       : value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  return text;
}

Result<QmpMessage> parseQmpMessage(std::string_view line, const QmpLimits& limits) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.size() > limits.max_message_bytes) {
    return makeError(ErrorCode::kPayloadTooLarge, "qmp",
                     "a QMP message of " + std::to_string(line.size()) +
                         " bytes is larger than the limit of " +
                         std::to_string(limits.max_message_bytes) + " bytes");
  }
  auto doc = parseJsonObject(line, limits.max_depth, "a QMP message");
  // parseJsonObject speaks for API bodies ("spec"); say who is talking.
  if (!doc) return invalid("QMP message: " + doc.error().message);
  const json& obj = *doc;

  const bool greeting = obj.contains("QMP");
  const bool ret = obj.contains("return");
  const bool error = obj.contains("error");
  const bool event = obj.contains("event");
  const int kinds = int{greeting} + int{ret} + int{error} + int{event};
  if (kinds != 1) {
    return invalid(kinds == 0 ? "a QMP message has none of \"QMP\", \"return\", \"error\", "
                                "\"event\""
                              : "a QMP message has more than one of \"QMP\", \"return\", "
                                "\"error\", \"event\"");
  }
  if (greeting) return parseGreeting(obj["QMP"]);
  if (error) return parseError(obj);
  if (event) return parseEvent(obj);
  QmpReturn reply;
  reply.id = obj.value("id", json());
  reply.value = obj["return"];
  return reply;
}

Error qmpErrorToError(std::string_view command, const QmpErrorReply& reply) {
  ErrorCode code = ErrorCode::kInvalidArgument;
  if (reply.error_class == "CommandNotFound" || reply.error_class == "DeviceNotFound") {
    code = ErrorCode::kNotFound;
  } else if (reply.error_class == "DeviceNotActive") {
    code = ErrorCode::kConflict;
  }
  return Error{code,
               "qmp",
               "QEMU refused " + std::string(command) + ": " + reply.error_class + ": " +
                   qmpShortDump(json(reply.desc), 1024),
               {}};
}

}  // namespace qiao
