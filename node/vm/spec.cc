#include "node/vm/spec.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "base/crypto.h"
#include "base/json_input.h"
#include "base/names.h"
#include "images/cloud_init.h"
#include "network/ipam.h"

namespace qiao {
namespace {

using nlohmann::json;

std::unexpected<Error> invalid(const std::string& message) {
  return makeError(ErrorCode::kInvalidArgument, "spec", message);
}

bool isPrintableAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Valid UTF-8 without control characters.
// UTF-8 without control characters, and only characters XML can carry (the spec goes into the
// domain's metadata and must come back the same): no overlong forms, surrogates, code points
// above U+10FFFF, or U+FFFE/U+FFFF.
bool isPrintableUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF) return false;           // overlong, too large
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;              // surrogates
    if (cp == 0xFFFE || cp == 0xFFFF) return false;              // not characters in XML
    i += len;
  }
  return true;
}

bool isLabelKey(std::string_view k) {
  if (k.empty() || k.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(k.front())) return false;
  for (char c : k) {
    if (!alnum(c) && c != '.' && c != '_' && c != '/' && c != '-') return false;
  }
  return true;
}

Status checkHostFile(const std::string& what, const std::string& path, bool check_files) {
  if (path.empty() || path.front() != '/') {
    return invalid("boot." + what + " " + quoteForMessage(path) + " must be an absolute path");
  }
  if (path.size() > PATH_MAX || !isPrintableAscii(path)) {
    return invalid("boot." + what + " " + quoteForMessage(path) +
                   " must be printable ASCII and at most " + std::to_string(PATH_MAX) + " bytes");
  }
  if (!check_files) return {};
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return invalid("boot." + what + " " + quoteForMessage(path) + " does not exist on this host");
  }
  if (path != resolved) {
    return invalid("boot." + what + " " + quoteForMessage(path) +
                   " is not canonical (it resolves to " + quoteForMessage(resolved) +
                   "); name the file itself");
  }
  struct stat st {};
  if (stat(resolved, &st) != 0 || !S_ISREG(st.st_mode)) {
    return invalid("boot." + what + " " + quoteForMessage(path) + " is not a regular file");
  }
  return {};
}

const std::set<std::string> kTopFields = {"max_vcpus", "max_memory_mib",
                                          "name",     "tenant", "arch",  "vcpus", "memory_mib",
                                          "firmware", "accel",  "boot",  "disks", "nics", "cloud_init",
                                          "labels"};
const std::set<std::string> kBootFields = {"kernel", "initrd", "cmdline"};
const std::set<std::string> kDiskFields = {"volume", "image", "size_gib", "keep"};
const std::set<std::string> kNicFields = {"network", "ip", "mac", "security_groups"};
const std::set<std::string> kCloudInitFields = {"user_data", "meta_data", "network_config"};

}  // namespace

