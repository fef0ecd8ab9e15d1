// ClusterCrl on MemoryCeph with two members' PKI directories of one CA: the member with ca.key
// revokes and publishes; the other installs the published CRL (and only a CRL of its CA); a
// member without ca.key cannot revoke and says where to go; each member records its own node
// certificate's serial.
#include "node/pki/cluster_crl.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "base/files.h"
#include "node/pki/pki.h"
#include "tests/doubles/memory_ceph.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

std::set<std::string> crlSerials(const std::string& file) {
  std::set<std::string> out;
  auto pem = readFileBytes(file);
  if (!pem) return out;
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (crl == nullptr) return out;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(
        X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i)), nullptr);
    char* hex = BN_bn2hex(bn);
    out.insert(hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  X509_CRL_free(crl);
  return out;
}

class ClusterCrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-cluster-crl-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(initPki({.cluster = "c1", .dir = a_dir(), .hostname = "h1"}));
    // h2's directory: the CA's certificate and its own node certificate, no CA key.
    IssueOptions issue;
    issue.ca_dir = a_dir();
    issue.identity = {"c1", IdentityKind::kNode, "h2"};
    issue.out_dir = (dir_ / "issue").string();
    auto issued = issueCert(issue);
    ASSERT_TRUE(issued) << issued.error().message;
    fs::create_directories(b_dir());
    fs::copy_file(a_dir() + "/ca.crt", b_dir() + "/ca.crt");
    fs::copy_file(issued->cert_path, b_dir() + "/node.crt");
    fs::copy_file(issued->key_path, b_dir() + "/node.key");
    h2_serial_ = issued->serial;
    // Another cluster's CA.
    ASSERT_TRUE(initPki({.cluster = "c9", .dir = other_dir(), .hostname = "x"}));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string a_dir() const { return (dir_ / "a").string(); }
  std::string b_dir() const { return (dir_ / "b").string(); }
  std::string other_dir() const { return (dir_ / "other").string(); }
  ClusterCrlOptions options(const std::string& dir, const std::string& host) {
    return {pool_, dir, host, "qiao://c1/node/" + host};
  }

  fs::path dir_;
  std::string h2_serial_;
  ManualClock clock_;
  MemoryCeph ceph_{clock_};
  std::unique_ptr<RadosCluster> a_ = ceph_.client("10.0.0.1");
  std::unique_ptr<RadosCluster> b_ = ceph_.client("10.0.0.2");
  ClusterPool pool_;
};

TEST_F(ClusterCrlTest, ARevocationReachesEveryMember) {
  ClusterCrl h1(*a_, options(a_dir(), "h1"), clock_);
  ClusterCrl h2(*b_, options(b_dir(), "h2"), clock_);
  ASSERT_TRUE(h2.recordSelf());
  auto recorded = h1.revocations().nodeCert("h2");
  ASSERT_TRUE(recorded && *recorded);
  EXPECT_EQ((*recorded)->serial, h2_serial_);
  EXPECT_TRUE(h1.canSign());
  EXPECT_FALSE(h2.canSign());
  auto nothing = h2.sync();
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing);

  ASSERT_TRUE(h1.revoke({h2_serial_, "qiao://c1/node/h2", "host removed", 1000}));
  EXPECT_EQ(crlSerials(a_dir() + "/crl.pem"), std::set<std::string>{h2_serial_});
  auto installed = h2.sync();
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_TRUE(*installed);
  EXPECT_EQ(crlSerials(b_dir() + "/crl.pem"), std::set<std::string>{h2_serial_});
  EXPECT_FALSE(*h2.sync());  // unchanged: nothing to do

  // A second revocation keeps the first.
  ASSERT_TRUE(h1.revoke({"0ABC", "qiao://c1/user/bob", "left", 2000}));
  ASSERT_TRUE(*h2.sync());
  EXPECT_EQ(crlSerials(b_dir() + "/crl.pem"), (std::set<std::string>{h2_serial_, "0ABC"}));
}

TEST_F(ClusterCrlTest, ACaMembersLocalRevocationsJoinTheClustersList) {
  // h1 revoked a certificate by itself (`qiaod pki revoke` writes its crl.pem).
  ASSERT_TRUE(writeCrl(a_dir(), {{"0DEF", 500}}));
  ClusterCrl h1(*a_, options(a_dir(), "h1"), clock_);
  ClusterCrl h2(*b_, options(b_dir(), "h2"), clock_);
  ASSERT_TRUE(h1.sync());
  auto recorded = h1.revocations().list();
  ASSERT_TRUE(recorded);
  ASSERT_EQ(recorded->size(), 1u);
  EXPECT_EQ((*recorded)[0].serial, "0DEF");
  EXPECT_EQ((*recorded)[0].at_unix, 500);
  // A removal later keeps it, on every member.
  ASSERT_TRUE(h1.revoke({h2_serial_, "qiao://c1/node/h2", "host removed", 1000}));
  EXPECT_EQ(crlSerials(a_dir() + "/crl.pem"), (std::set<std::string>{h2_serial_, "0DEF"}));
  ASSERT_TRUE(*h2.sync());
  EXPECT_EQ(crlSerials(b_dir() + "/crl.pem"), (std::set<std::string>{h2_serial_, "0DEF"}));
}

TEST_F(ClusterCrlTest, AMemberWithoutTheCaKeyCannotRevoke) {
  ClusterCrl h2(*b_, options(b_dir(), "h2"), clock_);
  auto refused = h2.revoke({"0ABC", "qiao://c1/user/bob", "left", 2000});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("holds the cluster CA key"), std::string::npos);
  EXPECT_FALSE(fs::exists(b_dir() + "/crl.pem"));
}

TEST_F(ClusterCrlTest, OnlyACrlOfThisCaIsInstalled) {
  ClusterCrl h2(*b_, options(b_dir(), "h2"), clock_);
  ASSERT_TRUE(writeCrl(other_dir(), {{"0DEF", 1}}));
  auto forged = readFileBytes(other_dir() + "/crl.pem");
  ASSERT_TRUE(forged);
  ASSERT_TRUE(h2.revocations().publishCrl(*forged, std::nullopt));
  auto refused = h2.sync();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not signed by the CA"), std::string::npos);
  EXPECT_FALSE(fs::exists(b_dir() + "/crl.pem"));
}

TEST_F(ClusterCrlTest, TheThreadInstallsWhatIsPublished) {
  ClusterCrl h1(*a_, options(a_dir(), "h1"), clock_);
  ClusterCrlOptions fast = options(b_dir(), "h2");
  fast.reread_every = std::chrono::milliseconds(50);
  ClusterCrl h2(*b_, fast, clock_);
  h2.start();
  ASSERT_TRUE(h1.revoke({h2_serial_, "qiao://c1/node/h2", "host removed", 1000}));
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    seen = crlSerials(b_dir() + "/crl.pem").count(h2_serial_) > 0;
    if (!seen) usleep(10000);
  }
  h2.stop();
  EXPECT_TRUE(seen);
  EXPECT_TRUE(h1.revocations().nodeCert("h2").value().has_value());
}

}  // namespace
}  // namespace qiao
