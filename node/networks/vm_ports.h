// VmPorts: what the VM service needs of the node's tenant networks, the ports of its VMs'
// NICs. NetworkService is the implementation; NoNetworks serves a node whose networks are off
// (network.mode = "off", or "auto" without Open vSwitch): a VM without NICs runs there, a VM
// that asks for one is refused with the reason.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "network/nic.h"
#include "node/state/store.h"

namespace qiao {

// One NIC a VM asks for.
struct NicRequest {
  std::string network;
  std::string ip;   // "" = chosen by IPAM
  std::string mac;  // "" = derived from the port
  std::vector<std::string> security_groups;  // empty = the tenant's "default"
};

class VmPorts {
 public:
  virtual ~VmPorts() = default;
  // At a VM's submit: every NIC names a ready network of the tenant (or, with `creating_ok`,
  // one still being created: a VM create waits for it), with a well-formed address inside its
  // subnet and a well-formed MAC.
  virtual Status checkNics(const std::string& tenant, const std::vector<NicRequest>& nics,
                           bool creating_ok = false) = 0;
  // For a create that waits: "" when every network the NICs name is ready, else what is
  // still awaited ("network acme/web (creating)"); an error when one will never be ready (its
  // create failed: the error says why, or it is being deleted).
  virtual Result<std::string> awaitedNetworks(const std::string& tenant,
                                              const std::vector<NicRequest>& nics) = 0;
  // Steps of the VM tasks. Idempotent: a NIC that has its port keeps it.
  virtual Status plugVm(const std::string& tenant, const std::string& vm_uuid,
                        const std::string& vm_name, const std::vector<NicRequest>& nics) = 0;
  virtual Status unplugVm(const std::string& vm_uuid) = 0;
  // One NIC of a VM (hot-unplug): its port and flows go, the later NICs move up one.
  // Idempotent.
  virtual Status unplugNic(const PortRecord& port) = 0;
  // The VM's NICs in order, for its domain XML.
  virtual Result<std::vector<NicDef>> nicsOf(const std::string& vm_uuid) = 0;
};

// No tenant networks on this node: no VM has a port, and a NIC is refused.
class NoNetworks final : public VmPorts {
 public:
  Status checkNics(const std::string&, const std::vector<NicRequest>& nics, bool) override {
    if (nics.empty()) return {};
    return refused();
  }
  Result<std::string> awaitedNetworks(const std::string&,
                                      const std::vector<NicRequest>& nics) override {
    if (nics.empty()) return std::string();
    return std::unexpected(refused().error());
  }
  Status plugVm(const std::string&, const std::string&, const std::string&,
                const std::vector<NicRequest>& nics) override {
    if (nics.empty()) return {};
    return refused();
  }
  Status unplugVm(const std::string&) override { return {}; }
  Status unplugNic(const PortRecord&) override { return {}; }
  Result<std::vector<NicDef>> nicsOf(const std::string&) override {
    return std::vector<NicDef>();
  }

 private:
  static Status refused() {
    return makeError(ErrorCode::kInvalidArgument, "vm", "this node has no networks");
  }
};

}  // namespace qiao
