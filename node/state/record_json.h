// The API's JSON shapes of the stored records (docs/api/openapi.yaml): one place renders them,
// for responses and for the event stream alike.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "base/error.h"

namespace qiao {

struct VmRecord;
struct TaskRecord;
struct VolumeRecord;
struct ImageRecord;
struct NetworkRecord;
struct PortRecord;
struct SecurityGroupRecord;
struct VolumeQos;

nlohmann::json vmToJson(const VmRecord& vm);
nlohmann::json taskToJson(const TaskRecord& task);
nlohmann::json volumeToJson(const VolumeRecord& volume);
// A volume's I/O limits, every field (0 = none).
nlohmann::json qosToJson(const VolumeQos& qos);
nlohmann::json imageToJson(const ImageRecord& image);
nlohmann::json networkToJson(const NetworkRecord& network);
nlohmann::json portToJson(const PortRecord& port);
nlohmann::json securityGroupToJson(const SecurityGroupRecord& group);
// Serialises without throwing: invalid UTF-8 (say, from a libvirt message) becomes U+FFFD.
std::string dumpJson(const nlohmann::json& value);
// {"code","message","details"} as stored in a task's error_json.
std::string errorToJson(const Error& error);
// The body of every error response: {"error":{"code","message","details"}}.
std::string errorBody(const Error& error);

inline std::string domainNameOf(const std::string& tenant, const std::string& name) {
  return tenant + "." + name;
}

}  // namespace qiao
