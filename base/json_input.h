// Strict reading of JSON from untrusted callers (API bodies, specs): bounded nesting,
// duplicate keys refused (two readers must never see two different documents), and typed
// field getters whose errors name the field. Everything answers kInvalidArgument, never throws.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

// A JSON object from `text`; `what` names the document in messages ("spec", "body").
Result<nlohmann::json> parseJsonObject(std::string_view text, int max_depth,
                                       const std::string& what);
// Refuses fields outside `known`, naming the first.
Status checkKnownFields(const nlohmann::json& object, const std::set<std::string>& known,
                        const std::string& what);
// "a string", "an array", ... for messages.
std::string describeJsonType(const nlohmann::json& value);
// obj[field] (which must exist) as a string; `where` prefixes the field's name ("boot.").
Result<std::string> jsonString(const nlohmann::json& obj, const char* field,
                               const std::string& where);
// The "name" (required) and "tenant" (optional, left as is when absent) of an object spec,
// each a DNS label.
Status jsonNameAndTenant(const nlohmann::json& obj, std::string* name, std::string* tenant);
// obj[field] (which must exist) as an integer within [min, max].
Result<int64_t> jsonInt(const nlohmann::json& obj, const char* field, int64_t min, int64_t max);
// An integer that fits int64_t (the ids of the JSON-RPC requests we issue, say): false for any
// other value.
bool jsonInt64(const nlohmann::json& value, int64_t* out);

}  // namespace qiao