// One disk of a spec (the "disks" array's element, or a hot-plug's body): `where` names it
// in messages.
namespace {
Result<DiskSpec> parseDisk(const json& d, const std::string& where, const SpecLimits& limits) {
  if (!d.is_object()) {
    return invalid("field \"" + where + "\" must be an object, got " + describeJsonType(d));
  }
  if (auto known = checkKnownFields(d, kDiskFields, where); !known) {
    return std::unexpected(known.error());
  }
  DiskSpec disk;
  // An image disk may name the volume made for it (hot-plug does, and keeps that name
  // when disks before it go); without an image, the volume must exist.
  if (!d.contains("volume") && !d.contains("image")) {
    return invalid(where + " must name a volume or an image");
  }
  for (auto [field, target] : {std::pair{"volume", &disk.volume},
                               std::pair{"image", &disk.image}}) {
    if (!d.contains(field)) continue;
    auto name = jsonString(d, field, where + ".");
    if (!name) return std::unexpected(name.error());
    if (auto ok = checkDnsLabel(where + "." + field, *name); !ok) {
      return std::unexpected(ok.error());
    }
    *target = *name;
  }
  if (d.contains("size_gib")) {
    if (disk.image.empty()) return invalid(where + ": size_gib is for image disks");
    auto size = jsonInt(d, "size_gib", 1, limits.max_disk_gib);
    if (!size) return std::unexpected(size.error());
    disk.size_gib = *size;
  }
  if (d.contains("keep")) {
    if (!d["keep"].is_boolean()) {
      return invalid("field \"" + where + ".keep\" must be a boolean, got " +
                     describeJsonType(d["keep"]));
    }
    if (disk.image.empty()) return invalid(where + ": keep is for image disks");
    disk.keep = d["keep"].get<bool>();
  }
  return disk;
}
// One NIC of a spec (the "nics" array's element, or a hot-plug's body).
Result<NicSpec> parseNic(const json& n, const std::string& where) {
  if (!n.is_object()) {
    return invalid("field \"" + where + "\" must be an object, got " + describeJsonType(n));
  }
  if (auto known = checkKnownFields(n, kNicFields, where); !known) {
    return std::unexpected(known.error());
  }
  if (!n.contains("network")) return invalid("field \"" + where + ".network\" is required");
  NicSpec nic;
  auto network = jsonString(n, "network", where + ".");
  if (!network) return std::unexpected(network.error());
  if (auto ok = checkDnsLabel(where + ".network", *network); !ok) {
    return std::unexpected(ok.error());
  }
  nic.network = *network;
  if (n.contains("ip")) {
    auto text = jsonString(n, "ip", where + ".");
    if (!text) return std::unexpected(text.error());
    auto ip = parseIpv4(*text, where + ".ip");
    if (!ip) return std::unexpected(ip.error());
    nic.ip = formatIpv4(*ip);
  }
  if (n.contains("mac")) {
    auto text = jsonString(n, "mac", where + ".");
    if (!text) return std::unexpected(text.error());
    auto mac = parseMac(*text, where + ".mac");
    if (!mac) return std::unexpected(mac.error());
    nic.mac = *mac;
  }
  if (n.contains("security_groups")) {
    const json& g = n["security_groups"];
    if (!g.is_array() || g.empty() || g.size() > kMaxNicGroups) {
      return invalid("field \"" + where + ".security_groups\" must be an array of 1 to " +
                     std::to_string(kMaxNicGroups) + " names");
    }
    for (const auto& name : g) {
      if (!name.is_string()) {
        return invalid("field \"" + where + ".security_groups\" holds " +
                       describeJsonType(name));
      }
      if (auto ok = checkDnsLabel(where + ".security_groups", name.get<std::string>());
          !ok) {
        return std::unexpected(ok.error());
      }
      nic.security_groups.push_back(name.get<std::string>());
    }
  }
  return nic;
}
}  // namespace

Result<DiskSpec> parseDiskSpec(std::string_view json_text, const SpecLimits& limits) {
  auto parsed = parseJsonObject(json_text, kMaxSpecDepth, "disk");
  if (!parsed) return std::unexpected(parsed.error());
  return parseDisk(*parsed, "disk", limits);
}

Result<VmResize> parseVmResize(std::string_view json_text, const SpecLimits& limits) {
  auto parsed = parseJsonObject(json_text, kMaxSpecDepth, "resize");
  if (!parsed) return std::unexpected(parsed.error());
  if (auto known = checkKnownFields(*parsed, {"vcpus", "memory_mib"}, "resize"); !known) {
    return std::unexpected(known.error());
  }
  VmResize out;
  if (parsed->contains("vcpus")) {
    auto v = jsonInt(*parsed, "vcpus", 1, limits.max_vcpus);
    if (!v) return std::unexpected(v.error());
    out.vcpus = static_cast<int>(*v);
  }
  if (parsed->contains("memory_mib")) {
    auto v = jsonInt(*parsed, "memory_mib", 64, limits.max_memory_mib);
    if (!v) return std::unexpected(v.error());
    out.memory_mib = *v;
  }
  if (out.vcpus == 0 && out.memory_mib == 0) return invalid("give vcpus, memory_mib or both");
  return out;
}

Result<NicSpec> parseNicSpec(std::string_view json_text) {
  auto parsed = parseJsonObject(json_text, kMaxSpecDepth, "nic");
  if (!parsed) return std::unexpected(parsed.error());
  return parseNic(*parsed, "nic");
}

