#include "network/ipam.h"

#include <cstdio>

#include "base/crypto.h"
#include "base/names.h"

namespace qiao {

namespace {

Error bad(std::string_view what, std::string_view text, std::string_view why) {
  return Error{ErrorCode::kInvalidArgument, "network",
               std::string(what) + " " + quoteForMessage(text) + ": " + std::string(why)};
}

// A decimal number without sign or leading zeros, at most `max`.
std::optional<uint32_t> parseDecimal(std::string_view text, uint32_t max) {
  if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return std::nullopt;
  return static_cast<uint32_t>(v);
}

}  // namespace

bool Ipv4Subnet::overlaps(const Ipv4Subnet& other) const {
  int p = prefix < other.prefix ? prefix : other.prefix;
  uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (network & m) == (other.network & m);
}

std::string Ipv4Subnet::str() const { return formatIpv4(network) + "/" + std::to_string(prefix); }

Result<uint32_t> parseIpv4(std::string_view text, std::string_view what) {
  uint32_t ip = 0;
  std::string_view rest = text;
  for (int i = 0; i < 4; ++i) {
    size_t dot = rest.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) {
      return std::unexpected(bad(what, text, "not an IPv4 address (a.b.c.d)"));
    }
    auto part = parseDecimal(rest.substr(0, dot), 255);
    if (!part) return std::unexpected(bad(what, text, "not an IPv4 address (a.b.c.d)"));
    ip = (ip << 8) | *part;
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  }
  return ip;
}

std::string formatIpv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
                ip & 255);
  return buf;
}

Result<Ipv4Subnet> parseCidr(std::string_view text, std::string_view what) {
  const char* form = "not an IPv4 CIDR (10.0.0.0/24)";
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::unexpected(bad(what, text, form));
  auto ip = parseIpv4(text.substr(0, slash), what);
  auto prefix = parseDecimal(text.substr(slash + 1), 32);
  if (!ip || !prefix) return std::unexpected(bad(what, text, form));
  Ipv4Subnet s{*ip, static_cast<int>(*prefix)};
  if ((*ip & s.mask()) != *ip) {
    return std::unexpected(bad(what, text,
                               "host bits are set (did you mean " +
                                   Ipv4Subnet{*ip & s.mask(), s.prefix}.str() + "?)"));
  }
  return s;
}

Result<Ipv4Subnet> parseSubnet(std::string_view text, std::string_view what) {
  auto s = parseCidr(text, what);
  if (!s) return s;
  if (s->prefix < 8 || s->prefix > 29) {
    return std::unexpected(bad(what, text, "the prefix length must be 8 to 29"));
  }
  uint32_t first = s->network >> 24;
  if (first == 0 || first == 127 || first >= 224) {
    return std::unexpected(bad(what, text, "not a unicast range usable by guests"));
  }
  return s;
}

Result<uint32_t> firstFreeIp(const Ipv4Subnet& subnet, const std::set<uint32_t>& used) {
  for (uint32_t ip = subnet.network + 1; ip < subnet.broadcast(); ++ip) {
    if (!used.contains(ip)) return ip;
  }
  return makeError(ErrorCode::kConflict, "network",
                   "subnet " + subnet.str() + " has no free address left");
}

Result<std::string> parseMac(std::string_view text, std::string_view what) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() != 17) return std::unexpected(bad(what, text, "not a MAC (aa:bb:cc:dd:ee:ff)"));
  uint8_t bytes[6];
  for (int i = 0; i < 6; ++i) {
    int hi = hex(text[i * 3]), lo = hex(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':')) {
      return std::unexpected(bad(what, text, "not a MAC (aa:bb:cc:dd:ee:ff)"));
    }
    bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (bytes[0] & 1) return std::unexpected(bad(what, text, "a multicast MAC cannot be a NIC's"));
  bool zero = true;
  for (uint8_t b : bytes) zero = zero && b == 0;
  if (zero) return std::unexpected(bad(what, text, "the all-zero MAC cannot be a NIC's"));
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return std::string(buf);
}

std::string macFromSeed(std::string_view seed) {
  std::string digest = sha256Hex(seed);
  return "02:51:a0:" + digest.substr(0, 2) + ":" + digest.substr(2, 2) + ":" + digest.substr(4, 2);
}

}  // namespace qiao
