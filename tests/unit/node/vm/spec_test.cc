#include "base/names.h"
#include "node/vm/spec.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace qiao {
namespace {

namespace fs = std::filesystem;

SpecLimits limits() {
  SpecLimits l;
  l.check_boot_files = false;
  return l;
}

void expectRefused(const std::string& text, const std::string& needle,
                   const SpecLimits& l = limits()) {
  auto s = parseVmSpec(text, l);
  ASSERT_FALSE(s.has_value()) << text;
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find(needle), std::string::npos)
      << "message: " << s.error().message << "\nwanted: " << needle;
}

TEST(Spec, ParsesAndFillsDefaults) {
  auto s = parseVmSpec(R"({"name":"web1","tenant":"acme","labels":{"role":"db"}})", limits());
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->arch, "x86_64");
  EXPECT_EQ(s->firmware, "bios");
  EXPECT_EQ(s->accel, "auto");
  EXPECT_EQ(s->vcpus, 1);
  EXPECT_EQ(s->memory_mib, 512);
  EXPECT_EQ(s->labels.at("role"), "db");
  auto round = parseVmSpec(vmSpecToJson(*s), limits());
  ASSERT_TRUE(round.has_value());
  EXPECT_EQ(*round, *s);
}

TEST(Spec, AVmTheHostCouldNeverRunIsRefusedWithTheFigures) {
  SpecLimits host = limits();
  host.host_cores = 2;
  host.host_memory_mib = 24576;
  auto spec = parseVmSpec(R"({"name":"big","tenant":"acme","vcpus":8,"memory_mib":24576})", host);
  ASSERT_TRUE(spec.has_value()) << spec.error().message;
  EXPECT_TRUE(validateVmSpec(*spec, host).has_value()) << "8 vCPUs fit 2 cores at 400%";
  spec->max_vcpus = 9;
  auto cpu = validateVmSpec(*spec, host);
  ASSERT_FALSE(cpu.has_value());
  EXPECT_EQ(cpu.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(cpu.error().message.find("this host has 2 cores"), std::string::npos)
      << cpu.error().message;
  EXPECT_NE(cpu.error().message.find("at most 8 vCPUs, and this one asks for 9"),
            std::string::npos) << cpu.error().message;
  spec->max_vcpus = 8;
  spec->max_memory_mib = 24577;
  auto memory = validateVmSpec(*spec, host);
  ASSERT_FALSE(memory.has_value());
  EXPECT_NE(memory.error().message.find("at most 24576 MiB, and this one asks for 24577"),
            std::string::npos) << memory.error().message;
  // Overcommit is the operator's call; a stored spec (no host figures) is never refused.
  host.memory_overcommit_percent = 150;
  EXPECT_TRUE(validateVmSpec(*spec, host).has_value());
  EXPECT_TRUE(validateVmSpec(*spec, limits()).has_value());
}

TEST(Spec, HostileNames) {
  for (const std::string& name : {std::string("<"), std::string("a\"b"), std::string("a/b"),
                                  std::string(".."), std::string("ü"), std::string(300, 'a'),
                                  std::string(""), std::string("A")}) {
    std::string text = R"({"name":")" + name + R"("})";
    if (name == "a\"b") text = R"({"name":"a\"b"})";
    expectRefused(text, "vm name");
  }
  expectRefused(R"({"name":"ok","tenant":"x/y"})", "tenant");
  expectRefused(R"({"name":"ok","tenant":""})", "tenant");
}