Status validateVmSpec(const VmSpec& s, const SpecLimits& limits) {
  if (auto ok = checkDnsLabel("vm name", s.name); !ok) return ok;
  if (!s.tenant.empty()) {
    if (auto ok = checkDnsLabel("tenant", s.tenant); !ok) return ok;
  }
  if (s.arch != "x86_64" && s.arch != "aarch64") {
    return invalid("arch must be x86_64 or aarch64, got " + quoteForMessage(s.arch));
  }
  if (s.firmware != "bios" && s.firmware != "uefi" && s.firmware != "uefi-secure") {
    return invalid("firmware must be bios, uefi or uefi-secure, got " +
                   quoteForMessage(s.firmware));
  }
  if (s.arch == "aarch64" && s.firmware != "uefi") {
    return invalid("aarch64 guests boot with firmware uefi (AAVMF); " + s.firmware +
                   " is for x86_64 guests");
  }
  if (s.firmware == "uefi-secure" && s.boot) {
    return invalid("firmware uefi-secure cannot boot a kernel from host paths: secure boot "
                   "starts only signed boot loaders and refuses a directly loaded kernel; use "
                   "firmware uefi, or boot a signed loader from a disk");
  }
  if (s.accel != "auto" && s.accel != "kvm" && s.accel != "tcg") {
    return invalid("accel must be auto, kvm or tcg, got " + quoteForMessage(s.accel));
  }
  if (s.accel == "kvm" && s.arch != limits.host_arch) {
    return invalid("accel kvm needs a guest of the host's arch (" + limits.host_arch + ")");
  }
  if (s.vcpus < 1 || s.vcpus > limits.max_vcpus) {
    return invalid("field \"vcpus\" must be an integer from 1 to " +
                   std::to_string(limits.max_vcpus));
  }
  if (s.memory_mib < 64 || s.memory_mib > limits.max_memory_mib) {
    return invalid("field \"memory_mib\" must be an integer from 64 to " +
                   std::to_string(limits.max_memory_mib));
  }
  if (s.max_vcpus != 0 && (s.max_vcpus < s.vcpus || s.max_vcpus > limits.max_vcpus)) {
    return invalid("field \"max_vcpus\" must be from vcpus (" + std::to_string(s.vcpus) +
                   ") to " + std::to_string(limits.max_vcpus));
  }
  if (s.max_memory_mib != 0 &&
      (s.max_memory_mib < s.memory_mib || s.max_memory_mib > limits.max_memory_mib)) {
    return invalid("field \"max_memory_mib\" must be from memory_mib (" +
                   std::to_string(s.memory_mib) + ") to " +
                   std::to_string(limits.max_memory_mib));
  }
  if (s.max_vcpus > s.vcpus && s.arch == "aarch64") {
    return invalid("max_vcpus above vcpus: QEMU cannot add vCPUs to a running aarch64 guest");
  }
  // A VM this host could never run is refused now, with the figures that say so.
  if (limits.host_cores > 0) {
    const int64_t most = int64_t{limits.host_cores} * limits.cpu_overcommit_percent / 100;
    const int asked = std::max(s.vcpus, s.max_vcpus);
    if (asked > most) {
      return invalid("this host has " + std::to_string(limits.host_cores) +
                     " cores: with vm.cpu_overcommit_percent " +
                     std::to_string(limits.cpu_overcommit_percent) + " a vm may have at most " +
                     std::to_string(most) + " vCPUs, and this one asks for " +
                     std::to_string(asked) + " (vcpus, max_vcpus)");
    }
  }
  if (limits.host_memory_mib > 0) {
    const int64_t most = limits.host_memory_mib * limits.memory_overcommit_percent / 100;
    const int64_t asked = std::max(s.memory_mib, s.max_memory_mib);
    if (asked > most) {
      return invalid("this host has " + std::to_string(limits.host_memory_mib) +
                     " MiB of memory: with vm.memory_overcommit_percent " +
                     std::to_string(limits.memory_overcommit_percent) +
                     " a vm may have at most " + std::to_string(most) +
                     " MiB, and this one asks for " + std::to_string(asked) +
                     " (memory_mib, max_memory_mib)");
    }
  }
  if (s.boot) {
    if (auto ok = checkHostFile("kernel", s.boot->kernel, limits.check_boot_files); !ok) return ok;
    if (!s.boot->initrd.empty()) {
      if (auto ok = checkHostFile("initrd", s.boot->initrd, limits.check_boot_files); !ok) {
        return ok;
      }
    }
    if (s.boot->cmdline.size() > 4096 || !isPrintableAscii(s.boot->cmdline)) {
      return invalid("boot.cmdline must be printable ASCII of at most 4096 bytes");
    }
  }
  std::set<std::string> volumes;
  for (size_t i = 0; i < s.disks.size(); ++i) {
    if (!volumes.insert(diskVolumeName(s, i)).second) {
      return invalid("disks[" + std::to_string(i) + "]: volume " + diskVolumeName(s, i) +
                     " is already another disk of this vm");
    }
  }
  if (s.labels.size() > 64) return invalid("labels: at most 64 labels");
  for (const auto& [k, v] : s.labels) {
    if (!isLabelKey(k)) {
      return invalid("label key " + quoteForMessage(k) +
                     " is not valid: 1-63 characters of a-z, 0-9, '.', '_', '/', '-', starting "
                     "with a letter or digit");
    }
    if (v.size() > 255 || !isPrintableUtf8(v)) {
      return invalid("labels." + k + " must be printable UTF-8 of at most 255 bytes");
    }
  }
  return {};
}

