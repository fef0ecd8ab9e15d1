// The image catalog through a real qiaod on the stack's Ceph: streamed uploads of raw and
// qcow2 images become golden images in the tenant's RBD namespace; admins import public
// images from host paths; hostile images are refused and leave nothing behind (no catalog
// entry, no RBD image, no file); tenants do not see each other's images.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/crypto.h"
#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kMaxUpload = 32 << 20;

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

void run(const std::vector<std::string>& argv) {
  auto r = runCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << argv[0] << " " << argv[1] << ": " << r.out << r.err;
}

// Overwrites bytes of a file at `offset` (hand-made hostile headers).
void patch(const std::string& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string be64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

class ImagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qiaod_ = new Qiaod(stackCephConfig() + "[images]\nmax_upload_bytes = " +
                       std::to_string(kMaxUpload) + "\n");
    qiaod_->start();
  }
  static void TearDownTestSuite() {
    delete qiaod_;
    qiaod_ = nullptr;
  }
  void SetUp() override {
    suffix_ = randomSuffix();
    rbd_ = stackCeph();
    ASSERT_NE(rbd_, nullptr);
    work_ = qiaod_->dir() + "/test-" + suffix_;
    fs::create_directories(work_);
  }
  void TearDown() override { fs::remove_all(work_); }

  ApiClient as(const std::string& who) {
    if (who == "op-a") return qiaod_->client(qiaod_->identity("op-a", "operator", {"ta"}));
    if (who == "op-b") return qiaod_->client(qiaod_->identity("op-b", "operator", {"tb"}));
    return qiaod_->adminClient();
  }
  // A raw image whose first sector says `marker`, `mib` MiB long.
  std::string rawImage(const std::string& marker, int mib) {
    std::string data(static_cast<size_t>(mib) << 20, '\0');
    data.replace(0, marker.size(), marker);
    data.replace(data.size() - 4096, marker.size(), marker);
    return data;
  }
  // POST (pending) then PUT the data; returns the import task, finished.
  json upload(ApiClient& client, const std::string& name, const std::string& data,
              const json& extra = json::object()) {
    json spec = extra;
    spec["name"] = name;
    auto made = call(client, "POST", "/v1/images", spec.dump());
    EXPECT_EQ(made.status, 201) << made.raw;
    EXPECT_EQ(made.body["state"], "pending");
    auto put = client.request("PUT", "/v1/images/" + name + "/data", data,
                              "application/octet-stream");
    EXPECT_TRUE(put.has_value());
    if (!put || put->status != 202) {
      ADD_FAILURE() << "PUT answered " << (put ? put->status : 0) << " " << (put ? put->body : "");
      return json::object();
    }
    return waitTask(client, json::parse(put->body)["id"]);
  }
  // Nothing of image `name` remains: no catalog entry, no RBD image, no work file.
  void expectNothingLeft(ApiClient& client, const std::string& ns, const std::string& name) {
    EXPECT_EQ(call(client, "GET", "/v1/images/" + name).status, 404);
    auto listed = rbd_->list(ns);
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(std::find(listed->begin(), listed->end(), "img-" + name), listed->end())
        << "RBD image img-" << name << " was left in namespace " << ns;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(qiaod_->dir() + "/state/images", ec)) {
      ADD_FAILURE() << "left in the work dir: " << entry.path();
    }
  }

  static Qiaod* qiaod_;
  std::string suffix_, work_;
  std::unique_ptr<VolumeDriver> rbd_;
};
Qiaod* ImagesTest::qiaod_ = nullptr;

