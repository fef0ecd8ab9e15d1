// parseQmpMessage on hand-made lines: every kind QMP sends, and what a broken peer might.
#include "node/vm/qmp/qmp_message.h"

#include <gtest/gtest.h>

namespace qiao::testing {
namespace {

using nlohmann::json;

template <typename T>
T parseAs(std::string_view line) {
  auto message = parseQmpMessage(line);
  EXPECT_TRUE(message.has_value()) << (message ? "" : message.error().message);
  if (!message) return T{};
  const T* typed = std::get_if<T>(&*message);
  EXPECT_NE(typed, nullptr) << "another kind of message: " << line;
  return typed != nullptr ? *typed : T{};
}

Error parseError(std::string_view line, const QmpLimits& limits = {}) {
  auto message = parseQmpMessage(line, limits);
  EXPECT_FALSE(message.has_value()) << "accepted: " << line;
  return message ? Error{} : message.error();
}

TEST(QmpMessage, Greeting) {
  auto greeting = parseAs<QmpGreeting>(
      R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": )"
      R"("Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}})"
      "\r\n");
  EXPECT_EQ(greeting.version["qemu"]["major"], 7);
  EXPECT_EQ(greeting.capabilities, std::vector<std::string>{"oob"});
}

TEST(QmpMessage, ReturnWithAndWithoutId) {
  auto ret = parseAs<QmpReturn>(R"({"return": {"status": "running", "running": true}, "id": 7})");
  EXPECT_EQ(ret.id, 7);
  EXPECT_EQ(ret.value["status"], "running");
  ret = parseAs<QmpReturn>(R"({"return": {}})");
  EXPECT_TRUE(ret.id.is_null());
  EXPECT_EQ(ret.value, json::object());
  ret = parseAs<QmpReturn>(R"({"return": [1, 2], "id": "libvirt-12"})");
  EXPECT_EQ(ret.id, "libvirt-12");
  EXPECT_EQ(ret.value, json::array({1, 2}));
}

TEST(QmpMessage, ErrorReply) {
  auto error = parseAs<QmpErrorReply>(
      R"({"id": 3, "error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}})");
  EXPECT_EQ(error.id, 3);
  EXPECT_EQ(error.error_class, "CommandNotFound");
  EXPECT_EQ(error.desc, "The command foo has not been found");
}

TEST(QmpMessage, EventWithTimestamp) {
  auto event = parseAs<QmpEvent>(
      R"({"timestamp": {"seconds": 1700000123, "microseconds": 456789}, "event": "BLOCK_JOB_READY", )"
      R"("data": {"device": "job0", "len": 100}})");
  EXPECT_EQ(event.name, "BLOCK_JOB_READY");
  EXPECT_EQ(event.seconds, 1700000123);
  EXPECT_EQ(event.microseconds, 456789);
  EXPECT_EQ(event.data["device"], "job0");
  // No data is an empty object, not null; -1/-1 is "no time available".
  event =
      parseAs<QmpEvent>(R"({"event": "STOP", "timestamp": {"seconds": -1, "microseconds": -1}})");
  EXPECT_EQ(event.data, json::object());
  EXPECT_EQ(event.seconds, -1);
}

TEST(QmpMessage, UnknownMembersAreIgnored) {
  // The QMP spec lets servers add members; clients must not choke on them.
  auto ret = parseAs<QmpReturn>(R"({"return": 1, "id": 1, "future": {"x": 1}})");
  EXPECT_EQ(ret.value, 1);
}

TEST(QmpMessage, RefusesWhatIsNoQmpMessage) {
  EXPECT_NE(parseError("not json").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parseError("").message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parseError("[1,2]").message.find("must be a JSON object"), std::string::npos);
  EXPECT_NE(parseError(R"({"id": 1})").message.find("none of"), std::string::npos);
  EXPECT_NE(parseError(R"({"return": 1, "event": "X"})").message.find("more than one"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"return": 1, "return": 2})").message.find("more than once"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"error": "bad"})").message.find("not an object"), std::string::npos);
  EXPECT_NE(parseError(R"({"error": {"desc": "x"}})").message.find("class"), std::string::npos);
  EXPECT_NE(parseError(R"({"error": {"class": "X", "desc": 5}})").message.find("desc"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"event": 5, "timestamp": {"seconds": 1, "microseconds": 1}})")
                .message.find("non-empty string"),
            std::string::npos);
  EXPECT_NE(
      parseError(R"({"event": "X", "data": [], "timestamp": {"seconds": 1, "microseconds": 1}})")
          .message.find("not an object"),
      std::string::npos);
  EXPECT_NE(parseError(R"({"event": "X"})").message.find("timestamp"), std::string::npos);
  EXPECT_NE(parseError(R"({"event": "X", "timestamp": {"seconds": 1.5, "microseconds": 1}})")
                .message.find("not an integer"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"event": "X", "timestamp": {"seconds": 1, "microseconds": 1000000}})")
                .message.find("out of range"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"QMP": {"version": {}}})").message.find("capabilities"),
            std::string::npos);
  EXPECT_NE(parseError(R"({"QMP": {"version": {}, "capabilities": [1]}})").message.find("string"),
            std::string::npos);
  EXPECT_NE(parseError("{\"return\": \"\xff\xfe\"}").message.find("not valid JSON"),
            std::string::npos);
  for (const auto& error : {parseError("{\"return\": 1} trailing"), parseError("{")}) {
    EXPECT_EQ(error.code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(error.subsystem, "qmp");
  }
}

TEST(QmpMessage, LimitsSizeAndDepth) {
  QmpLimits limits;
  limits.max_message_bytes = 64;
  limits.max_depth = 8;
  const std::string big = R"({"return": ")" + std::string(100, 'x') + R"("})";
  Error error = parseError(big, limits);
  EXPECT_EQ(error.code, ErrorCode::kPayloadTooLarge);
  EXPECT_NE(error.message.find("larger than the limit of 64 bytes"), std::string::npos);
  // The line ending does not count.
  const std::string exact = R"({"return": ")" + std::string(64 - 14, 'x') + R"("})";
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_TRUE(parseQmpMessage(exact + "\r\n", limits).has_value());
  std::string deep = R"({"return": )" + std::string(20, '[') + std::string(20, ']') + "}";
  EXPECT_NE(parseError(deep, limits).message.find("nested deeper"), std::string::npos);
  // The default: 16 MiB.
  std::string huge = R"({"return": ")" + std::string(kQmpMaxMessageBytes, 'x') + R"("})";
  EXPECT_EQ(parseError(huge).code, ErrorCode::kPayloadTooLarge);
}

TEST(QmpMessage, ErrorMapping) {
  QmpErrorReply reply{json(1), "DeviceNotFound", "Device 'x' not found"};
  Error error = qmpErrorToError("device_del", reply);
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_EQ(error.subsystem, "qmp");
  EXPECT_EQ(error.message, "QEMU refused device_del: DeviceNotFound: Device 'x' not found");
  reply.error_class = "GenericError";
  EXPECT_EQ(qmpErrorToError("x", reply).code, ErrorCode::kInvalidArgument);
  reply.error_class = "DeviceNotActive";
  EXPECT_EQ(qmpErrorToError("x", reply).code, ErrorCode::kConflict);
  reply.error_class = "CommandNotFound";
  EXPECT_EQ(qmpErrorToError("x", reply).code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace qiao::testing