TEST(Spec, StrictFieldsAndTypes) {
  expectRefused(R"({"name":"a","foo":1})", "unknown field \"foo\"");
  expectRefused(R"({"name":"a","boot":{"kernel":"/k","bar":1}})", "unknown field \"bar\" in boot");
  expectRefused(R"({"name":"a","vcpus":"2"})", "vcpus");
  expectRefused(R"({"name":"a","vcpus":2.5})", "vcpus");
  expectRefused(R"({"name":"a","vcpus":0})", "vcpus");
  expectRefused(R"({"name":"a","vcpus":65})", "vcpus");
  expectRefused(R"({"name":"a","memory_mib":18446744073709551615})", "memory_mib");
  expectRefused(R"({"name":"a","memory_mib":1e400})", "JSON");
  expectRefused(R"({"name":"a","arch":"mips"})", "arch");
  expectRefused(R"({"name":"a","firmware":"efi"})", "firmware");
  expectRefused(R"({"name":"a","firmware":"uefi-secure","boot":{"kernel":"/k"}})", "uefi-secure");
  EXPECT_TRUE(parseVmSpec(R"({"name":"a","firmware":"uefi","boot":{"kernel":"/k"}})", limits()));
  EXPECT_TRUE(parseVmSpec(R"({"name":"a","firmware":"uefi-secure"})", limits()));
  expectRefused(R"({"name":"a","arch":"aarch64"})", "aarch64 guests boot with firmware uefi");
  expectRefused(R"({"name":"a","arch":"aarch64","firmware":"uefi-secure"})", "x86_64");
  EXPECT_TRUE(parseVmSpec(R"({"name":"a","arch":"aarch64","firmware":"uefi"})", limits()));
  expectRefused(R"({"name":"a","accel":"hvf"})", "accel");
  expectRefused(R"({"name":"a","nics":[{}]})", "nics");
  expectRefused(R"({"name":"a","disks":{}})", "disks");
  expectRefused(R"({"name":"a","disks":[{}]})", "a volume or an image");
  expectRefused(R"({"name":"a","disks":[{"volume":"v"},{"image":"i","volume":"v"}]})",
                "already another disk");
  expectRefused(R"({"name":"a","disks":[{"volume":"a-disk1"},{"image":"i"}]})",
                "already another disk");
  {
    // An image disk may name the volume made for it.
    auto named = parseVmSpec(R"({"name":"a","disks":[{"volume":"v","image":"i"}]})", limits());
    ASSERT_TRUE(named) << named.error().message;
    EXPECT_EQ(diskVolumeName(*named, 0), "v");
    EXPECT_EQ(named->disks[0].image, "i");
  }
  expectRefused(R"({"name":"a","disks":[{"volume":"v/../w"}]})", "disks[0].volume");
  expectRefused(R"({"name":"a","disks":[{"volume":"v","size_gib":3}]})", "image disks");
  expectRefused(R"({"name":"a","disks":[{"image":"i","size_gib":0}]})", "size_gib");
  expectRefused(R"({"name":"a","disks":[{"image":"i","keep":"yes"}]})", "keep");
  expectRefused(R"({"name":"a","disks":[{"image":"i","bus":"ide"}]})", "unknown field");
  expectRefused(R"({"name":"a","disks":[1]})", "disks[0]");
  expectRefused(R"({"name":"a","disks":[{"volume":"a"},{"volume":"b"},{"volume":"c"},)"
                R"({"volume":"d"},{"volume":"e"},{"volume":"f"},{"volume":"g"},{"volume":"h"},)"
                R"({"volume":"i"},{"volume":"j"},{"volume":"k"},{"volume":"l"},{"volume":"m"},)"
                R"({"volume":"n"},{"volume":"o"},{"volume":"p"},{"volume":"q"}]})", "at most 16");
  expectRefused(R"({"name":"a","labels":{"k":1}})", "labels");
  // Characters XML cannot carry (the spec goes into the domain's metadata) are refused.
  expectRefused("{\"name\":\"a\",\"labels\":{\"k\":\"x\xef\xbf\xbf\"}}", "labels.k");
  expectRefused("{\"name\":\"a\",\"labels\":{\"k\":\"x\xed\xa0\x80\"}}", "");
  expectRefused("{\"name\":\"a\",\"labels\":{\"k\":\"x\xe0\x80\xaf\"}}", "");
  EXPECT_TRUE(parseVmSpec("{\"name\":\"a\",\"labels\":{\"k\":\"\xe6\xa1\xa5 ok\"}}", limits()));
  expectRefused(R"({"name":"a","cloud_init":"x"})", "cloud_init");
  expectRefused(R"({"name":"a","cloud_init":{}})", "cloud_init.user_data");
  expectRefused(R"({"name":"a","cloud_init":{"user_data":"x","vendor_data":"y"}})", "unknown field");
  expectRefused(R"({"name":"a","cloud_init":{"user_data":"a\u0000b"}})", "UTF-8 text");
  expectRefused(R"({"name":"a","cloud_init":{"user_data":"x","meta_data":"instance-id: evil"}})",
                "instance-id");
  expectRefused(R"({"name":"a","cloud_init":{"user_data":"x","meta_data":"a: 1\nlocal-hostname: h"}})",
                "local-hostname");
  expectRefused(R"({"name":"a","cloud_init":{"user_data":)" "\"" + std::string(70000, 'x') + "\"}}",
                "larger than");
  {
    auto spec = parseVmSpec(
        R"({"name":"a","cloud_init":{"user_data":"#cloud-config\nusers: []\n","meta_data":"x: 1"}})",
        limits());
    ASSERT_TRUE(spec.has_value()) << spec.error().describe();
    ASSERT_TRUE(spec->cloud_init.has_value());
    EXPECT_EQ(spec->cloud_init->user_data, "#cloud-config\nusers: []\n");
    auto again = parseVmSpec(vmSpecToJson(*spec), limits());
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *spec);
  }
  {
    auto spec = parseVmSpec(
        R"({"name":"a","disks":[{"image":"deb","size_gib":10,"keep":true},{"volume":"data"}]})",
        limits());
    ASSERT_TRUE(spec.has_value()) << spec.error().describe();
    ASSERT_EQ(spec->disks.size(), 2u);
    EXPECT_EQ(spec->disks[0].image, "deb");
    EXPECT_EQ(spec->disks[0].size_gib, 10);
    EXPECT_TRUE(spec->disks[0].keep);
    EXPECT_EQ(spec->disks[1].volume, "data");
    EXPECT_EQ(diskVolumeName(*spec, 0), "a-disk0");
    EXPECT_EQ(diskVolumeName(*spec, 1), "data");
    // The canonical form reads back to the same spec.
    auto again = parseVmSpec(vmSpecToJson(*spec), limits());
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *spec);
    VmSpec long_name = *spec;
    long_name.name = std::string(60, 'x');
    const std::string made = diskVolumeName(long_name, 0);
    EXPECT_LE(made.size(), 63u);
    EXPECT_TRUE(made.ends_with("-disk0"));
    EXPECT_TRUE(checkDnsLabel("volume", made).has_value()) << made;
  }
  expectRefused(R"({"name":"a","labels":{"Bad Key":"v"}})", "label key");
  expectRefused(R"({"name":"a","labels":{"k":"v\u0001"}})", "labels.k");
  expectRefused(R"({"name":"a","name":"b"})", "more than once");
  expectRefused(R"({"name":"a","boot":{"cmdline":"x"}})", "boot.kernel");
  expectRefused(R"({"name":"a","boot":{"kernel":"relative"}})", "absolute");
  expectRefused("[1,2]", "object");
  expectRefused("", "JSON");
  expectRefused(R"({"name":"a",)", "JSON");
}

