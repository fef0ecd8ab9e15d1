// The node API attacked as an outsider and as a careless tenant would, against a real qiaod:
// a stranger's flood of refused calls leaves the audit log small (one entry and a summary per
// address); uploads are refused before a byte of their body is read (nothing reaches the
// disk) when the caller, the image or the disk does not allow them, and a tenant's parallel
// uploads are capped; one identity holding event streams, or one address holding
// connections, gets 503 with Retry-After while an admin still gets in; HTTP that Beast lets
// through (no Host, a coded body) is refused; what the server cannot read is audited.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/raw_tls.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class HardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    q_ = new Qiaod(
        "[api]\naudit_summary_interval_s = 3\nmax_connections = 40\n"
        "admin_reserved_connections = 10\nmax_connections_per_source = 8\n"
        "max_event_streams_per_identity = 2\n"
        "[images]\nmax_parallel_uploads = 2\n");
    q_->start();
  }
  static void TearDownTestSuite() {
    delete q_;
    q_ = nullptr;
  }

  RawTlsOptions as(const std::string& who, const std::string& source = {}) {
    RawTlsOptions o;
    o.endpoint = q_->endpoint();
    o.ca = q_->dir() + "/pki/ca.crt";
    o.source = source;
    if (!who.empty()) {
      const Identity& id = who == "admin"     ? q_->identity("admin", "admin")
                           : who == "viewer"  ? q_->identity("view-a", "viewer", {"ta"})
                           : who == "op-a"    ? q_->identity("op-a", "operator", {"ta"})
                           : who == "op-b"    ? q_->identity("op-b", "operator", {"tb"})
                                              : q_->identity(who, "viewer", {"tz"});
      o.cert = id.cert;
      o.key = id.key;
    }
    return o;
  }
  static std::unique_ptr<RawTls> connect(const RawTlsOptions& o) {
    std::string error;
    auto c = RawTls::connect(o, &error);
    EXPECT_NE(c, nullptr) << error;
    return c;
  }
  int64_t auditCount() {
    auto r = runCommand({"sqlite3", q_->dir() + "/state/qiao.db", "SELECT count(*) FROM audit"});
    return std::stoll(r.out.empty() ? "0" : r.out);
  }
  std::vector<std::string> filesIn(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().string());
    return out;
  }
  // The headers of an upload declaring `length` bytes, and the first MiB of them.
  static std::string uploadStart(const std::string& image, int64_t length,
                                 const std::string& tenant = "ta") {
    return "PUT /v1/images/" + image + "/data?tenant=" + tenant +
           " HTTP/1.1\r\nHost: qiaod\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: " + std::to_string(length) + "\r\n\r\n" + std::string(1 << 20, 'q');
  }
  static Qiaod* q_;
};
Qiaod* HardeningTest::q_ = nullptr;

