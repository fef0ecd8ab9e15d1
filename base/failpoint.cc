#include "base/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/log.h"

namespace qiao {
namespace {

const std::vector<std::string>& armedFailpoints() {
  static const std::vector<std::string> armed = [] {
    std::vector<std::string> names;
    const char* env = std::getenv("QIAO_FAILPOINT");
    if (env == nullptr) return names;
    std::string_view rest(env);
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto item = rest.substr(0, comma);
      if (!item.empty()) names.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return names;
  }();
  return armed;
}

}  // namespace

void failpoint(std::string_view name) {
  for (const auto& armed : armedFailpoints()) {
    if (armed == name) {
      Logger("failpoint").warn("failpoint hit: killing qiaod", {{"failpoint", name}});
      std::raise(SIGKILL);
    }
  }
}

}  // namespace qiao
