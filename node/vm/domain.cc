#include "node/vm/domain.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>

#include "base/handle.h"
#include "node/vm/xml_writer.h"

namespace qiao {
namespace {

using XmlDoc = CPtr<xmlDoc, xmlFreeDoc>;

std::string nodeText(xmlNode* node) {
  xmlChar* content = xmlNodeGetContent(node);
  if (content == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(content));
  xmlFree(content);
  return out;
}

// An element of Qiao's namespace; with `bare`, also one without a namespace (libvirt's
// virDomainGetMetadata returns the element with its namespace stripped).
bool isQiaoElement(xmlNode* node, const char* local_name, bool bare) {
  if (node->type != XML_ELEMENT_NODE ||
      std::strcmp(reinterpret_cast<const char*>(node->name), local_name) != 0) {
    return false;
  }
  if (node->ns == nullptr || node->ns->href == nullptr) return bare;
  return std::strcmp(reinterpret_cast<const char*>(node->ns->href), kQiaoMetadataNs) == 0;
}

// <domain><metadata><qiao:vm>: the namespaced element, two levels down.
xmlNode* findQiaoVmInDomain(xmlNode* domain) {
  if (domain == nullptr) return nullptr;
  for (xmlNode* m = domain->children; m != nullptr; m = m->next) {
    if (m->type != XML_ELEMENT_NODE || std::strcmp(reinterpret_cast<const char*>(m->name), "metadata") != 0) {
      continue;
    }
    for (xmlNode* v = m->children; v != nullptr; v = v->next) {
      if (isQiaoElement(v, "vm", false)) return v;
    }
  }
  return nullptr;
}

Result<XmlDoc> parseXml(std::string_view xml) {
  if (xml.size() > (16 << 20)) {
    return makeError(ErrorCode::kInvalidArgument, "vm", "domain XML is too large");
  }
  // No network, no entity substitution, no DTD loading: libvirt's XML is data, not a program.
  XmlDoc doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) return makeError(ErrorCode::kInvalidArgument, "vm", "domain XML does not parse");
  return doc;
}

Result<QiaoMetadata> readMetadata(xmlNode* vm, bool bare) {
  if (vm == nullptr) return makeError(ErrorCode::kNotFound, "vm", "no Qiao metadata");
  QiaoMetadata md;
  bool have_name = false, have_tenant = false, have_spec = false;
  for (xmlNode* c = vm->children; c != nullptr; c = c->next) {
    if (isQiaoElement(c, "cluster", bare)) md.cluster = nodeText(c);
    else if (isQiaoElement(c, "tenant", bare)) { md.tenant = nodeText(c); have_tenant = true; }
    else if (isQiaoElement(c, "name", bare)) { md.name = nodeText(c); have_name = true; }
    else if (isQiaoElement(c, "spec", bare)) { md.spec_json = nodeText(c); have_spec = true; }
  }
  if (!have_name || !have_tenant || !have_spec) {
    return makeError(ErrorCode::kInvalidArgument, "vm",
                     "Qiao metadata lacks its tenant, name or spec");
  }
  return md;
}

}  // namespace

DomainDef buildDomainDef(const VmSpec& spec, const DomainContext& ctx) {
  DomainDef d;
  d.type = ctx.accelerator == "kvm" ? "kvm" : "qemu";
  d.name = spec.tenant + "." + spec.name;
  d.uuid = ctx.uuid;
  d.arch = spec.arch;
  d.machine = ctx.machine;
  d.vcpus = spec.vcpus;
  d.max_vcpus = std::max(spec.max_vcpus, spec.vcpus);
  d.memory_kib = static_cast<uint64_t>(spec.memory_mib) * 1024;
  d.max_memory_kib = static_cast<uint64_t>(std::max(spec.max_memory_mib, spec.memory_mib)) * 1024;
  if (spec.boot) {
    d.kernel = spec.boot->kernel;
    d.initrd = spec.boot->initrd;
    d.cmdline = spec.boot->cmdline;
  }
  if (spec.arch == "aarch64") {
    d.gic_v3 = true;
    if (d.type == "kvm") {
      d.cpu_mode = "host-passthrough";
    } else {
      d.cpu_mode = "custom";
      d.cpu_model = ctx.cpu_model_tcg_aarch64;
    }
  } else if (d.type == "kvm") {
    d.cpu_mode = "host-passthrough";
  }
  d.emulator = ctx.emulator;
  d.console_log_path = ctx.console_log_path;
  d.spare_pcie_ports = ctx.spare_pcie_ports;
  d.loader = ctx.loader;
  d.nvram_template = ctx.nvram_template;
  d.nvram_path = ctx.nvram_path;
  d.nvram_rbd = ctx.nvram_rbd;
  d.secure_boot = ctx.secure_boot;
  d.disks = ctx.disks;
  d.nics = ctx.nics;
  d.ceph_key_file = ctx.ceph_key_file;
  d.metadata.cluster = ctx.cluster;
  d.metadata.tenant = spec.tenant;
  d.metadata.name = spec.name;
  d.metadata.spec_json = vmSpecToJson(spec);
  return d;
}

