// Firmware descriptors: Debian's real ones (ovmf, qemu-efi-aarch64), and hostile ones in
// temporary directories: bad JSON, missing files, wrong arch, precedence between directories.
#include "firmware/descriptor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace qiao {
namespace {

namespace fs = std::filesystem;

bool haveDebianDescriptors() {
  return fs::exists("/usr/share/qemu/firmware/60-edk2-x86_64.json") &&
         fs::exists("/usr/share/qemu/firmware/60-edk2-aarch64.json");
}

TEST(Firmware, DebiansDescriptorsGiveTheRightBuilds) {
  if (!haveDebianDescriptors()) GTEST_SKIP() << "ovmf / qemu-efi-aarch64 not installed";
  auto catalog = loadFirmwareDescriptors({"/usr/share/qemu/firmware"});
  ASSERT_GE(catalog.descriptors.size(), 4u);
  // Plain UEFI for x86_64: no secure boot, no SMM.
  auto plain = selectFirmware(catalog, {"x86_64", "q35", "uefi", {}, {"secure-boot", "requires-smm"}});
  ASSERT_TRUE(plain.has_value()) << plain.error().message;
  EXPECT_EQ(plain->executable, "/usr/share/OVMF/OVMF_CODE_4M.fd");
  EXPECT_FALSE(plain->nvram_template.empty());
  // Secure boot with Microsoft's keys enrolled needs SMM.
  auto secure = selectFirmware(
      catalog, {"x86_64", "pc-q35-7.2", "uefi", {"secure-boot", "enrolled-keys", "requires-smm"}, {}});
  ASSERT_TRUE(secure.has_value()) << secure.error().message;
  EXPECT_TRUE(secure->hasFeature("requires-smm"));
  // aarch64: the plain AAVMF, never the secure, enrolled one (it refuses a direct kernel).
  auto arm = selectFirmware(catalog, {"aarch64", "virt", "uefi", {}, {"secure-boot", "enrolled-keys"}});
  ASSERT_TRUE(arm.has_value()) << arm.error().message;
  EXPECT_NE(arm->executable.find("AAVMF"), std::string::npos);
  EXPECT_FALSE(arm->hasFeature("secure-boot"));
  // Nothing for an architecture nobody ships: a clear not-found.
  auto none = selectFirmware(catalog, {"riscv64", "virt", "uefi", {}, {}});
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_NE(none.error().message.find("riscv64"), std::string::npos);
}

TEST(Firmware, MachineGlobsAndAliases) {
  EXPECT_TRUE(machineMatches("pc-q35-*", "pc-q35-7.2"));
  EXPECT_TRUE(machineMatches("pc-q35-*", "q35"));
  EXPECT_FALSE(machineMatches("pc-i440fx-*", "q35"));
  EXPECT_TRUE(machineMatches("virt-*", "virt"));
  EXPECT_FALSE(machineMatches("pc-q35-*", "pc-i440fx-7.2"));
}

class FirmwareDirs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("qiao-fw-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "etc");
    fs::create_directories(root_ / "usr");
    std::ofstream(root_ / "code.fd") << "code";
    std::ofstream(root_ / "vars.fd") << "vars";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string descriptor(const std::string& arch, const std::string& code,
                         const std::string& features = "") {
    return R"({"interface-types":["uefi"],"mapping":{"device":"flash","executable":{"filename":")" +
           code + R"("},"nvram-template":{"filename":")" + (root_ / "vars.fd").string() +
           R"("}},"targets":[{"architecture":")" + arch +
           R"(","machines":["pc-q35-*"]}],"features":[)" + features + R"(],"tags":[]})";
  }
  void write(const std::string& dir, const std::string& name, const std::string& text) {
    std::ofstream(root_ / dir / name) << text;
  }
  FirmwareCatalog load() {
    return loadFirmwareDescriptors({(root_ / "etc").string(), (root_ / "usr").string()});
  }
  fs::path root_;
};

TEST_F(FirmwareDirs, HostileDescriptorsAreSkippedWithAWarning) {
  const std::string code = (root_ / "code.fd").string();
  write("usr", "10-bad.json", "{ this is not json");
  write("usr", "20-missing.json", descriptor("x86_64", "/nonexistent/CODE.fd"));
  write("usr", "30-types.json", R"({"interface-types":"uefi","mapping":{"device":"flash"}})");
  write("usr", "40-notargets.json",
        R"({"interface-types":["uefi"],"mapping":{"device":"flash","executable":{"filename":")" +
            code + R"("}}})");
  write("usr", "50-good.json", descriptor("x86_64", code));
  write("usr", "README", "not a descriptor");
  auto catalog = load();
  ASSERT_EQ(catalog.descriptors.size(), 1u);
  EXPECT_NE(catalog.descriptors[0].source.find("50-good.json"), std::string::npos);
  EXPECT_EQ(catalog.warnings.size(), 4u);
  bool named_missing = false;
  for (const auto& w : catalog.warnings) named_missing |= w.find("/nonexistent/CODE.fd") != std::string::npos;
  EXPECT_TRUE(named_missing);
  // Wrong arch: not chosen.
  EXPECT_FALSE(selectFirmware(catalog, {"aarch64", "virt", "uefi", {}, {}}).has_value());
}

TEST_F(FirmwareDirs, HigherDirectoryWinsByFileNameAndEmptyFileMasks) {
  const std::string code = (root_ / "code.fd").string();
  write("usr", "50-x.json", descriptor("x86_64", code, R"("secure-boot")"));
  write("etc", "50-x.json", descriptor("x86_64", code));  // same name: /etc wins
  write("usr", "60-y.json", descriptor("x86_64", code, R"("acpi-s3")"));
  write("etc", "60-y.json", "");  // masks /usr's 60-y
  write("usr", "40-z.json", descriptor("x86_64", code, R"("amd-sev")"));
  auto catalog = load();
  ASSERT_EQ(catalog.descriptors.size(), 2u);
  // Ordered by file name across directories.
  EXPECT_NE(catalog.descriptors[0].source.find("40-z.json"), std::string::npos);
  EXPECT_NE(catalog.descriptors[1].source.find("etc/50-x.json"), std::string::npos);
  EXPECT_FALSE(catalog.descriptors[1].hasFeature("secure-boot"));
  auto chosen = selectFirmware(catalog, {"x86_64", "q35", "uefi", {}, {"amd-sev"}});
  ASSERT_TRUE(chosen.has_value());
  EXPECT_NE(chosen->source.find("etc/50-x.json"), std::string::npos);
}

}  // namespace
}  // namespace qiao
