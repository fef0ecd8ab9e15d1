// cloud-init NoCloud seeds: an ISO 9660 image labelled "cidata" holding user-data, meta-data
// and, when given, network-config, built with xorriso (by argv, from files of a private
// temporary folder; nothing of the content reaches a command line). The VM's own instance-id
// and hostname are written by Qiao into meta-data; the caller's meta-data follows them.
#pragma once

#include <string>

#include "base/error.h"

namespace qiao {

struct SeedContent {
  std::string instance_id;
  std::string hostname;
  std::string user_data;
  std::string meta_data;       // extra meta-data lines (YAML), may be empty
  std::string network_config;  // may be empty
};

inline constexpr size_t kMaxSeedPart = 64 * 1024;

// Checks what a caller may put in a seed: each part at most kMaxSeedPart bytes of UTF-8 text
// (tabs and newlines allowed, other control characters not); meta-data may not set
// instance-id or local-hostname (Qiao's). `where` prefixes messages ("cloud_init.").
Status validateSeedParts(const std::string& user_data, const std::string& meta_data,
                         const std::string& network_config, const std::string& where);

// Writes the seed ISO to `path` (replacing it).
Status buildSeedIso(const SeedContent& content, const std::string& path);

}  // namespace qiao
