// Host network devices for tenant ports: persistent taps for guests (made by Qiao, so a tap,
// its OVS port and its flows exist before the guest sends its first packet, and survive the
// guest's restarts), veth pairs into network namespaces (for DHCP), and the namespaces. Taps,
// links and offloads by ioctl; veths, namespaces and addresses by `ip` with an argv. Names are
// Qiao's (qt-..., qd-...), never a caller's.
#pragma once

#include <string>

#include "base/error.h"

namespace qiao {

bool linkExists(const std::string& name);
// A persistent tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR), up, with `mtu`. Idempotent.
Status ensureTap(const std::string& name, int mtu);
// Removes a tap (absent = ok).
Status removeTap(const std::string& name);
// Up/down and MTU of a link of the root namespace.
Status setLinkUp(const std::string& name, int mtu);
// Turns transmit checksum offload off: the userspace datapath forwards what a veth sends
// without filling in checksums the sender left to the hardware.
Status disableTxChecksum(const std::string& name);

bool netnsExists(const std::string& ns);
Status ensureNetns(const std::string& ns);
Status removeNetns(const std::string& ns);  // absent = ok
// A veth pair: `outer` up in the root namespace; `inner` moved into `ns` with `mac`,
// `address` ("10.0.0.2/24"), `mtu`, up, and the namespace's loopback up. Checksum offload off
// on both ends. Idempotent: what is there already is kept and completed.
Status ensureVethIntoNetns(const std::string& outer, const std::string& inner,
                           const std::string& ns, const std::string& mac,
                           const std::string& address, int mtu);
Status removeLink(const std::string& name);  // absent = ok

}  // namespace qiao
