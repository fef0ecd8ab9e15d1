// QEMU firmware interop descriptors (docs/interop/firmware.json in QEMU): which firmware
// builds this host offers (BIOS, UEFI, UEFI with secure boot; x86_64 and aarch64), read the
// way QEMU and libvirt read them, and the choice of one for a guest. Qiao names the loader and
// the NVRAM template explicitly in the domain XML instead of leaving the choice to libvirt,
// whose automatic pick can be a secure, key-enrolled build that refuses a directly booted
// kernel (HOST-STACK.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace qiao {

struct FirmwareTarget {
  std::string architecture;           // x86_64 | aarch64 | ...
  std::vector<std::string> machines;  // globs: "pc-q35-*", "virt-*"
};

struct FirmwareDescriptor {
  std::string source;  // the descriptor file
  std::string description;
  std::vector<std::string> interface_types;  // bios | uefi | openfirmware | slof | uboot
  std::string device;                        // flash | memory | kernel
  std::string executable;
  std::string executable_format;
  std::string nvram_template;  // "" when the build has none
  std::string nvram_template_format;
  std::vector<FirmwareTarget> targets;
  std::vector<std::string> features;  // secure-boot, enrolled-keys, requires-smm, acpi-s3, ...

  bool hasFeature(std::string_view feature) const;
  bool hasInterface(std::string_view interface) const;
  bool supports(std::string_view arch, std::string_view machine) const;
};

// Parses one descriptor. Fields Qiao does not use are ignored (QEMU adds some over time);
// the ones it uses must have the right types.
Result<FirmwareDescriptor> parseFirmwareDescriptor(std::string_view json, const std::string& source);

struct FirmwareCatalog {
  std::vector<FirmwareDescriptor> descriptors;  // in QEMU's order: by file name
  std::vector<std::string> warnings;            // descriptors skipped, and why
};

// QEMU's search: the directories from the highest precedence to the lowest; a file name found
// in a higher one hides the same name in lower ones (an empty file only hides); the result is
// ordered by file name. A descriptor that does not parse, or whose files are missing, is
// skipped with a warning.
FirmwareCatalog loadFirmwareDescriptors(const std::vector<std::string>& dirs);
// $XDG_CONFIG_HOME/qemu/firmware (or ~/.config/qemu/firmware), /etc/qemu/firmware,
// /usr/share/qemu/firmware.
std::vector<std::string> defaultFirmwareDirs();

// A machine type against a descriptor's glob; an unversioned alias ("q35", "virt") matches
// the versioned names it stands for ("pc-q35-*", "virt-*").
bool machineMatches(std::string_view glob, std::string_view machine);

struct FirmwareRequest {
  std::string arch;
  std::string machine;
  std::string interface;              // bios | uefi
  std::vector<std::string> require;   // features the build must have
  std::vector<std::string> forbid;    // features it must not have
};

// The first descriptor (in order) that fits; kNotFound saying what was asked otherwise.
Result<FirmwareDescriptor> selectFirmware(const FirmwareCatalog& catalog,
                                          const FirmwareRequest& request);

}  // namespace qiao
