#include "network/netdev.h"

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/handle.h"
#include "base/process.h"

namespace qiao {

namespace {

Error sysError(const std::string& what) {
  return Error{ErrorCode::kInternal, "netdev", what + ": " + std::strerror(errno)};
}

Status checkName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('/') != std::string::npos) {
    return makeError(ErrorCode::kInternal, "netdev", "bad interface name " + name);
  }
  return {};
}

ifreq request(const std::string& name) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  return ifr;
}

// `ip ARGS...`: kInternal with ip's message on failure.
Status ip(std::vector<std::string> args) {
  ProcessOptions p;
  p.argv = {"ip"};
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  p.timeout_ms = 10000;
  auto r = runProcess(p);
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0) {
    std::string cmd;
    for (const auto& a : p.argv) cmd += (cmd.empty() ? "" : " ") + a;
    return makeError(ErrorCode::kInternal, "netdev", cmd + ": " + r->message());
  }
  return {};
}

Status setTunPersist(const std::string& name, bool persist) {
  if (auto s = checkName(name); !s) return s;
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return std::unexpected(sysError("open /dev/net/tun"));
  ifreq ifr = request(name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    return std::unexpected(sysError("TUNSETIFF " + name));
  }
  if (::ioctl(fd.get(), TUNSETPERSIST, persist ? 1 : 0) != 0) {
    return std::unexpected(sysError("TUNSETPERSIST " + name));
  }
  return {};
}

}  // namespace

bool linkExists(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos &&
         std::filesystem::exists("/sys/class/net/" + name);
}

Status setLinkUp(const std::string& name, int mtu) {
  if (auto s = checkName(name); !s) return s;
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return std::unexpected(sysError("socket"));
  ifreq ifr = request(name);
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) != 0) {
      return std::unexpected(sysError("setting the MTU of " + name));
    }
  }
  ifr = request(name);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return std::unexpected(sysError(name));
  if ((ifr.ifr_flags & IFF_UP) == 0) {
    ifr.ifr_flags |= IFF_UP;
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) {
      return std::unexpected(sysError("bringing up " + name));
    }
  }
  return {};
}

Status disableTxChecksum(const std::string& name) {
  if (auto s = checkName(name); !s) return s;
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return std::unexpected(sysError("socket"));
  ethtool_value value{};
  value.cmd = ETHTOOL_STXCSUM;
  value.data = 0;
  ifreq ifr = request(name);
  ifr.ifr_data = reinterpret_cast<char*>(&value);
  if (::ioctl(sock.get(), SIOCETHTOOL, &ifr) != 0) {
    return std::unexpected(sysError("turning off tx checksum offload of " + name));
  }
  return {};
}

Status ensureTap(const std::string& name, int mtu) {
  if (!linkExists(name)) {
    if (auto s = setTunPersist(name, true); !s) return s;
  }
  return setLinkUp(name, mtu);
}

Status removeTap(const std::string& name) {
  if (!linkExists(name)) return {};
  // A tap a guest still holds cannot be attached to; it goes when the guest lets go of it.
  if (setTunPersist(name, false)) return {};
  return removeLink(name);
}

bool netnsExists(const std::string& ns) {
  return !ns.empty() && ns.find('/') == std::string::npos &&
         std::filesystem::exists("/run/netns/" + ns);
}

Status ensureNetns(const std::string& ns) {
  if (netnsExists(ns)) return {};
  return ip({"netns", "add", ns});
}

Status removeNetns(const std::string& ns) {
  if (!netnsExists(ns)) return {};
  return ip({"netns", "delete", ns});
}

Status removeLink(const std::string& name) {
  if (!linkExists(name)) return {};
  return ip({"link", "delete", name});
}

Status ensureVethIntoNetns(const std::string& outer, const std::string& inner,
                           const std::string& ns, const std::string& mac,
                           const std::string& address, int mtu) {
  if (auto s = checkName(outer); !s) return s;
  if (auto s = checkName(inner); !s) return s;
  if (auto s = ensureNetns(ns); !s) return s;
  if (!linkExists(outer)) {
    // A half-made pair (the inner end already in the namespace) goes with its outer end.
    (void)ip({"-n", ns, "link", "delete", inner});
    if (auto s = ip({"link", "add", outer, "type", "veth", "peer", "name", inner}); !s) return s;
    if (auto s = disableTxChecksum(outer); !s) return s;
    if (auto s = disableTxChecksum(inner); !s) return s;
    if (auto s = ip({"link", "set", inner, "netns", ns}); !s) return s;
  }
  if (auto s = setLinkUp(outer, mtu); !s) return s;
  const std::string m = std::to_string(mtu);
  if (auto s = ip({"-n", ns, "link", "set", inner, "address", mac, "mtu", m, "up"}); !s) return s;
  if (auto s = ip({"-n", ns, "addr", "replace", address, "dev", inner}); !s) return s;
  return ip({"-n", ns, "link", "set", "lo", "up"});
}

}  // namespace qiao