std::string qemuDiskId(std::string_view volume_uuid) {
  std::string hex;
  for (char c : volume_uuid) {
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0 && hex.size() < 16) hex += c;
  }
  return "qd-" + hex;
}

DiskDef diskFromSource(std::string id, const DiskSource& source) {
  DiskDef disk;
  static_cast<DiskSource&>(disk) = source;
  disk.id = std::move(id);
  return disk;
}

std::string qemuDiskPort(size_t k) { return "qiao-port" + std::to_string(k); }


nlohmann::json rbdFileNode(const DiskDef& disk) {
  return protocolNode(disk, disk.id + "-file");
}

nlohmann::json rbdFormatNode(const DiskDef& disk) { return rawNode(disk.id, disk.id + "-file"); }

nlohmann::json rbdDevice(const DiskDef& disk, const std::string& port, bool boot) {
  nlohmann::json device = {{"driver", "virtio-blk-pci"}, {"drive", disk.id}, {"id", disk.id},
                           {"bus", port}};
  if (boot) device["bootindex"] = 1;
  return device;
}

std::optional<std::string> freeDiskPort(const nlohmann::json& query_pci) {
  std::set<std::string> busy, ports;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& devices) {
    if (!devices.is_array()) return;
    for (const auto& dev : devices) {
      if (!dev.is_object()) continue;
      const std::string id = dev.value("qdev_id", "");
      auto bridge = dev.find("pci_bridge");
      if (!id.starts_with("qiao-port") || bridge == dev.end() || !bridge->is_object()) {
        if (bridge != dev.end() && bridge->is_object()) walk(bridge->value("devices", nlohmann::json()));
        continue;
      }
      ports.insert(id);
      const auto behind = bridge->value("devices", nlohmann::json::array());
      if (behind.is_array() && !behind.empty()) busy.insert(id);
    }
  };
  if (query_pci.is_array()) {
    for (const auto& bus : query_pci) {
      if (bus.is_object()) walk(bus.value("devices", nlohmann::json()));
    }
  }
  for (size_t k = 0; k < kMaxDisks; ++k) {
    const std::string port = qemuDiskPort(k);
    if (ports.contains(port) && !busy.contains(port)) return port;
  }
  return std::nullopt;
}

