// The VM spec: what a caller asks for in POST /v1/vms, parsed strictly from JSON (unknown
// fields, wrong types, out-of-range values and hostile names are refused with a message that
// names the field) and rendered back canonically. The spec is also what Qiao stores in the
// domain's metadata, so that a lost store can be rebuilt from libvirt.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace qiao {

struct BootSpec {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  bool operator==(const BootSpec&) const = default;
};

// A disk of the VM: an existing volume of its tenant, or a new volume cloned from an image's
// golden snapshot (grown to size_gib; 0 = the image's size), deleted with the VM unless keep.
struct DiskSpec {
  std::string volume;
  std::string image;
  int64_t size_gib = 0;
  bool keep = false;
  bool operator==(const DiskSpec&) const = default;
};

inline constexpr size_t kMaxDisks = 16;

// A NIC on a network of the VM's tenant; ip and mac chosen by Qiao when absent (canonical
// text once parsed).
struct NicSpec {
  std::string network;
  std::string ip;
  std::string mac;
  std::vector<std::string> security_groups;  // names in the VM's tenant; empty = "default"
  bool operator==(const NicSpec&) const = default;
};

inline constexpr size_t kMaxNics = 8;
inline constexpr size_t kMaxNicGroups = 5;

// A cloud-init NoCloud seed, attached as a CD-ROM; instance-id and hostname come from the VM.
struct CloudInitSpec {
  std::string user_data;
  std::string meta_data;
  std::string network_config;
  bool operator==(const CloudInitSpec&) const = default;
};

struct VmSpec {
  std::string name;
  std::string tenant;
  std::string arch;  // x86_64 | aarch64
  std::string firmware = "bios";
  std::string accel = "auto";
  int vcpus = 1;
  int64_t memory_mib = 512;
  // The most vCPUs and memory the VM can be given while it runs (fixed at create: QEMU starts
  // with them); absent = vcpus and memory_mib.
  int max_vcpus = 0;
  int64_t max_memory_mib = 0;
  std::optional<BootSpec> boot;
  std::vector<DiskSpec> disks;  // the first is vda
  std::vector<NicSpec> nics;
  std::optional<CloudInitSpec> cloud_init;
  std::map<std::string, std::string> labels;
  bool operator==(const VmSpec&) const = default;
};

struct SpecLimits {
  std::string host_arch = "x86_64";
  int max_vcpus = 64;
  int64_t max_memory_mib = 262144;
  int64_t max_disk_gib = 16384;
  bool check_boot_files = true;  // off when re-reading a stored spec, and when fuzzing
  // This host's size, for a VM it is asked to take (0: no such check, as for a stored spec):
  // a VM may have at most cores x cpu_overcommit_percent / 100 vCPUs and memory x
  // memory_overcommit_percent / 100 MiB, counting the maximums it may grow to.
  int host_cores = 0;
  int64_t host_memory_mib = 0;
  int cpu_overcommit_percent = 400;
  int memory_overcommit_percent = 100;
};

inline constexpr int kMaxSpecDepth = 32;

// Never throws. `tenant` may be absent (the API fills it in); everything else is validated.
Result<VmSpec> parseVmSpec(std::string_view json_text, const SpecLimits& limits);
Status validateVmSpec(const VmSpec& spec, const SpecLimits& limits);
// One disk, as POST /v1/vms/{name}/disks takes it: {"volume"} or {"image", "size_gib"?,
// "keep"?, "volume"? (the new volume's name)}.
Result<DiskSpec> parseDiskSpec(std::string_view json_text, const SpecLimits& limits);
// POST /v1/vms/{name}/resize: {"vcpus"?, "memory_mib"?}, at least one (0 = unchanged).
struct VmResize {
  int vcpus = 0;
  int64_t memory_mib = 0;
};
Result<VmResize> parseVmResize(std::string_view json_text, const SpecLimits& limits);
// One NIC, as POST /v1/vms/{name}/nics takes it: {"network", "ip"?, "mac"?, "security_groups"?}.
Result<NicSpec> parseNicSpec(std::string_view json_text);
std::string vmSpecToJson(const VmSpec& spec);
nlohmann::json vmSpecToJsonValue(const VmSpec& spec);
// The name of the volume behind disk `index` of a VM: the volume it names, or the one made
// for it from an image ("<vm>-disk<index>", shortened with a digest when that is too long
// for a DNS label).
std::string diskVolumeName(const VmSpec& spec, size_t index);
// "<vm>-disk<index>": the name a disk made from an image gets when it names none.
std::string imageDiskVolumeName(const std::string& vm_name, size_t index);

}  // namespace qiao
