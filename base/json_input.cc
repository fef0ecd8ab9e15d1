#include "base/json_input.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "base/names.h"

namespace qiao {
namespace {

using nlohmann::json;

std::unexpected<Error> invalid(const std::string& message) {
  return makeError(ErrorCode::kInvalidArgument, "spec", message);
}

// Deepest nesting of arrays and objects, found without building anything; stops counting
// once past `limit`.
int nestingDepth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

}  // namespace

std::string describeJsonType(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number with a fraction";
    default: return "a number";
  }
}

Result<std::string> jsonString(const json& obj, const char* field, const std::string& where) {
  const json& v = obj.at(field);
  if (!v.is_string()) {
    return invalid("field \"" + where + field + "\" must be a string, got " + describeJsonType(v));
  }
  return v.get<std::string>();
}

Result<int64_t> jsonInt(const json& obj, const char* field, int64_t min, int64_t max) {
  const json& v = obj.at(field);
  std::string range = " from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v.is_number_integer()) {
    return invalid("field \"" + std::string(field) + "\" must be an integer" + range + ", got " +
                   describeJsonType(v));
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return invalid("field \"" + std::string(field) + "\" must be an integer" + range);
  }
  int64_t n = v.get<int64_t>();
  if (n < min || n > max) {
    return invalid("field \"" + std::string(field) + "\" must be an integer" + range + ", got " +
                   std::to_string(n));
  }
  return n;
}

Result<json> parseJsonObject(std::string_view text, int max_depth, const std::string& what) {
  if (nestingDepth(text, max_depth) > max_depth) {
    return invalid(what + " is nested deeper than " + std::to_string(max_depth) + " levels");
  }
  // Duplicate keys would let two readers see two different documents: refuse them.
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json doc;
  try {
    doc = json::parse(
        text,
        [&](int, json::parse_event_t event, json& parsed) {
          if (event == json::parse_event_t::object_start) {
            keys.emplace_back();
          } else if (event == json::parse_event_t::object_end) {
            if (!keys.empty()) keys.pop_back();
          } else if (event == json::parse_event_t::key && !keys.empty()) {
            auto key = parsed.get<std::string>();
            if (!keys.back().insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const json::exception& e) {
    std::string message = e.what();
    // nlohmann's messages start with "[json.exception.parse_error.101] "; keep the rest.
    auto bracket = message.find("] ");
    return invalid(what + " is not valid JSON: " +
                   (bracket == std::string::npos ? message : message.substr(bracket + 2)));
  }
  if (!duplicate.empty()) {
    return invalid("field \"" + duplicate + "\" appears more than once");
  }
  if (!doc.is_object()) return invalid(what + " must be a JSON object, got " + describeJsonType(doc));
  return doc;
}

Status checkKnownFields(const json& object, const std::set<std::string>& known,
                        const std::string& what) {
  for (const auto& [key, value] : object.items()) {
    if (!known.contains(key)) return invalid("unknown field " + quoteForMessage(key) + " in " + what);
  }
  return {};
}

Status jsonNameAndTenant(const nlohmann::json& obj, std::string* name, std::string* tenant) {
  if (!obj.contains("name")) {
    return makeError(ErrorCode::kInvalidArgument, "spec", "field \"name\" is required");
  }
  auto n = jsonString(obj, "name", "");
  if (!n) return std::unexpected(n.error());
  if (auto ok = checkDnsLabel("name", *n); !ok) return ok;
  *name = *n;
  if (obj.contains("tenant")) {
    auto t = jsonString(obj, "tenant", "");
    if (!t) return std::unexpected(t.error());
    if (auto ok = checkDnsLabel("tenant", *t); !ok) return ok;
    *tenant = *t;
  }
  return {};
}

bool jsonInt64(const nlohmann::json& value, int64_t* out) {
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(value.get<uint64_t>());
    return true;
  }
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace qiao