namespace {

constexpr const char* kQemuNs = "http://libvirt.org/schemas/domain/qemu/1.0";
// Chassis numbers of Qiao's root ports: far above libvirt's (its controller indexes).
constexpr int kDiskPortChassis = 200;

void renderFileDisk(XmlWriter& w, const DiskDef& disk, bool boot) {
  w.open("disk").attr("type", "file").attr("device", disk.cdrom ? "cdrom" : "disk");
  w.open("driver").attr("name", "qemu").attr("type", "raw").close();
  w.open("source").attr("file", disk.path).close();
  // CD-ROMs on virtio-scsi: present on q35 and on aarch64 virt alike (no SATA there).
  w.open("target").attr("dev", disk.target).attr("bus", disk.cdrom ? "scsi" : "virtio").close();
  if (disk.cdrom) w.open("readonly").close();
  if (disk.qos != VolumeQos{}) {
    // In the order of libvirt's schema.
    w.open("iotune");
    for (auto [name, value] : {std::pair{"total_bytes_sec", disk.qos.bytes_per_sec},
                               std::pair{"read_bytes_sec", disk.qos.read_bytes_per_sec},
                               std::pair{"write_bytes_sec", disk.qos.write_bytes_per_sec},
                               std::pair{"total_iops_sec", disk.qos.iops},
                               std::pair{"read_iops_sec", disk.qos.read_iops},
                               std::pair{"write_iops_sec", disk.qos.write_iops}}) {
      if (value > 0) w.leaf(name, std::to_string(value));
    }
    w.close();
  }
  if (boot) w.open("boot").attr("order", "1").close();
  w.close();
}

// A tap Qiao made and plugged (managed='no': libvirt opens it, never creates, renames or
// deletes it). No checksum or segmentation offload: the userspace datapath forwards frames as
// they are, so a guest must never leave a checksum to the host.
void renderNic(XmlWriter& w, const NicDef& nic) {
  w.open("interface").attr("type", "ethernet");
  w.open("mac").attr("address", nic.mac).close();
  w.open("target").attr("dev", nic.tap).attr("managed", "no").close();
  w.open("model").attr("type", "virtio").close();
  w.open("driver");
  w.open("host").attr("csum", "off").attr("gso", "off").attr("tso4", "off").attr("tso6", "off")
      .attr("ecn", "off").attr("ufo", "off").close();
  w.open("guest").attr("csum", "off").attr("tso4", "off").attr("tso6", "off").attr("ecn", "off")
      .attr("ufo", "off").close();
  w.close();
  w.open("mtu").attr("size", std::to_string(nic.mtu)).close();
  w.close();
}

// The -object/-blockdev/-device arguments of the RBD disks, each on a root port of Qiao's (as
// many ports as a VM may have disks, so hot-plug finds a free one), the cephx key read by
// QEMU from a root-only file. Escaped by nlohmann and then by XmlWriter.
// On a node with Ceph, every VM has Qiao's disk ports (and the key), so that a VM made without
// disks can get one while it runs.
bool hasRbdDisks(const DomainDef& d) {
  if (!d.ceph_key_file.empty() || d.nvram_rbd) return true;
  return std::any_of(d.disks.begin(), d.disks.end(),
                     [](const DiskDef& disk) { return disk.type == "rbd"; });
}

void renderRbdDisks(XmlWriter& w, const DomainDef& d) {
  if (!hasRbdDisks(d)) return;
  auto arg = [&](const std::string& value) { w.open("qemu:arg").attr("value", value).close(); };
  w.open("qemu:commandline");
  arg("-object");
  arg(nlohmann::json{{"qom-type", "secret"},
                     {"id", kCephKeyId},
                     {"file", d.ceph_key_file},
                     {"format", "base64"}}
          .dump());
  for (size_t k = 0; k < kMaxDisks; ++k) {
    arg("-device");
    arg(nlohmann::json{{"driver", "pcie-root-port"},
                       {"id", qemuDiskPort(k)},
                       {"bus", "pcie.0"},
                       {"chassis", kDiskPortChassis + static_cast<int>(k)}}
            .dump());
  }
  if (d.nvram_rbd) {
    // The variable store as the machine's second flash (libvirt has the first: the code).
    arg("-blockdev");
    arg(rbdFileNode(*d.nvram_rbd).dump());
    arg("-blockdev");
    arg(nlohmann::json{{"driver", "raw"}, {"node-name", d.nvram_rbd->id},
                       {"file", d.nvram_rbd->id + "-file"}}
            .dump());
    arg("-machine");
    arg("pflash1=" + d.nvram_rbd->id);
  }
  size_t port = 0;
  for (size_t i = 0; i < d.disks.size(); ++i) {
    const DiskDef& disk = d.disks[i];
    if (disk.type != "rbd") continue;
    arg("-blockdev");
    arg(rbdFileNode(disk).dump());
    arg("-blockdev");
    arg(rbdFormatNode(disk).dump());
    arg("-device");
    arg(rbdDevice(disk, qemuDiskPort(port++), i == 0 && d.kernel.empty()).dump());
  }
  w.close();
}

}  // namespace

std::string renderNicXml(const NicDef& nic) {
  XmlWriter w;
  renderNic(w, nic);
  return w.finish();
}

