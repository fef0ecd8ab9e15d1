#include "storage/qemu_block.h"

#include <nlohmann/json.hpp>

namespace qiao {

nlohmann::json protocolNode(const DiskSource& source, const std::string& node_name,
                            bool read_only) {
  nlohmann::json node;
  if (source.type == "rbd") {
    node = {{"driver", "rbd"},
            {"node-name", node_name},
            {"pool", source.pool},
            {"image", source.image},
            {"user", source.user},
            {"key-secret", kCephKeyId},
            {"auth-client-required", {"cephx"}},
            {"cache", {{"direct", false}, {"no-flush", false}}},
            {"discard", "unmap"}};
    if (!source.ns.empty()) node["namespace"] = source.ns;
    if (!source.conf.empty()) node["conf"] = source.conf;
  } else {
    node = {{"driver", "file"},
            {"node-name", node_name},
            {"filename", source.path},
            {"discard", "unmap"}};
  }
  if (read_only) node["read-only"] = true;
  return node;
}

nlohmann::json rawNode(const std::string& node_name, const std::string& file_node, bool read_only) {
  nlohmann::json node = {
      {"driver", "raw"}, {"node-name", node_name}, {"file", file_node}, {"discard", "unmap"}};
  if (read_only) node["read-only"] = true;
  return node;
}

}  // namespace qiao
