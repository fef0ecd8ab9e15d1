// Host facts for GET /v1/host, and the start-up probe that decides whether KVM can really run
// guests here. /dev/kvm existing is not enough: on a nested host KVM may start QEMU yet boot
// no Linux (HOST-STACK.md). The probe starts QEMU the way Qiao runs KVM guests
// (accel=kvm, -cpu host, halted with -S) and watches whether it survives its vCPU setup; a
// broken nested KVM aborts there (e.g. "failed to set MSR 0x10a").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qiao {

struct HostFacts {
  std::string hostname;
  std::string arch;  // "x86_64" | "aarch64"
  std::string cpu_model;
  int cores = 0;
  uint64_t memory_bytes = 0;
  bool kvm_device = false;
};

HostFacts readHostFacts();

// The host's own firmware, for installers checking a server against the cluster's baseline.
struct HostFirmware {
  std::string boot_mode;    // "uefi" | "bios" (how this host itself booted)
  std::string secure_boot;  // "enabled" | "disabled" | "unknown"
  std::string bios_vendor, bios_version, bios_date;  // SMBIOS (x86) when readable
  std::string system_vendor, product_name;
  std::string device_tree_model;  // ARM64 hosts booted with a device tree
  std::string microcode;          // x86 microcode revision
};

HostFirmware readHostFirmware();

struct AccelProbe {
  bool kvm_usable = false;
  std::string reason;
};

// KVM is usable when a guest really runs: with `kernel` ("" = /boot/vmlinuz-<release> when
// readable) the probe boots it under KVM (-cpu host, no root: it panics and QEMU exits) and
// looks for its banner on the serial console within `timeout_ms`; without one it can only
// check that a halted -cpu host QEMU survives its vCPU setup.
AccelProbe probeKvm(const std::string& arch, int timeout_ms, const std::string& kernel = {});

struct AccelChoice {
  std::string accelerator;  // "kvm" | "tcg"
  std::string reason;
};

// configured: auto | kvm | tcg. kvm when KVM is unusable is an error saying why.
Result<AccelChoice> chooseAccelerator(std::string_view configured, const AccelProbe& probe);

}  // namespace qiao