TEST_F(HardeningTest, AStrangersFloodLeavesOneEntryAndOneSummaryPerAddressAndInterval) {
  const int64_t before = auditCount();
  const auto db_before = fs::file_size(q_->dir() + "/state/qiao.db");
  ClientConfig config;
  config.endpoint = q_->endpoint();
  config.ca = q_->dir() + "/pki/ca.crt";
  auto stranger = ApiClient::create(config);
  ASSERT_TRUE(stranger) << stranger.error().describe();
  const std::string target = "/v1/vms?" + std::string(2000, 'x');
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    auto r = stranger->request("POST", target, "{}");
    ASSERT_TRUE(r) << r.error().describe();
    ASSERT_EQ(r->status, 401);
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now() - started).count();
  // Every refusal is accounted for: in full, or counted in a summary once its interval (3 s)
  // has ended and the server's tick has written it.
  const std::string db = q_->dir() + "/state/qiao.db";
  const std::string since = " AND seq > " + std::to_string(before);
  int64_t accounted = 0;
  for (int i = 0; i < 100 && accounted < 2000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto full = runCommand({"sqlite3", db, "SELECT count(*) FROM audit WHERE method = 'POST' "
                                           "AND identity = ''" + since});
    auto counted = runCommand({"sqlite3", db, "SELECT path FROM audit WHERE method = 'SUMMARY' "
                                              "AND target = '127.0.0.1'" + since});
    accounted = std::stoll(full.out);
    std::istringstream lines(counted.out);
    for (std::string line; std::getline(lines, line);) accounted += std::stoll(line);
  }
  EXPECT_EQ(accounted, 2000);
  // At most an entry and a summary per interval the flood lasted, never one per call.
  const int64_t written = auditCount() - before;
  EXPECT_LE(written, 2 * (seconds / 3 + 2)) << "in " << seconds << " s";
  auto summary = runCommand({"sqlite3", db, "SELECT path FROM audit WHERE method = 'SUMMARY'" +
                                                since + " LIMIT 1"});
  EXPECT_NE(summary.out.find("more refused calls (first status 401) from 127.0.0.1"),
            std::string::npos) << summary.out;
  auto longest = runCommand({"sqlite3", db, "SELECT max(length(path)) FROM audit"});
  EXPECT_LE(std::stoll(longest.out), 300) << "stored fields are capped";
  EXPECT_LT(fs::file_size(db) - db_before, 1u << 20);
  EXPECT_EQ(q_->admin({"audit", "verify"}).exit_code, 0);
}

TEST_F(HardeningTest, RefusedUploadsAreAnsweredBeforeTheirBodyAndWriteNothing) {
  auto op_a = q_->client(q_->identity("op-a", "operator", {"ta"}));
  auto op_b = q_->client(q_->identity("op-b", "operator", {"tb"}));
  ASSERT_EQ(call(op_a, "POST", "/v1/images", json({{"name", "pend"}}).dump()).status, 201);
  ASSERT_EQ(call(op_b, "POST", "/v1/images", json({{"name", "theirs"}}).dump()).status, 201);
  const std::string work = q_->dir() + "/state/images";
  const int64_t kDeclared = int64_t{200} << 20;
  struct Case {
    std::string who, image, tenant;
    int status;
  };
  const std::vector<Case> cases = {
      {"", "pend", "ta", 401},            // no certificate
      {"viewer", "pend", "ta", 403},      // a viewer
      {"norole", "pend", "ta", 403},      // a viewer (of another tenant) may not upload
      {"op-a", "theirs", "tb", 404},      // another tenant's image
      {"op-a", "missing", "ta", 404},     // no such image
  };
  for (const auto& c : cases) {
    auto conn = connect(as(c.who));
    ASSERT_NE(conn, nullptr);
    conn->send(uploadStart(c.image, kDeclared, c.tenant));
    std::string answer = conn->readUntilClosed(10000);
    EXPECT_EQ(httpStatusOf(answer), c.status) << c.who << " " << c.image << ": " << answer;
    EXPECT_TRUE(filesIn(work).empty()) << c.who << " " << c.image << ": the disk was written";
  }
  // An image that has its data: 409, before the second copy is read.
  auto ready = connect(as("op-a"));
  const std::string head = uploadStart("pend", 4096);
  ready->send(head.substr(0, head.find("\r\n\r\n") + 4) + std::string(4096, 'r'));
  EXPECT_EQ(httpStatusOf(ready->readUntil("\r\n\r\n", 10000)), 202);
  ready.reset();
  auto again = connect(as("op-a"));
  again->send(uploadStart("pend", kDeclared));
  std::string answer = again->readUntilClosed(10000);
  EXPECT_EQ(httpStatusOf(answer), 409) << answer;
  EXPECT_TRUE(waitAllTasksDone(op_a, std::chrono::seconds(60)));
  EXPECT_TRUE(filesIn(work).empty()) << "the import leaves no work file";
  // Every refusal is in the audit log, the stranger's too.
  auto refused = runCommand({"sqlite3", q_->dir() + "/state/qiao.db",
                             "SELECT count(*) FROM audit WHERE method = 'PUT' AND status >= 400"});
  EXPECT_GE(std::stoll(refused.out), 5) << refused.out;
}