Result<VmSpec> parseVmSpec(std::string_view text, const SpecLimits& limits) {
  auto parsed = parseJsonObject(text, kMaxSpecDepth, "spec");
  if (!parsed) return std::unexpected(parsed.error());
  const json& doc = *parsed;
  for (const auto& [key, value] : doc.items()) {
    if (!kTopFields.contains(key)) {
      return invalid("unknown field " + quoteForMessage(key) + " in spec");
    }
  }
  VmSpec spec;
  try {
    if (!doc.contains("name")) return invalid("field \"name\" is required");
    auto name = jsonString(doc, "name", "");
    if (!name) return std::unexpected(name.error());
    spec.name = *name;
    if (auto ok = checkDnsLabel("vm name", spec.name); !ok) return std::unexpected(ok.error());
    if (doc.contains("tenant")) {
      auto tenant = jsonString(doc, "tenant", "");
      if (!tenant) return std::unexpected(tenant.error());
      if (auto ok = checkDnsLabel("tenant", *tenant); !ok) return std::unexpected(ok.error());
      spec.tenant = *tenant;
    }
    spec.arch = limits.host_arch;
    for (auto [field, target] : {std::pair{"arch", &spec.arch}, std::pair{"firmware", &spec.firmware},
                                 std::pair{"accel", &spec.accel}}) {
      if (!doc.contains(field)) continue;
      auto v = jsonString(doc, field, "");
      if (!v) return std::unexpected(v.error());
      *target = *v;
    }
    if (doc.contains("vcpus")) {
      auto v = jsonInt(doc, "vcpus", 1, limits.max_vcpus);
      if (!v) return std::unexpected(v.error());
      spec.vcpus = static_cast<int>(*v);
    }
    if (doc.contains("memory_mib")) {
      auto v = jsonInt(doc, "memory_mib", 64, limits.max_memory_mib);
      if (!v) return std::unexpected(v.error());
      spec.memory_mib = *v;
    }
    spec.max_vcpus = spec.vcpus;
    if (doc.contains("max_vcpus")) {
      auto v = jsonInt(doc, "max_vcpus", 1, limits.max_vcpus);
      if (!v) return std::unexpected(v.error());
      spec.max_vcpus = static_cast<int>(*v);
    }
    spec.max_memory_mib = spec.memory_mib;
    if (doc.contains("max_memory_mib")) {
      auto v = jsonInt(doc, "max_memory_mib", 64, limits.max_memory_mib);
      if (!v) return std::unexpected(v.error());
      spec.max_memory_mib = *v;
    }
    if (doc.contains("boot")) {
      const json& b = doc["boot"];
      if (!b.is_object()) return invalid("field \"boot\" must be an object, got " + describeJsonType(b));
      for (const auto& [key, value] : b.items()) {
        if (!kBootFields.contains(key)) {
          return invalid("unknown field " + quoteForMessage(key) + " in boot");
        }
      }
      if (!b.contains("kernel")) return invalid("field \"boot.kernel\" is required");
      BootSpec boot;
      for (auto [field, target] : {std::pair{"kernel", &boot.kernel},
                                   std::pair{"initrd", &boot.initrd},
                                   std::pair{"cmdline", &boot.cmdline}}) {
        if (!b.contains(field)) continue;
        auto v = jsonString(b, field, "boot.");
        if (!v) return std::unexpected(v.error());
        *target = *v;
      }
      spec.boot = boot;
    }
    if (doc.contains("nics")) {
      const json& v = doc["nics"];
      if (!v.is_array()) {
        return invalid("field \"nics\" must be an array, got " + describeJsonType(v));
      }
      if (v.size() > kMaxNics) {
        return invalid("a vm has at most " + std::to_string(kMaxNics) + " nics");
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string where = "nics[" + std::to_string(i) + "]";
        auto nic = parseNic(v[i], where);
        if (!nic) return std::unexpected(nic.error());
        spec.nics.push_back(std::move(*nic));
      }
    }
    if (doc.contains("disks")) {
      const json& v = doc["disks"];
      if (!v.is_array()) {
        return invalid("field \"disks\" must be an array, got " + describeJsonType(v));
      }
      if (v.size() > kMaxDisks) {
        return invalid("a vm has at most " + std::to_string(kMaxDisks) + " disks");
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string where = "disks[" + std::to_string(i) + "]";
        auto disk = parseDisk(v[i], where, limits);
        if (!disk) return std::unexpected(disk.error());
        spec.disks.push_back(std::move(*disk));
      }
    }
    if (doc.contains("cloud_init")) {
      const json& c = doc["cloud_init"];
      if (!c.is_object()) {
        return invalid("field \"cloud_init\" must be an object, got " + describeJsonType(c));
      }
      if (auto known = checkKnownFields(c, kCloudInitFields, "cloud_init"); !known) {
        return std::unexpected(known.error());
      }
      if (!c.contains("user_data")) return invalid("field \"cloud_init.user_data\" is required");
      CloudInitSpec seed;
      for (auto [field, target] : {std::pair{"user_data", &seed.user_data},
                                   std::pair{"meta_data", &seed.meta_data},
                                   std::pair{"network_config", &seed.network_config}}) {
        if (!c.contains(field)) continue;
        auto v = jsonString(c, field, "cloud_init.");
        if (!v) return std::unexpected(v.error());
        *target = *v;
      }
      if (auto ok = validateSeedParts(seed.user_data, seed.meta_data, seed.network_config,
                                      "cloud_init.");
          !ok) {
        return std::unexpected(ok.error());
      }
      spec.cloud_init = std::move(seed);
    }
    if (doc.contains("labels")) {
      const json& l = doc["labels"];
      if (!l.is_object()) {
        return invalid("field \"labels\" must be an object, got " + describeJsonType(l));
      }
      for (const auto& [key, value] : l.items()) {
        if (!value.is_string()) {
          return invalid("labels." + quoteForMessage(key) + " must be a string, got " +
                         describeJsonType(value));
        }
        spec.labels[key] = value.get<std::string>();
      }
    }
  } catch (const json::exception& e) {
    return invalid(std::string("spec could not be read: ") + e.what());
  }
  if (auto ok = validateVmSpec(spec, limits); !ok) return std::unexpected(ok.error());
  return spec;
}

