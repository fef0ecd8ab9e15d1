// Reading a Ceph keyring (INI: "[client.qiao]" then "key = AQ...==").
#include <fstream>

#include "storage/volume_driver.h"

namespace qiao {
namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

Result<std::string> readCephKey(const std::string& keyring, const std::string& user) {
  std::ifstream in(keyring);
  if (!in) {
    return makeError(ErrorCode::kUnavailable, "rbd", "cannot read the keyring " + keyring);
  }
  const std::string section = "[client." + user + "]";
  bool in_section = false;
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      in_section = line == section;
      continue;
    }
    if (!in_section) continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || trim(line.substr(0, eq)) != "key") continue;
    std::string key = trim(line.substr(eq + 1));
    if (key.empty() || key.find_first_not_of(
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
                           std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "rbd",
                       "the key of client." + user + " in " + keyring + " is not base64");
    }
    return key;
  }
  return makeError(ErrorCode::kNotFound, "rbd", keyring + " holds no key for client." + user);
}

}  // namespace qiao
