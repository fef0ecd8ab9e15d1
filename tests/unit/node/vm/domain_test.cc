#include "node/vm/domain.h"

#include <gtest/gtest.h>
#include <libxml/parser.h>

#include <cstdlib>
#include <fstream>

#include "node/vm/xml_writer.h"

namespace qiao {
namespace {

VmSpec hostileSpec() {
  VmSpec s;
  s.name = "web1";
  s.tenant = "acme";
  s.arch = "x86_64";
  s.boot = BootSpec{"/boot/vmlinuz", "/boot/initrd.img", "console=ttyS0 x='\"><evil/>&amp;"};
  s.labels = {{"note", "</qiao:spec><qiao:cluster>evil</qiao:cluster>"}, {"u", "名字 \xf0\x9f\x98\x80"}};
  return s;
}

DomainContext context(const std::string& accel = "tcg", const std::string& machine = "q35") {
  DomainContext c;
  c.cluster = "c1";
  c.accelerator = accel;
  c.uuid = "5b9f0d1e-0000-4000-8000-00000000000a";
  c.console_log_path = "/var/lib/qiao/console/x.log";
  c.machine = machine;
  return c;
}

TEST(Domain, EscapesEverythingAndRoundTripsMetadata) {
  VmSpec spec = hostileSpec();
  std::string xml = renderDomainXml(buildDomainDef(spec, context()));
  EXPECT_EQ(xml.find("<evil/>"), std::string::npos);
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "d.xml", nullptr,
                                XML_PARSE_NONET);
  ASSERT_NE(doc, nullptr) << xml;
  xmlFreeDoc(doc);
  auto md = parseQiaoMetadataFromDomainXml(xml);
  ASSERT_TRUE(md.has_value()) << md.error().message;
  EXPECT_EQ(md->cluster, "c1");
  EXPECT_EQ(md->tenant, "acme");
  EXPECT_EQ(md->name, "web1");
  EXPECT_EQ(md->spec_json, vmSpecToJson(spec));
  EXPECT_NE(xml.find("<name>acme.web1</name>"), std::string::npos);
  EXPECT_NE(xml.find("<domain type=\"qemu\">"), std::string::npos);
  EXPECT_NE(xml.find("<on_reboot>restart</on_reboot>"), std::string::npos);
  EXPECT_NE(xml.find("append=\"on\""), std::string::npos);
}

TEST(Domain, LibvirtsStrippedMetadataElementParses) {
  auto md = parseQiaoMetadata(
      "<vm>\n  <cluster>c</cluster>\n  <tenant>t</tenant>\n  <name>n</name>\n  "
      "<spec>{&quot;a&quot;:1}</spec>\n</vm>");
  ASSERT_TRUE(md.has_value()) << md.error().message;
  EXPECT_EQ(md->spec_json, "{\"a\":1}");
  EXPECT_FALSE(parseQiaoMetadata("<vm><tenant>t</tenant></vm>").has_value());
  EXPECT_FALSE(parseQiaoMetadata("<other/>").has_value());
  EXPECT_FALSE(parseQiaoMetadata("not xml").has_value());
  // Entities are not expanded: no billion laughs, no external files.
  auto bomb = parseQiaoMetadata(
      "<!DOCTYPE vm [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><vm><cluster>&x;</cluster>"
      "<tenant>t</tenant><name>n</name><spec>{}</spec></vm>");
  if (bomb) EXPECT_EQ(bomb->cluster.find("root:"), std::string::npos);
}

TEST(Domain, ArchAndAcceleratorShapeTheXml) {
  VmSpec s = hostileSpec();
  auto kvm = renderDomainXml(buildDomainDef(s, context("kvm")));
  EXPECT_NE(kvm.find("<domain type=\"kvm\">"), std::string::npos);
  EXPECT_NE(kvm.find("host-passthrough"), std::string::npos);
  s.arch = "aarch64";
  auto arm = renderDomainXml(buildDomainDef(s, context("tcg", "virt")));
  EXPECT_NE(arm.find("<gic version=\"3\"/>"), std::string::npos);
  EXPECT_NE(arm.find("cortex-a72"), std::string::npos);
  EXPECT_NE(arm.find("machine=\"virt\""), std::string::npos);
}

TEST(Domain, ValidatesAgainstLibvirtsSchema) {
  if (std::system("command -v virt-xml-validate >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "virt-xml-validate is not installed";
  }
  for (const auto& [accel, machine, arch] :
       {std::tuple{"tcg", "q35", "x86_64"}, std::tuple{"kvm", "q35", "x86_64"},
        std::tuple{"tcg", "virt", "aarch64"}}) {
    VmSpec s = hostileSpec();
    s.arch = arch;
    std::string file = "/tmp/qiao-domain-test-" + std::to_string(::getpid()) + ".xml";
    std::ofstream(file) << renderDomainXml(buildDomainDef(s, context(accel, machine)));
    std::string cmd = "virt-xml-validate " + file + " domain >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << accel << " " << arch;
    std::remove(file.c_str());
  }
}

size_t countOf(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Disks of every kind: a file with I/O limits, an RBD volume in a tenant namespace (QEMU
// arguments), a cloud-init CD-ROM; the XML is valid for libvirt, names reach QEMU only as
// escaped JSON, the key only as a file name.
TEST(Domain, DisksOfEveryKind) {
  VmSpec s = hostileSpec();
  s.boot.reset();
  DomainContext c = context();
  DiskDef rbd;
  rbd.id = qemuDiskId("0a1b2c3d-4e5f-6789-abcd-ef0123456789");
  rbd.target = "vda";
  rbd.type = "rbd";
  rbd.pool = "qiao";
  rbd.ns = "acme";
  rbd.image = "vol-web1-disk0";
  rbd.user = "qiao";
  rbd.conf = "/etc/ceph/ceph.conf";
  DiskDef file;
  file.target = "vdb";
  file.type = "file";
  file.path = "/var/lib/qiao/volumes/acme/vol-data.raw";
  file.qos.iops = 500;
  file.qos.read_bytes_per_sec = 10 << 20;
  file.qos.write_bytes_per_sec = 5 << 20;
  DiskDef seed;
  seed.target = "sda";
  seed.type = "file";
  seed.cdrom = true;
  seed.path = "/var/lib/qiao/seeds/x.iso";
  c.disks = {rbd, file, seed};
  c.ceph_key_file = "/var/lib/qiao/ceph/client.qiao.key";
  const std::string xml = renderDomainXml(buildDomainDef(s, c));
  EXPECT_NE(xml.find("xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\""), std::string::npos);
  EXPECT_NE(xml.find("&quot;namespace&quot;:&quot;acme&quot;"), std::string::npos) << xml;
  EXPECT_NE(xml.find("&quot;key-secret&quot;:&quot;qiao-ceph-key&quot;"), std::string::npos);
  EXPECT_NE(xml.find("&quot;file&quot;:&quot;/var/lib/qiao/ceph/client.qiao.key&quot;"),
            std::string::npos);
  EXPECT_NE(xml.find("&quot;bootindex&quot;:1"), std::string::npos) << "vda boots";
  // Stable ids from the volume, each disk on a root port of Qiao's, one port per possible disk.
  EXPECT_EQ(rbd.id, "qd-0a1b2c3d4e5f6789");
  EXPECT_NE(xml.find("&quot;node-name&quot;:&quot;qd-0a1b2c3d4e5f6789-file&quot;"),
            std::string::npos);
  EXPECT_NE(xml.find("&quot;bus&quot;:&quot;qiao-port0&quot;"), std::string::npos) << xml;
  EXPECT_EQ(countOf(xml, "&quot;driver&quot;:&quot;pcie-root-port&quot;"), kMaxDisks);
  EXPECT_NE(xml.find("&quot;id&quot;:&quot;qiao-port15&quot;"), std::string::npos);
  EXPECT_NE(xml.find("<total_iops_sec>500</total_iops_sec>"), std::string::npos);
  EXPECT_NE(xml.find("<read_bytes_sec>10485760</read_bytes_sec>"), std::string::npos);
  EXPECT_NE(xml.find("<write_bytes_sec>5242880</write_bytes_sec>"), std::string::npos);
  EXPECT_NE(xml.find("model=\"virtio-scsi\""), std::string::npos);
  EXPECT_NE(xml.find("device=\"cdrom\""), std::string::npos);
  EXPECT_EQ(xml.find("<boot dev="), std::string::npos) << "per-device boot only";
  if (std::system("command -v virt-xml-validate >/dev/null 2>&1") == 0) {
    std::string path = "/tmp/qiao-domain-disks-" + std::to_string(::getpid()) + ".xml";
    std::ofstream(path) << xml;
    EXPECT_EQ(std::system(("virt-xml-validate " + path + " domain >/dev/null 2>&1").c_str()), 0)
        << xml;
    std::remove(path.c_str());
  }
}

TEST(XmlWriter, ReplacesWhatXmlCannotCarry) {
  XmlWriter w;
  w.open("a").attr("x", std::string("q\"<>&'\x01\xff", 8)).text(std::string("t\0u", 3)).close();
  std::string xml = w.finish();
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "w.xml", nullptr, 0);
  ASSERT_NE(doc, nullptr) << xml;
  xmlFreeDoc(doc);
  EXPECT_NE(xml.find("&quot;&lt;&gt;&amp;&apos;"), std::string::npos) << xml;
}

}  // namespace
}  // namespace qiao