json vmSpecToJsonValue(const VmSpec& s) {
  json out = {{"name", s.name},
              {"tenant", s.tenant},
              {"arch", s.arch},
              {"vcpus", s.vcpus},
              {"memory_mib", s.memory_mib},
              {"max_vcpus", std::max(s.max_vcpus, s.vcpus)},
              {"max_memory_mib", std::max(s.max_memory_mib, s.memory_mib)},
              {"firmware", s.firmware},
              {"accel", s.accel},
              {"disks", json::array()},
              {"nics", json::array()},
              {"labels", json::object()}};
  if (s.tenant.empty()) out.erase("tenant");
  if (s.boot) {
    json boot = {{"kernel", s.boot->kernel}};
    if (!s.boot->initrd.empty()) boot["initrd"] = s.boot->initrd;
    if (!s.boot->cmdline.empty()) boot["cmdline"] = s.boot->cmdline;
    out["boot"] = boot;
  }
  for (const auto& [k, v] : s.labels) out["labels"][k] = v;
  if (s.cloud_init) {
    json seed = {{"user_data", s.cloud_init->user_data}};
    if (!s.cloud_init->meta_data.empty()) seed["meta_data"] = s.cloud_init->meta_data;
    if (!s.cloud_init->network_config.empty()) {
      seed["network_config"] = s.cloud_init->network_config;
    }
    out["cloud_init"] = std::move(seed);
  }
  for (const auto& d : s.disks) {
    json disk = json::object();
    if (!d.volume.empty()) disk["volume"] = d.volume;
    if (!d.image.empty()) {
      disk["image"] = d.image;
      if (d.size_gib > 0) disk["size_gib"] = d.size_gib;
      if (d.keep) disk["keep"] = true;
    }
    out["disks"].push_back(std::move(disk));
  }
  for (const auto& n : s.nics) {
    json nic = {{"network", n.network}};
    if (!n.ip.empty()) nic["ip"] = n.ip;
    if (!n.mac.empty()) nic["mac"] = n.mac;
    if (!n.security_groups.empty()) nic["security_groups"] = n.security_groups;
    out["nics"].push_back(std::move(nic));
  }
  return out;
}

std::string diskVolumeName(const VmSpec& spec, size_t index) {
  const DiskSpec& disk = spec.disks.at(index);
  if (!disk.volume.empty()) return disk.volume;
  return imageDiskVolumeName(spec.name, index);
}

std::string imageDiskVolumeName(const std::string& vm_name, size_t index) {
  const std::string suffix = "-disk" + std::to_string(index);
  if (vm_name.size() + suffix.size() <= 63) return vm_name + suffix;
  // Long VM names: a prefix, and a digest of the whole name so two VMs never share a name.
  return vm_name.substr(0, 63 - suffix.size() - 9) + "-" + sha256Hex(vm_name).substr(0, 8) +
         suffix;
}

std::string vmSpecToJson(const VmSpec& s) {
  return vmSpecToJsonValue(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace qiao