TEST_F(HardeningTest, ATenantsParallelUploadsAreCappedAndTheCapAnswers429) {
  auto op_a = q_->client(q_->identity("op-a", "operator", {"ta"}));
  for (const char* name : {"u1", "u2", "u3"}) {
    ASSERT_EQ(call(op_a, "POST", "/v1/images", json({{"name", name}}).dump()).status, 201);
  }
  const int64_t kDeclared = int64_t{64} << 20;
  auto first = connect(as("op-a"));
  auto second = connect(as("op-a"));
  first->send(uploadStart("u1", kDeclared));
  second->send(uploadStart("u2", kDeclared));
  EXPECT_TRUE(first->readUntil("\r\n", 1000).empty()) << "the first upload is being read";
  EXPECT_TRUE(second->readUntil("\r\n", 1000).empty()) << "the second upload is being read";
  auto third = connect(as("op-a"));
  third->send(uploadStart("u3", kDeclared));
  std::string answer = third->readUntilClosed(10000);
  EXPECT_EQ(httpStatusOf(answer), 429) << answer;
  EXPECT_NE(answer.find("Retry-After:"), std::string::npos) << answer;
  EXPECT_NE(answer.find("2 uploads in progress"), std::string::npos) << answer;
  // One ends (cut off): its slot is free again.
  first.reset();
  bool admitted = false;
  for (int i = 0; i < 50 && !admitted; ++i) {
    auto next = connect(as("op-a"));
    next->send(uploadStart("u3", kDeclared));
    admitted = next->readUntil("\r\n", 500).empty();
  }
  EXPECT_TRUE(admitted);
}

TEST_F(HardeningTest, AnUploadThatWouldEatTheReserveIs507BeforeItsBody) {
  Qiaod full("[images]\nupload_reserve_mib = 536870912\n");  // 512 TiB must stay free
  full.start();
  auto op = full.client(full.identity("op-a", "operator", {"ta"}));
  ASSERT_EQ(call(op, "POST", "/v1/images", json({{"name", "big"}}).dump()).status, 201);
  RawTlsOptions o;
  o.endpoint = full.endpoint();
  o.ca = full.dir() + "/pki/ca.crt";
  o.cert = full.identity("op-a", "operator", {"ta"}).cert;
  o.key = full.identity("op-a", "operator", {"ta"}).key;
  auto conn = connect(o);
  conn->send(uploadStart("big", int64_t{10} << 20));
  std::string answer = conn->readUntilClosed(10000);
  EXPECT_EQ(httpStatusOf(answer), 507) << answer;
  EXPECT_NE(answer.find("insufficient_storage"), std::string::npos) << answer;
  EXPECT_TRUE(filesIn(full.dir() + "/state/images").empty());
}