TEST_F(ImagesTest, ARawUploadBecomesAGoldenImageInTheTenantsNamespace) {
  auto a = as("op-a");
  const std::string name = "raw-" + suffix_;
  const std::string data = rawImage("QIAO-RAW-" + suffix_, 8);
  json task = upload(a, name, data);
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  EXPECT_EQ(task["target"], "image/" + name);

  auto image = call(a, "GET", "/v1/images/" + name).body;
  EXPECT_EQ(image["state"], "ready");
  EXPECT_EQ(image["format"], "raw");
  EXPECT_EQ(image["tenant"], "ta");
  EXPECT_EQ(image["virtual_size"], data.size());
  EXPECT_EQ(image["file_size"], data.size());
  EXPECT_EQ(image["sha256"], sha256Hex(data));

  const VolumeId id{"ta", "img-" + name};
  auto stat = rbd_->stat(id);
  ASSERT_TRUE(stat.has_value()) << stat.error().describe();
  EXPECT_EQ(stat->size_bytes, static_cast<int64_t>(data.size()));
  EXPECT_EQ(*rbd_->read(id, 0, data.size()), data);
  // The golden snapshot exists: a clone of it can be made.
  const VolumeId probe_clone{"ta", "vol-probe-" + suffix_};
  ASSERT_TRUE(rbd_->clone(id, "golden", probe_clone).has_value());
  EXPECT_EQ(*rbd_->read(probe_clone, 0, 64), data.substr(0, 64));
  ASSERT_TRUE(rbd_->remove(probe_clone).has_value());

  // Data is taken once.
  auto again = a.request("PUT", "/v1/images/" + name + "/data", data, "application/octet-stream");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 409) << again->body;

  auto del = call(a, "DELETE", "/v1/images/" + name);
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
  expectNothingLeft(a, "ta", name);
}

TEST_F(ImagesTest, AQcow2UploadIsStoredAsItsRawContent) {
  auto a = as("op-a");
  const std::string name = "qcow-" + suffix_;
  const std::string raw = rawImage("QIAO-QCOW2-" + suffix_, 6);
  writeFile(work_ + "/src.raw", raw);
  run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", work_ + "/src.raw",
       work_ + "/img.qcow2"});
  const std::string qcow2 = readFile(work_ + "/img.qcow2");
  json task = upload(a, name, qcow2, {{"format", "qcow2"}});
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  auto image = call(a, "GET", "/v1/images/" + name).body;
  EXPECT_EQ(image["format"], "qcow2");
  EXPECT_EQ(image["virtual_size"], raw.size());
  EXPECT_EQ(image["file_size"], qcow2.size());
  EXPECT_EQ(image["sha256"], sha256Hex(qcow2));
  EXPECT_EQ(*rbd_->read({"ta", "img-" + name}, 0, raw.size()), raw);
  auto del = call(a, "DELETE", "/v1/images/" + name);
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
}

TEST_F(ImagesTest, AdminsImportPublicImagesFromHostPathsOthersMayNot) {
  auto admin = as("admin");
  auto a = as("op-a");
  auto b = as("op-b");
  const std::string name = "pub-" + suffix_;
  const std::string data = rawImage("QIAO-PUBLIC", 4);
  writeFile(work_ + "/public.img", data);

  auto refused = call(a, "POST", "/v1/images",
                      json({{"name", name}, {"source_path", work_ + "/public.img"}}).dump());
  EXPECT_EQ(refused.status, 403) << refused.raw;
  auto refused_public = call(a, "POST", "/v1/images", json({{"name", name}, {"public", true}}).dump());
  EXPECT_EQ(refused_public.status, 403) << refused_public.raw;

  auto made = call(admin, "POST", "/v1/images",
                   json({{"name", name}, {"public", true}, {"source_path", work_ + "/public.img"}})
                       .dump());
  ASSERT_EQ(made.status, 202) << made.raw;
  ASSERT_EQ(waitTask(admin, made.body["id"])["state"], "succeeded");
  // Every tenant sees it; it lives in the pool's default namespace.
  for (auto* c : {&a, &b}) {
    auto got = call(*c, "GET", "/v1/images/" + name);
    ASSERT_EQ(got.status, 200) << got.raw;
    EXPECT_EQ(got.body["public"], true);
    EXPECT_EQ(got.body["sha256"], sha256Hex(data));
  }
  EXPECT_EQ(*rbd_->read({"", "img-" + name}, 0, 11), "QIAO-PUBLIC");
  // Only admins change it.
  EXPECT_EQ(call(a, "DELETE", "/v1/images/" + name).status, 403);
  auto del = call(admin, "DELETE", "/v1/images/" + name);
  ASSERT_EQ(del.status, 202);
  EXPECT_EQ(waitTask(admin, del.body["id"])["state"], "succeeded");
  expectNothingLeft(admin, "", name);
}

