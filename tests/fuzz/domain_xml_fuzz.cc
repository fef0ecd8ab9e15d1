// libFuzzer target: the domain XML writer. A spec is made from the fuzzer's bytes (names are
// valid labels, but labels, the command line and paths carry any bytes the parser lets
// through (specs it refuses are skipped), and the context carries arbitrary text), rendered,
// and parsed back with libxml2:
// the output must always be well-formed, name the domain <tenant>.<name>, and give back
// exactly the metadata that went in.
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "node/vm/domain.h"

namespace {

// Takes a length-prefixed chunk of the input.
std::string take(const uint8_t*& data, size_t& size) {
  if (size == 0) return {};
  size_t n = std::min<size_t>(data[0], size - 1);
  std::string out(reinterpret_cast<const char*>(data + 1), n);
  data += n + 1;
  size -= n + 1;
  return out;
}

std::string label(const std::string& raw, const char* fallback) {
  std::string out;
  for (char c : raw) {
    char l = static_cast<char>('a' + (static_cast<unsigned char>(c) % 26));
    if (out.size() < 63) out += l;
  }
  return out.empty() ? fallback : out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xmlInitParser();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qiao::VmSpec spec;
  spec.name = label(take(data, size), "vm");
  spec.tenant = label(take(data, size), "tenant");
  spec.arch = size > 0 && (data[0] & 1) ? "aarch64" : "x86_64";
  qiao::BootSpec boot;
  boot.kernel = "/" + take(data, size);
  boot.initrd = take(data, size);
  boot.cmdline = take(data, size);
  spec.boot = boot;
  while (size > 0 && spec.labels.size() < 8) {
    std::string k = take(data, size);
    spec.labels[k] = take(data, size);
  }
  qiao::DomainContext ctx;
  ctx.cluster = label(take(data, size), "cluster");
  ctx.accelerator = "tcg";
  ctx.uuid = "00000000-0000-4000-8000-000000000000";
  ctx.console_log_path = "/var/lib/qiao/console/" + take(data, size);
  ctx.machine = spec.arch == "aarch64" ? "virt" : "q35";

  // Only what the spec's parser lets through reaches the writer.
  qiao::SpecLimits limits;
  limits.check_boot_files = false;
  if (!qiao::validateVmSpec(spec, limits)) return 0;
  std::string xml = qiao::renderDomainXml(qiao::buildDomainDef(spec, ctx));
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "fuzz.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == nullptr) std::abort();  // the writer produced XML that does not parse
  xmlNodePtr root = xmlDocGetRootElement(doc);
  std::string name;
  for (xmlNodePtr n = root ? root->children : nullptr; n; n = n->next) {
    if (n->type == XML_ELEMENT_NODE && std::strcmp(reinterpret_cast<const char*>(n->name), "name") == 0) {
      xmlChar* t = xmlNodeGetContent(n);
      name = reinterpret_cast<const char*>(t);
      xmlFree(t);
    }
  }
  xmlFreeDoc(doc);
  if (name != spec.tenant + "." + spec.name) std::abort();
  auto md = qiao::parseQiaoMetadataFromDomainXml(xml);
  if (!md || md->cluster != ctx.cluster || md->tenant != spec.tenant || md->name != spec.name ||
      md->spec_json != qiao::vmSpecToJson(spec)) {
    std::abort();
  }
  return 0;
}