TEST(Spec, DeepNestingIsRefusedFastWithoutRecursion) {
  auto start = std::chrono::steady_clock::now();
  expectRefused(std::string(10000, '[') + std::string(10000, ']'), "nested");
  expectRefused("{\"name\":\"a\",\"labels\":" + std::string(200000, '{'), "nested");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // Brackets inside strings do not count.
  auto s = parseVmSpec(R"({"name":"a","labels":{"k":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}})",
                       limits());
  EXPECT_TRUE(s.has_value());
}

TEST(Spec, BootFilesMustBeCanonicalRegularFiles) {
  auto dir = fs::temp_directory_path() / ("qiao-spec-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "vmlinuz") << "kernel";
  fs::create_symlink(dir / "vmlinuz", dir / "link");
  SpecLimits checked;
  auto spec = [&](const std::string& kernel) {
    return R"({"name":"a","boot":{"kernel":")" + kernel + R"("}})";
  };
  EXPECT_TRUE(parseVmSpec(spec((dir / "vmlinuz").string()), checked).has_value());
  expectRefused(spec((dir / "link").string()), "canonical", checked);
  expectRefused(spec(dir.string() + "/../" + dir.filename().string() + "/vmlinuz"), "canonical",
                checked);
  expectRefused(spec(dir.string()), "regular file", checked);
  expectRefused(spec((dir / "missing").string()), "does not exist", checked);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qiao