std::string renderDomainXml(const DomainDef& d) {
  XmlWriter w;
  w.open("domain").attr("type", d.type);
  if (hasRbdDisks(d)) w.attr("xmlns:qemu", kQemuNs);
  w.leaf("name", d.name);
  if (!d.uuid.empty()) w.leaf("uuid", d.uuid);
  w.open("metadata");
  w.open("qiao:vm").attr("xmlns:qiao", kQiaoMetadataNs);
  w.leaf("qiao:cluster", d.metadata.cluster);
  w.leaf("qiao:tenant", d.metadata.tenant);
  w.leaf("qiao:name", d.metadata.name);
  w.leaf("qiao:spec", d.metadata.spec_json);
  w.close().close();
  // The guest boots with the most memory it may have; the balloon holds it at its current.
  w.open("memory").attr("unit", "KiB").text(std::to_string(d.max_memory_kib)).close();
  w.open("currentMemory").attr("unit", "KiB").text(std::to_string(d.memory_kib)).close();
  w.open("vcpu").attr("placement", "static");
  if (d.max_vcpus > d.vcpus) w.attr("current", std::to_string(d.vcpus));
  w.text(std::to_string(d.max_vcpus)).close();
  w.open("os");
  w.open("type").attr("arch", d.arch).attr("machine", d.machine).text("hvm").close();
  if (!d.loader.empty()) {
    w.open("loader").attr("readonly", "yes").attr("secure", d.secure_boot ? "yes" : "no");
    w.attr("type", "pflash");
    if (d.nvram_rbd) w.attr("stateless", "yes");  // Qiao gives QEMU the variable store itself
    w.text(d.loader).close();
    if (!d.nvram_rbd) {
      w.open("nvram");
      if (!d.nvram_template.empty()) w.attr("template", d.nvram_template);
      w.text(d.nvram_path).close();
    }
  }
  if (!d.kernel.empty()) {
    w.leaf("kernel", d.kernel);
    if (!d.initrd.empty()) w.leaf("initrd", d.initrd);
    if (!d.cmdline.empty()) w.leaf("cmdline", d.cmdline);
  } else if (d.disks.empty()) {
    w.open("boot").attr("dev", "hd").close();
  }
  w.close();
  w.open("features");
  w.open("acpi").close();
  if (d.arch == "x86_64") w.open("apic").close();
  if (d.gic_v3) w.open("gic").attr("version", "3").close();
  if (!d.loader.empty() && d.arch == "x86_64") {
    w.open("smm").attr("state", d.secure_boot ? "on" : "off").close();
  }
  w.close();
  if (!d.cpu_mode.empty()) {
    w.open("cpu").attr("mode", d.cpu_mode);
    if (!d.cpu_model.empty()) w.open("model").attr("fallback", "forbid").text(d.cpu_model).close();
    w.close();
  }
  w.open("clock").attr("offset", "utc").close();
  w.leaf("on_poweroff", "destroy");
  w.leaf("on_reboot", "restart");
  w.leaf("on_crash", "destroy");
  w.open("devices");
  if (!d.emulator.empty()) w.leaf("emulator", d.emulator);
  if (d.spare_pcie_ports > 0) {
    w.open("controller").attr("type", "pci").attr("index", "0").attr("model", "pcie-root").close();
  }
  for (int i = 0; i < d.spare_pcie_ports; ++i) {
    w.open("controller").attr("type", "pci").attr("model", "pcie-root-port").close();
  }
  bool cdrom = false;
  for (size_t i = 0; i < d.disks.size(); ++i) {
    cdrom = cdrom || d.disks[i].cdrom;
    if (d.disks[i].type == "file") {
      renderFileDisk(w, d.disks[i], i == 0 && d.kernel.empty() && !d.disks[i].cdrom);
    }
  }
  if (cdrom) w.open("controller").attr("type", "scsi").attr("model", "virtio-scsi").close();
  for (const auto& nic : d.nics) renderNic(w, nic);
  w.open("serial").attr("type", "pty");
  if (!d.console_log_path.empty()) {
    w.open("log").attr("file", d.console_log_path).attr("append", "on").close();
  }
  w.open("target").attr("port", "0").close();
  w.close();
  w.open("console").attr("type", "pty");
  w.open("target").attr("type", "serial").attr("port", "0").close();
  w.close();
  // The guest's balloon driver reports its own memory figures every 10 s (GET .../stats).
  w.open("memballoon").attr("model", "virtio");
  w.open("stats").attr("period", "10").close();
  w.close();
  w.open("rng").attr("model", "virtio");
  w.open("backend").attr("model", "random").text("/dev/urandom").close();
  w.close();
  w.close();  // devices
  renderRbdDisks(w, d);
  return w.finish();
}

Result<QiaoMetadata> parseQiaoMetadata(std::string_view metadata_element_xml) {
  auto doc = parseXml(metadata_element_xml);
  if (!doc) return std::unexpected(doc.error());
  xmlNode* root = xmlDocGetRootElement(doc->get());
  return readMetadata(root != nullptr && isQiaoElement(root, "vm", true) ? root : nullptr, true);
}

Result<QiaoMetadata> parseQiaoMetadataFromDomainXml(std::string_view domain_xml) {
  auto doc = parseXml(domain_xml);
  if (!doc) return std::unexpected(doc.error());
  return readMetadata(findQiaoVmInDomain(xmlDocGetRootElement(doc->get())), false);
}

}  // namespace qiao
