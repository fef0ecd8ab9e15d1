// A guest NIC as the hypervisor sees it: the tap Qiao made for it (already on br-int with its
// flows), its MAC and the MTU of its network.
#pragma once

#include <string>

namespace qiao {

struct NicDef {
  std::string tap, mac;
  int mtu = 1500;
  bool operator==(const NicDef&) const = default;
};

}  // namespace qiao