TEST_F(HardeningTest, StreamsAndConnectionsAreCappedAndAnAdminStillGetsIn) {
  const std::string events = "GET /v1/events HTTP/1.1\r\nHost: qiaod\r\n\r\n";
  // A viewer holds the streams it may have; one more is 503 with Retry-After.
  std::vector<std::unique_ptr<RawTls>> streams;
  for (int i = 0; i < 2; ++i) {
    streams.push_back(connect(as("viewer")));
    streams.back()->send(events);
    EXPECT_NE(streams.back()->readUntil(": connected", 5000).find(" 200 "), std::string::npos);
  }
  auto extra = connect(as("viewer"));
  extra->send(events);
  std::string answer = extra->readUntilClosed(5000);
  EXPECT_EQ(httpStatusOf(answer), 503) << answer;
  EXPECT_NE(answer.find("Retry-After:"), std::string::npos) << answer;
  EXPECT_NE(answer.find("max_event_streams_per_identity"), std::string::npos) << answer;

  // A stranger holds the connections one address may (8) from 127.0.0.2; the next one's
  // request gets 503 and a reason.
  std::vector<std::unique_ptr<RawTls>> held;
  for (int i = 0; i < 8; ++i) held.push_back(connect(as("", "127.0.0.2")));
  auto over = connect(as("", "127.0.0.2"));
  over->send("GET /v1/healthz HTTP/1.1\r\nHost: qiaod\r\n\r\n");
  answer = over->readUntilClosed(5000);
  EXPECT_EQ(httpStatusOf(answer), 503) << answer;
  EXPECT_NE(answer.find("max_connections_per_source"), std::string::npos) << answer;

  // Strangers from more addresses (4 each) fill what is not reserved for admins (40 - 10):
  // each kept-alive connection answered, until one is told the node is full.
  std::string full;
  for (int i = 0; i < 40 && full.empty(); ++i) {
    auto conn = connect(as("", "127.0.1." + std::to_string(i / 4 + 1)));
    conn->send("GET /v1/healthz HTTP/1.1\r\nHost: qiaod\r\n\r\n");
    std::string got = conn->readUntil("\r\n\r\n", 5000);
    if (httpStatusOf(got) == 503) full = got + conn->readUntilClosed(2000);
    held.push_back(std::move(conn));
  }
  EXPECT_NE(full.find("api.max_connections"), std::string::npos) << full;
  EXPECT_NE(full.find("Retry-After:"), std::string::npos) << full;
  // ...and an admin still gets in.
  auto admin = q_->adminClient();
  auto health = call(admin, "GET", "/v1/healthz");
  EXPECT_EQ(health.status, 200) << health.raw;
}

