#include "node/images/image_spec.h"

#include <nlohmann/json.hpp>
#include <set>

#include "base/json_input.h"
#include "base/names.h"
#include "images/probe.h"

namespace qiao {
namespace {

using nlohmann::json;

const std::set<std::string> kSpecFields = {"name", "tenant", "public", "format", "source_path"};

}  // namespace

Result<ImageSpec> parseImageSpec(std::string_view text) {
  auto parsed = parseJsonObject(text, 8, "image spec");
  if (!parsed) return std::unexpected(parsed.error());
  const json& doc = *parsed;
  if (auto known = checkKnownFields(doc, kSpecFields, "image spec"); !known) {
    return std::unexpected(known.error());
  }
  ImageSpec spec;
  if (auto ok = jsonNameAndTenant(doc, &spec.name, &spec.tenant); !ok) {
    return std::unexpected(ok.error());
  }
  if (doc.contains("public")) {
    if (!doc.at("public").is_boolean()) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       "field \"public\" must be a boolean, got " +
                           describeJsonType(doc.at("public")));
    }
    spec.is_public = doc.at("public").get<bool>();
  }
  if (doc.contains("format")) {
    auto format = jsonString(doc, "format", "");
    if (!format) return std::unexpected(format.error());
    if (!parseImageFormat(*format)) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       "field \"format\" must be raw, qcow2 or iso, not " +
                           quoteForMessage(*format));
    }
    spec.format = *format;
  }
  if (doc.contains("source_path")) {
    auto path = jsonString(doc, "source_path", "");
    if (!path) return std::unexpected(path.error());
    if (path->empty() || path->front() != '/' || path->size() > 4096 ||
        path->find('\0') != std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       "field \"source_path\" must be an absolute path");
    }
    spec.source_path = *path;
  }
  return spec;
}

}  // namespace qiao
