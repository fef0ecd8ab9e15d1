#include "base/names.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstdio>

namespace qiao {

bool isDnsLabel(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

std::string quoteForMessage(std::string_view text) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (text.size() > kMax) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

Status checkDnsLabel(std::string_view what, std::string_view name) {
  if (isDnsLabel(name)) return {};
  std::string why = name.empty()       ? "it is empty"
                    : name.size() > 63 ? "it is longer than 63 characters"
                                       : "it may hold only a-z, 0-9 and '-', and must start "
                                         "and end with a letter or digit";
  return makeError(ErrorCode::kInvalidArgument, "api",
                   std::string(what) + " " + quoteForMessage(name) + " is not valid: " + why);
}

bool isIpAddress(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool isMonHostList(std::string_view text) {
  if (text.empty() || text.size() > 1024) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view(".:[],/ -").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace qiao