TEST_F(ImagesTest, TenantsDoNotSeeEachOthersImages) {
  auto a = as("op-a");
  auto b = as("op-b");
  const std::string name = "mine-" + suffix_;
  ASSERT_EQ(upload(a, name, rawImage("A", 1))["state"], "succeeded");
  EXPECT_EQ(call(b, "GET", "/v1/images/" + name).status, 404);
  EXPECT_EQ(call(b, "DELETE", "/v1/images/" + name).status, 404);
  auto put = b.request("PUT", "/v1/images/" + name + "/data", "x", "application/octet-stream");
  ASSERT_TRUE(put.has_value());
  EXPECT_EQ(put->status, 404);
  auto b_list = call(b, "GET", "/v1/images");
  ASSERT_EQ(b_list.status, 200) << b_list.raw;
  for (const auto& i : b_list.body["items"]) EXPECT_NE(i["name"], name);
  // The same list for tenant a does hold it (so the check above can fail).
  auto a_list = call(a, "GET", "/v1/images");
  bool listed = false;
  for (const auto& i : a_list.body["items"]) listed = listed || i["name"] == name;
  EXPECT_TRUE(listed) << a_list.raw;
  auto del = call(a, "DELETE", "/v1/images/" + name);
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
}

TEST_F(ImagesTest, HostileImagesAreRefusedAndLeaveNothing) {
  auto a = as("op-a");
  auto admin = as("admin");
  struct Case {
    std::string label;
    std::function<std::string(const std::string& dir)> make;  // returns the file
    json extra;
    std::string expect;  // in the task's error message
  };
  auto qemuImg = [](std::vector<std::string> args) { run(args); };
  const std::vector<Case> cases = {
      {"backing-passwd",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw",
                  d + "/x.qcow2", "16M"});
         return d + "/x.qcow2";
       },
       json::object(), "backing file"},
      {"backing-json",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", "-u", "-b",
                  R"(json:{"file.driver":"file","file.filename":"/etc/shadow"})", "-F", "raw",
                  d + "/x.qcow2", "16M"});
         return d + "/x.qcow2";
       },
       json::object(), "backing file"},
      {"data-file",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", "-o", "data_file=" + d + "/data.raw",
                  d + "/x.qcow2", "16M"});
         return d + "/x.qcow2";
       },
       json::object(), "data file"},
      {"absurd-size",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", d + "/x.qcow2", "16M"});
         patch(d + "/x.qcow2", 24, be64(uint64_t{1} << 62));
         return d + "/x.qcow2";
       },
       json::object(), "size"},
      {"truncated",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", d + "/x.qcow2", "16M"});
         fs::resize_file(d + "/x.qcow2", 100);
         return d + "/x.qcow2";
       },
       json::object(), "truncated"},
      {"declared-raw",
       [&](const std::string& d) {
         qemuImg({"qemu-img", "create", "-f", "qcow2", d + "/x.qcow2", "16M"});
         return d + "/x.qcow2";
       },
       json{{"format", "raw"}}, "qcow2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string dir = work_ + "/" + c.label;
    fs::create_directories(dir);
    const std::string file = c.make(dir);
    const std::string name = c.label + "-" + suffix_;
    json task = upload(a, name, readFile(file), c.extra);
    EXPECT_EQ(task.value("state", ""), "failed") << task.dump();
    const std::string message = task["error"].is_object() ? task["error"].value("message", "") : "";
    EXPECT_NE(message.find(c.expect), std::string::npos) << message;
    expectNothingLeft(a, "ta", name);
  }
  // A qcow2 named .iso, imported by path.
  fs::create_directories(work_ + "/iso");
  run({"qemu-img", "create", "-f", "qcow2", work_ + "/iso/disk.iso", "16M"});
  const std::string name = "named-iso-" + suffix_;
  auto made = call(admin, "POST", "/v1/images",
                   json({{"name", name}, {"tenant", "ta"}, {"source_path", work_ + "/iso/disk.iso"}})
                       .dump());
  ASSERT_EQ(made.status, 202) << made.raw;
  json task = waitTask(admin, made.body["id"]);
  EXPECT_EQ(task["state"], "failed");
  EXPECT_NE(task.dump().find("iso"), std::string::npos) << task.dump();
  expectNothingLeft(admin, "ta", name);
}

