// IPv4 addresses, subnets and MACs of tenant networks: parsed strictly (no leading zeros, no
// host bits in a subnet) and always formatted by Qiao, so that what reaches dnsmasq's files
// and OpenFlow rules is text Qiao wrote, never text a caller sent.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

struct Ipv4Subnet {
  uint32_t network = 0;  // host order
  int prefix = 0;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t broadcast() const { return network | ~mask(); }
  bool contains(uint32_t ip) const { return (ip & mask()) == network; }
  // Usable for hosts: not the network or broadcast address.
  bool isHost(uint32_t ip) const { return contains(ip) && ip != network && ip != broadcast(); }
  bool overlaps(const Ipv4Subnet& other) const;
  std::string str() const;  // "10.0.0.0/24"
  bool operator==(const Ipv4Subnet&) const = default;
};

// Dotted quad, four decimal parts 0-255 without leading zeros. `what` names the field.
Result<uint32_t> parseIpv4(std::string_view text, std::string_view what);
std::string formatIpv4(uint32_t ip);
// "a.b.c.d/p", 0 <= p <= 32, no host bits set (security group remotes).
Result<Ipv4Subnet> parseCidr(std::string_view text, std::string_view what);
// "a.b.c.d/p" with 8 <= p <= 29 (room for a gateway, DHCP and guests) and no host bits set.
Result<Ipv4Subnet> parseSubnet(std::string_view text, std::string_view what);

// The lowest host address of the subnet that is not in `used`; kConflict when it is full.
Result<uint32_t> firstFreeIp(const Ipv4Subnet& subnet, const std::set<uint32_t>& used);

// "aa:bb:cc:dd:ee:ff", hex digits in either case; refused: multicast (the group bit),
// all-zero. Returned lowercase.
Result<std::string> parseMac(std::string_view text, std::string_view what);
// A locally administered unicast MAC (02:51:a0:xx:xx:xx) derived from `seed`.
std::string macFromSeed(std::string_view seed);

}  // namespace qiao
