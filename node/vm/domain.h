// The typed libvirt domain model of a Qiao VM, built from its spec and rendered to domain XML
// by XmlWriter (never by pasting strings), and the reader of Qiao's <metadata> back out of
// libvirt (libxml2, no network, no entities).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "network/nic.h"
#include "node/vm/hypervisor.h"
#include "node/vm/spec.h"
#include "storage/qemu_block.h"
#include "storage/volume_driver.h"

namespace qiao {

// One disk of the domain, as the VM service resolved it from the spec and the volumes.
// A file is a libvirt <disk>. An RBD volume reaches QEMU as a -blockdev of its own (libvirt
// 9.0 cannot name an RBD namespace, which keeps tenants apart inside Ceph), with the cephx
// key read by QEMU from a root-only file, never from a command line.
// A disk of a domain: where its volume is (the backend's DiskSource: type, file path or RBD
// pool/namespace/image/user/conf) and how the VM has it.
struct DiskDef : DiskSource {
  std::string id;       // rbd: QEMU id of its device and raw node (qemuDiskId of the volume)
  std::string target;   // "vda", "vdb", ...; "sda" for a CD-ROM
  bool cdrom = false;   // read-only, on virtio-scsi (cloud-init seeds)
  // I/O limits: libvirt <iotune> on a file; on RBD librbd applies the image's own.
  VolumeQos qos;
  bool operator==(const DiskDef&) const = default;
};

// A disk as QEMU reaches its volume (the backend's DiskSource), with QEMU id `id`.
DiskDef diskFromSource(std::string id, const DiskSource& source);

// The QEMU id of a volume's disk (its -device and raw node; "<id>-file" is the rbd node):
// stable for the volume, so a running VM's disks keep their ids while others come and go.
std::string qemuDiskId(std::string_view volume_uuid);
// Qiao's own PCIe root ports for RBD disks, one disk each: a device on the root complex
// could never be unplugged. "qiao-port<k>", k < kMaxDisks.
std::string qemuDiskPort(size_t k);
// The arguments of an RBD disk's nodes (blockdev-add: the rbd node, then raw on it) and of its
// device (device_add), the same for the command line and for hot-plug (storage/qemu_block.h).
nlohmann::json rbdFileNode(const DiskDef& disk);
nlohmann::json rbdFormatNode(const DiskDef& disk);
nlohmann::json rbdDevice(const DiskDef& disk, const std::string& port, bool boot);
// The first of Qiao's disk ports with nothing behind it, from QMP query-pci's answer.
std::optional<std::string> freeDiskPort(const nlohmann::json& query_pci);

struct DomainContext {
  std::string cluster;
  std::string accelerator;  // "kvm" | "tcg", already resolved from spec.accel and the host
  std::string uuid;
  std::string console_log_path;
  std::string machine;  // q35 | virt
  std::string emulator;  // "" = libvirt's default for the arch
  std::string cpu_model_tcg_aarch64 = "cortex-a72";
  int spare_pcie_ports = 8;  // for hot-plug later
  // UEFI: the firmware build chosen from QEMU's descriptors, and this VM's own NVRAM file.
  std::string loader;          // "" = BIOS
  std::string nvram_template;
  std::string nvram_path;
  // Or the NVRAM on RBD, beside the VM's disks (so that the VM can move hosts): an image of
  // its own, given to QEMU as pflash1 (libvirt 9.0 cannot name an RBD namespace).
  std::optional<DiskDef> nvram_rbd;
  bool secure_boot = false;    // with SMM, as the secure descriptors require
  std::vector<DiskDef> disks;  // in spec order: the first is vda and boots
  std::string ceph_key_file;   // base64 cephx key, for RBD disks
  std::vector<NicDef> nics;    // in spec order
};

struct DomainDef {
  std::string type;  // "kvm" | "qemu"
  std::string name;  // <tenant>.<name>
  std::string uuid;
  std::string arch;
  std::string machine;
  int vcpus = 1, max_vcpus = 1;
  uint64_t memory_kib = 0, max_memory_kib = 0;
  std::string kernel, initrd, cmdline;
  std::string cpu_mode;   // "" (QEMU's default), "host-passthrough", "custom"
  std::string cpu_model;  // with cpu_mode "custom"
  bool gic_v3 = false;
  std::string emulator;
  std::string console_log_path;
  int spare_pcie_ports = 0;
  std::string loader, nvram_template, nvram_path;
  std::optional<DiskDef> nvram_rbd;
  bool secure_boot = false;
  std::vector<DiskDef> disks;
  std::string ceph_key_file;
  std::vector<NicDef> nics;
  QiaoMetadata metadata;
};

DomainDef buildDomainDef(const VmSpec& spec, const DomainContext& context);
std::string renderDomainXml(const DomainDef& def);
// One NIC's <interface> alone, for hot-plug (the same as in the domain XML).
std::string renderNicXml(const NicDef& nic);

// Reads Qiao's metadata element (as virDomainGetMetadata returns it for kQiaoMetadataNs).
Result<QiaoMetadata> parseQiaoMetadata(std::string_view metadata_element_xml);
// Finds and reads Qiao's metadata inside a whole domain XML.
Result<QiaoMetadata> parseQiaoMetadataFromDomainXml(std::string_view domain_xml);

}  // namespace qiao