TEST_F(ImagesTest, AnUploadOverTheLimitIsRefusedAndNotKept) {
  auto a = as("op-a");
  const std::string name = "big-" + suffix_;
  auto made = call(a, "POST", "/v1/images", json({{"name", name}}).dump());
  ASSERT_EQ(made.status, 201);
  std::string data(static_cast<size_t>(kMaxUpload) + (1 << 20), 'z');
  auto put = a.request("PUT", "/v1/images/" + name + "/data", data, "application/octet-stream");
  ASSERT_TRUE(put.has_value()) << put.error().describe();
  EXPECT_EQ(put->status, 413) << put->body;
  // The image still waits for its data; nothing was kept.
  EXPECT_EQ(call(a, "GET", "/v1/images/" + name).body["state"], "pending");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(qiaod_->dir() + "/state/images", ec)) {
    ADD_FAILURE() << "left in the work dir: " << entry.path();
  }
  auto del = call(a, "DELETE", "/v1/images/" + name);
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
}

TEST_F(ImagesTest, QiaoctlStreamsAnImageAndManagesVolumes) {
  const auto& op = qiaod_->identity("op-a", "operator", {"ta"});
  const std::string name = "cli-" + suffix_;
  const std::string data = rawImage("QIAO-CLI", 3);
  writeFile(work_ + "/cli.img", data);

  auto made = qiaod_->qiaoctl(op, {"image", "create", name, "--file", work_ + "/cli.img",
                                   "--format", "raw", "--wait"});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  EXPECT_NE(made.out.find(sha256Hex(data)), std::string::npos) << made.out;
  auto listed = qiaod_->qiaoctl(op, {"image", "list"});
  EXPECT_NE(listed.out.find(name), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("ready"), std::string::npos) << listed.out;

  // A refused import: the exit status says so, and the image is not there.
  run({"qemu-img", "create", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw",
       work_ + "/evil.qcow2", "8M"});
  auto evil = qiaod_->qiaoctl(op, {"image", "create", "evil-" + suffix_, "--file",
                                   work_ + "/evil.qcow2", "--wait"});
  EXPECT_EQ(evil.exit_code, 1) << evil.out << evil.err;
  EXPECT_NE(evil.err.find("backing file"), std::string::npos) << evil.err;

  const std::string vol = "clivol-" + suffix_;
  auto v = qiaod_->qiaoctl(op, {"volume", "create", vol, "--size-gib", "1", "--iops", "300",
                                "--wait"});
  ASSERT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("available"), std::string::npos) << v.out;
  auto grown = qiaod_->qiaoctl(op, {"volume", "resize", vol, "--size-gib", "2", "--wait"});
  ASSERT_EQ(grown.exit_code, 0) << grown.out << grown.err;
  auto vl = qiaod_->qiaoctl(op, {"volume", "list"});
  EXPECT_NE(vl.out.find(vol), std::string::npos) << vl.out;
  EXPECT_NE(vl.out.find("2Gi"), std::string::npos) << vl.out;
  auto shrink = qiaod_->qiaoctl(op, {"volume", "resize", vol, "--size-gib", "1"});
  EXPECT_EQ(shrink.exit_code, 1);
  EXPECT_NE(shrink.err.find("only grow"), std::string::npos) << shrink.err;

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"volume", "delete", vol, "--wait"},
        std::vector<std::string>{"image", "delete", name, "--wait"}}) {
    auto r = qiaod_->qiaoctl(op, args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("deleted"), std::string::npos) << r.out;
  }
  auto a = as("op-a");
  expectNothingLeft(a, "ta", name);
}

}  // namespace
}  // namespace qiao::testing
