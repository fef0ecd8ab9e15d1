#include "firmware/descriptor.h"

#include <fnmatch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::unexpected<Error> invalid(const std::string& source, const std::string& why) {
  return makeError(ErrorCode::kInvalidArgument, "firmware", source + ": " + why);
}

Result<std::vector<std::string>> stringList(const json& doc, const char* key,
                                            const std::string& source) {
  std::vector<std::string> out;
  if (!doc.contains(key)) return out;
  const json& v = doc[key];
  if (!v.is_array()) return invalid(source, std::string(key) + " must be an array");
  for (const auto& item : v) {
    if (!item.is_string()) return invalid(source, std::string(key) + " must hold strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

bool FirmwareDescriptor::hasFeature(std::string_view feature) const {
  return contains(features, feature);
}

bool FirmwareDescriptor::hasInterface(std::string_view interface) const {
  return contains(interface_types, interface);
}

bool FirmwareDescriptor::supports(std::string_view arch, std::string_view machine) const {
  for (const auto& t : targets) {
    if (t.architecture != arch) continue;
    for (const auto& glob : t.machines) {
      if (machineMatches(glob, machine)) return true;
    }
  }
  return false;
}

bool machineMatches(std::string_view glob, std::string_view machine) {
  const std::string g(glob), m(machine);
  if (fnmatch(g.c_str(), m.c_str(), 0) == 0) return true;
  // An alias without a version ("q35", "virt"; versions look like "7.2") stands for its
  // versioned names.
  if (m.find('.') != std::string::npos) return false;
  for (const std::string& versioned : {"pc-" + m + "-0.0", m + "-0.0"}) {
    if (fnmatch(g.c_str(), versioned.c_str(), 0) == 0) return true;
  }
  return false;
}

Result<FirmwareDescriptor> parseFirmwareDescriptor(std::string_view text,
                                                   const std::string& source) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return invalid(source, "not valid JSON");
  if (!doc.is_object()) return invalid(source, "not a JSON object");
  FirmwareDescriptor d;
  d.source = source;
  try {
    if (doc.contains("description") && doc["description"].is_string()) {
      d.description = doc["description"];
    }
    auto interfaces = stringList(doc, "interface-types", source);
    if (!interfaces) return std::unexpected(interfaces.error());
    d.interface_types = std::move(*interfaces);
    auto features = stringList(doc, "features", source);
    if (!features) return std::unexpected(features.error());
    d.features = std::move(*features);
    if (!doc.contains("mapping") || !doc["mapping"].is_object()) {
      return invalid(source, "mapping is missing");
    }
    const json& mapping = doc["mapping"];
    if (!mapping.contains("device") || !mapping["device"].is_string()) {
      return invalid(source, "mapping.device is missing");
    }
    d.device = mapping["device"];
    auto file = [&](const char* key, std::string* name, std::string* format) -> Status {
      if (!mapping.contains(key)) return {};
      const json& f = mapping[key];
      if (!f.is_object() || !f.contains("filename") || !f["filename"].is_string()) {
        return invalid(source, std::string("mapping.") + key + ".filename is missing");
      }
      *name = f["filename"];
      *format = f.contains("format") && f["format"].is_string() ? f["format"].get<std::string>()
                                                                : "raw";
      return {};
    };
    if (d.device == "flash") {
      if (auto ok = file("executable", &d.executable, &d.executable_format); !ok) {
        return std::unexpected(ok.error());
      }
      if (auto ok = file("nvram-template", &d.nvram_template, &d.nvram_template_format); !ok) {
        return std::unexpected(ok.error());
      }
    } else if (d.device == "memory") {
      if (!mapping.contains("filename") || !mapping["filename"].is_string()) {
        return invalid(source, "mapping.filename is missing");
      }
      d.executable = mapping["filename"];
      d.executable_format = "raw";
    }
    if (d.device != "kernel" && d.executable.empty()) {
      return invalid(source, "it names no executable");
    }
    if (!doc.contains("targets") || !doc["targets"].is_array() || doc["targets"].empty()) {
      return invalid(source, "targets is missing");
    }
    for (const auto& t : doc["targets"]) {
      if (!t.is_object() || !t.contains("architecture") || !t["architecture"].is_string()) {
        return invalid(source, "a target has no architecture");
      }
      FirmwareTarget target;
      target.architecture = t["architecture"];
      auto machines = stringList(t, "machines", source);
      if (!machines) return std::unexpected(machines.error());
      target.machines = std::move(*machines);
      d.targets.push_back(std::move(target));
    }
  } catch (const json::exception& e) {
    return invalid(source, e.what());
  }
  return d;
}

std::vector<std::string> defaultFirmwareDirs() {
  std::string user;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    user = std::string(xdg) + "/qemu/firmware";
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    user = std::string(home) + "/.config/qemu/firmware";
  }
  std::vector<std::string> dirs;
  if (!user.empty()) dirs.push_back(user);
  dirs.push_back("/etc/qemu/firmware");
  dirs.push_back("/usr/share/qemu/firmware");
  return dirs;
}

FirmwareCatalog loadFirmwareDescriptors(const std::vector<std::string>& dirs) {
  FirmwareCatalog catalog;
  std::map<std::string, fs::path> chosen;  // file name -> the file that wins
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() != ".json" || chosen.contains(name)) continue;
      chosen.emplace(name, entry.path());
    }
  }
  for (const auto& [name, path] : chosen) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().empty()) continue;  // an empty file masks the same name below it
    auto d = parseFirmwareDescriptor(text.str(), path.string());
    if (!d) {
      catalog.warnings.push_back("skipped: " + d.error().message);
      continue;
    }
    std::string missing;
    for (const auto& file : {d->executable, d->nvram_template}) {
      if (!file.empty() && !fs::exists(file)) missing = file;
    }
    if (!missing.empty()) {
      catalog.warnings.push_back("skipped: " + path.string() + ": " + missing + " does not exist");
      continue;
    }
    catalog.descriptors.push_back(std::move(*d));
  }
  return catalog;
}

Result<FirmwareDescriptor> selectFirmware(const FirmwareCatalog& catalog,
                                          const FirmwareRequest& request) {
  for (const auto& d : catalog.descriptors) {
    if (!d.hasInterface(request.interface) || !d.supports(request.arch, request.machine)) {
      continue;
    }
    bool fits = std::all_of(request.require.begin(), request.require.end(),
                            [&](const std::string& f) { return d.hasFeature(f); }) &&
                std::none_of(request.forbid.begin(), request.forbid.end(),
                             [&](const std::string& f) { return d.hasFeature(f); });
    if (fits) return d;
  }
  std::string want = request.interface + " firmware for " + request.arch + " machine " +
                     request.machine;
  for (const auto& f : request.require) want += ", with " + f;
  for (const auto& f : request.forbid) want += ", without " + f;
  return makeError(ErrorCode::kNotFound, "firmware",
                   "this host has no " + want + " (" + std::to_string(catalog.descriptors.size()) +
                       " firmware descriptors read; see GET /v1/host)");
}

}  // namespace qiao
