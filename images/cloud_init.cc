#include "images/cloud_init.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/process.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

// Valid UTF-8 whose only control characters are tab, newline and carriage return.
bool isText(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (c == 0x7f) return false;
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    if (len == 2 && c < 0xC2) return false;
    i += len;
  }
  return true;
}

Status writeFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out.flush()) return makeError(ErrorCode::kInternal, "cloud-init", "cannot write " + path);
  return {};
}

}  // namespace

Status validateSeedParts(const std::string& user_data, const std::string& meta_data,
                         const std::string& network_config, const std::string& where) {
  for (auto [name, part] : {std::pair{"user_data", &user_data}, std::pair{"meta_data", &meta_data},
                            std::pair{"network_config", &network_config}}) {
    if (part->size() > kMaxSeedPart) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       where + name + " is larger than " + std::to_string(kMaxSeedPart) +
                           " bytes");
    }
    if (!isText(*part)) {
      return makeError(ErrorCode::kInvalidArgument, "spec",
                       where + name + " must be UTF-8 text (tabs and newlines allowed)");
    }
  }
  // Qiao names the instance: the caller's meta-data may not.
  size_t pos = 0;
  while (pos <= meta_data.size()) {
    size_t end = meta_data.find('\n', pos);
    std::string line = meta_data.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    for (const char* key : {"instance-id", "local-hostname"}) {
      if (line.starts_with(std::string(key) + ":")) {
        return makeError(ErrorCode::kInvalidArgument, "spec",
                         where + "meta_data may not set " + key + " (Qiao sets it from the VM)");
      }
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return {};
}

Status buildSeedIso(const SeedContent& content, const std::string& path) {
  std::string tmpl = fs::path(path).parent_path().string() + "/.seed-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return makeError(ErrorCode::kInternal, "cloud-init", "cannot make a temporary folder");
  }
  const std::string dir = tmpl;
  auto cleanup = [&] {
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  std::string meta = "instance-id: " + content.instance_id + "\nlocal-hostname: " +
                     content.hostname + "\n" + content.meta_data;
  if (!meta.ends_with('\n')) meta += "\n";
  std::vector<std::string> files = {"user-data", "meta-data"};
  Status written = writeFile(dir + "/user-data", content.user_data);
  if (written) written = writeFile(dir + "/meta-data", meta);
  if (written && !content.network_config.empty()) {
    written = writeFile(dir + "/network-config", content.network_config);
    files.push_back("network-config");
  }
  if (!written) {
    cleanup();
    return written;
  }
  const std::string tmp_iso = path + ".tmp";
  ProcessOptions options;
  options.argv = {"xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet", "-rock",
                  "-output", tmp_iso};
  for (const auto& f : files) options.argv.push_back(dir + "/" + f);
  options.timeout_ms = 30000;
  auto result = runProcess(options);
  cleanup();
  if (!result) return std::unexpected(result.error());
  if (result->exit_code != 0) {
    ::unlink(tmp_iso.c_str());
    return makeError(ErrorCode::kInternal, "cloud-init",
                     "xorriso could not build the seed: " + result->err.substr(0, 400));
  }
  if (::rename(tmp_iso.c_str(), path.c_str()) != 0) {
    ::unlink(tmp_iso.c_str());
    return makeError(ErrorCode::kInternal, "cloud-init", "cannot write " + path);
  }
  return {};
}

}  // namespace qiao