TEST_F(HardeningTest, HttpThatBeastLetsThroughIsRefusedAndAudited) {
  auto send = [&](const std::string& bytes) {
    auto conn = connect(as("admin"));
    conn->send(bytes);
    return conn->readUntilClosed(5000);
  };
  std::string answer = send("GET /v1/healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(httpStatusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("Host"), std::string::npos) << answer;
  answer = send("POST /v1/vms HTTP/1.1\r\nHost: q\r\nTransfer-Encoding: gzip, chunked\r\n"
                "Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(httpStatusOf(answer), 400) << answer;
  EXPECT_NE(answer.find("Transfer-Encoding"), std::string::npos) << answer;
  // A body over the limit, a NUL in the target: refused, and in the audit log.
  const int64_t before = auditCount();
  answer = send("POST /v1/vms HTTP/1.1\r\nHost: q\r\nContent-Type: application/json\r\n"
                "Content-Length: 4194304\r\n\r\n{");
  EXPECT_EQ(httpStatusOf(answer), 413) << answer;
  answer = send("GET /v1/vms/a%00b HTTP/1.1\r\nHost: q\r\n\r\n");
  EXPECT_EQ(httpStatusOf(answer), 400) << answer;
  EXPECT_EQ(auditCount() - before, 2);
  // The upload route reached by an encoded path is the upload route (it was a 500).
  answer = send("PUT /v1/images/nothing/dat%61 HTTP/1.1\r\nHost: q\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_EQ(httpStatusOf(answer), 404) << answer;
  // Many label filters: 400, not the database's error.
  std::string labels;
  for (int i = 0; i < 1000; ++i) labels += (i ? "&" : "") + std::string("label=k=v") + std::to_string(i);
  auto admin = q_->adminClient();
  auto r = call(admin, "GET", "/v1/vms?" + labels);
  EXPECT_EQ(r.status, 400) << r.raw;
}

TEST_F(HardeningTest, AVmThisHostCouldNeverRunIsRefusedWithItsFigures) {
  auto admin = q_->adminClient();
  auto host = call(admin, "GET", "/v1/host");
  ASSERT_EQ(host.status, 200);
  const int cores = host.body["cores"];
  json spec = {{"name", "huge"}, {"tenant", "ta"}, {"vcpus", 1}, {"max_vcpus", cores * 4 + 1},
               {"memory_mib", 128}};
  auto r = call(admin, "POST", "/v1/vms?start=false", spec.dump());
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_NE(r.raw.find("this host has " + std::to_string(cores) + " cores"), std::string::npos)
      << r.raw;
  spec["max_vcpus"] = 1;
  spec["max_memory_mib"] = (host.body["memory_bytes"].get<int64_t>() >> 20) + 1;
  r = call(admin, "POST", "/v1/vms?start=false", spec.dump());
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_NE(r.raw.find("vm.memory_overcommit_percent"), std::string::npos) << r.raw;
  EXPECT_EQ(call(admin, "GET", "/v1/vms/huge?tenant=ta").status, 404);
}

TEST_F(HardeningTest, QuotasRefuseWithTheFiguresAndUsageFollowsCreatesAndDeletes) {
  auto admin = q_->adminClient();
  auto op = q_->client(q_->identity("op-q", "operator", {"tq"}));
  auto set = call(admin, "PUT", "/v1/quotas/tq",
                  R"({"vms": 2, "vcpus": 3, "volume_gib": 3, "images": 1})");
  ASSERT_EQ(set.status, 200) << set.raw;
  auto vm = [&](const std::string& name, int vcpus, int max_vcpus) {
    json spec = {{"name", name}, {"vcpus", vcpus}, {"max_vcpus", max_vcpus},
                 {"memory_mib", 128}};
    return call(op, "POST", "/v1/vms?start=false", spec.dump());
  };
  auto usage = [&]() { return call(op, "GET", "/v1/quotas/tq").body["usage"]; };
  auto a = vm("qa", 1, 2);  // counts its max_vcpus: 2
  ASSERT_EQ(a.status, 202) << a.raw;
  EXPECT_EQ(waitTask(op, a.body["id"])["state"], "succeeded");
  EXPECT_EQ(usage()["vcpus"], 2);
  auto over = vm("qb", 2, 2);
  EXPECT_EQ(over.status, 409) << over.raw;
  EXPECT_NE(over.raw.find("quota of vcpus is 3: it has 2 and this asks for 2 more"),
            std::string::npos) << over.raw;
  EXPECT_EQ(over.body["error"]["details"]["quota"], "vcpus");
  EXPECT_EQ(over.body["error"]["details"]["limit"], 3);
  auto b = vm("qb", 1, 1);
  ASSERT_EQ(b.status, 202) << b.raw;
  EXPECT_EQ(waitTask(op, b.body["id"])["state"], "succeeded");
  auto third = vm("qc", 1, 1);
  EXPECT_EQ(third.status, 409) << third.raw;
  EXPECT_NE(third.raw.find("quota of vms is 2"), std::string::npos) << third.raw;
  auto del = call(op, "DELETE", "/v1/vms/qa");
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(op, del.body["id"])["state"], "succeeded");
  auto now = usage();
  EXPECT_EQ(now["vms"], 1);
  EXPECT_EQ(now["vcpus"], 1);
  // Volumes: GiB in all, a resize counts its growth.
  auto v1 = call(op, "POST", "/v1/volumes", R"({"name": "qv1", "size_gib": 2})");
  ASSERT_EQ(v1.status, 202) << v1.raw;
  EXPECT_EQ(waitTask(op, v1.body["id"])["state"], "succeeded");
  auto v2 = call(op, "POST", "/v1/volumes", R"({"name": "qv2", "size_gib": 2})");
  EXPECT_EQ(v2.status, 409) << v2.raw;
  auto grow = call(op, "POST", "/v1/volumes/qv1/resize", R"({"size_gib": 3})");
  ASSERT_EQ(grow.status, 202) << grow.raw;
  EXPECT_EQ(waitTask(op, grow.body["id"])["state"], "succeeded");
  EXPECT_EQ(call(op, "POST", "/v1/volumes/qv1/resize", R"({"size_gib": 4})").status, 409);
  EXPECT_EQ(usage()["volume_gib"], 3);
  // Images.
  EXPECT_EQ(call(op, "POST", "/v1/images", R"({"name": "qi1"})").status, 201);
  EXPECT_EQ(call(op, "POST", "/v1/images", R"({"name": "qi2"})").status, 409);
  // Raised by an admin: the create goes through.
  ASSERT_EQ(call(admin, "PUT", "/v1/quotas/tq", R"({"images": -1})").status, 200);
  EXPECT_EQ(call(op, "POST", "/v1/images", R"({"name": "qi2"})").status, 201);
  // qiaoctl shows it.
  auto shown = q_->qiaoctl(q_->identity("op-q", "operator", {"tq"}), {"quota", "get", "tq"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("images"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("none"), std::string::npos) << shown.out;
}

TEST_F(HardeningTest, RevokedAndSupersededCertificatesFailTheHandshakeAndUnboundOnesGet403) {
  auto works = [&](const std::string& cert, const std::string& key) -> int {
    ClientConfig config;
    config.endpoint = q_->endpoint();
    config.ca = q_->dir() + "/pki/ca.crt";
    config.cert = cert;
    config.key = key;
    config.timeout_ms = 10000;
    auto client = ApiClient::create(config);
    if (!client) return -1;
    auto r = client->request("GET", "/v1/healthz");
    return r ? r->status : 0;  // 0: no answer (the handshake failed)
  };
  const std::string uri_prefix = "qiao://" + q_->cluster() + "/user/";
  // Revoked by identity: its next handshake fails.
  const Identity& rev = q_->identity("rev-a", "viewer", {"ta"});
  ASSERT_EQ(works(rev.cert, rev.key), 200);
  auto revoked = q_->admin({"pki", "revoke", "--identity", uri_prefix + "rev-a", "--reason",
                            "laptop stolen"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.out << revoked.err;
  EXPECT_EQ(works(rev.cert, rev.key), 0) << "a revoked certificate must fail the handshake";
  // Re-issued: the old certificate is superseded (revoked), the new one works.
  const Identity& old = q_->identity("re-b", "viewer", {"ta"});
  const std::string kept = q_->dir() + "/re-b-old";
  fs::create_directories(kept);
  fs::copy_file(old.cert, kept + "/re-b.crt");
  fs::copy_file(old.key, kept + "/re-b.key");
  ASSERT_EQ(works(old.cert, old.key), 200);
  auto reissued = q_->admin({"pki", "issue", "--kind", "user", "--name", "re-b", "--role",
                             "viewer", "--tenant", "ta", "--out", q_->dir() + "/identities",
                             "--force"});
  ASSERT_EQ(reissued.exit_code, 0) << reissued.out << reissued.err;
  EXPECT_EQ(works(kept + "/re-b.crt", kept + "/re-b.key"), 0) << "the superseded one";
  EXPECT_EQ(works(old.cert, old.key), 200) << "the new one (written over the old files)";
  // Unbound: the certificate still shakes hands, but the identity has no role.
  auto unbound = q_->admin({"pki", "unbind", "--identity", uri_prefix + "re-b"});
  ASSERT_EQ(unbound.exit_code, 0) << unbound.out << unbound.err;
  EXPECT_EQ(works(old.cert, old.key), 403);
  // The list says all of it.
  auto list = q_->admin({"pki", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("revoked"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("laptop stolen"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("superseded by"), std::string::npos) << list.out;
  // A serial that is no certificate: a clear error.
  auto none = q_->admin({"pki", "revoke", "--serial", "ABCDEF"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no valid certificate"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace qiao::testing
