// The volume API through a real qiaod on the stack's Ceph: create, resize, delete, tenants
// kept apart (in the API and in RBD namespaces), a volume open by a client never deleted,
// bad input refused with nothing made.
#include <gtest/gtest.h>

#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;

constexpr int64_t kGiB = int64_t{1} << 30;

class VolumesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qiaod_ = new Qiaod(stackCephConfig());
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
  }
  ApiClient as(const std::string& who) {
    if (who == "op-a") return qiaod_->client(qiaod_->identity("op-a", "operator", {"ta"}));
    if (who == "op-b") return qiaod_->client(qiaod_->identity("op-b", "operator", {"tb"}));
    return qiaod_->adminClient();
  }
  // POSTs a volume and waits for its task; returns the final task.
  json createVolume(ApiClient& client, const std::string& name, int64_t gib,
                    const std::string& tenant = {}) {
    json spec{{"name", name}, {"size_gib", gib}};
    if (!tenant.empty()) spec["tenant"] = tenant;
    auto r = call(client, "POST", "/v1/volumes", spec.dump());
    EXPECT_EQ(r.status, 202) << r.raw;
    return waitTask(client, r.body.value("id", ""));
  }

  static Qiaod* qiaod_;
  std::string suffix_;
  std::unique_ptr<VolumeDriver> rbd_;
};
Qiaod* VolumesTest::qiaod_ = nullptr;

TEST_F(VolumesTest, CreateResizeDeleteReachCeph) {
  auto a = as("op-a");
  const std::string name = "data-" + suffix_;
  json task = createVolume(a, name, 1);
  ASSERT_EQ(task["state"], "succeeded") << task.dump();
  EXPECT_EQ(task["target"], "volume/" + name);

  auto got = call(a, "GET", "/v1/volumes/" + name);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["state"], "available");
  EXPECT_EQ(got.body["backend"], "rbd");
  EXPECT_EQ(got.body["tenant"], "ta");
  EXPECT_EQ(got.body["size_gib"], 1);

  // In Ceph: in the tenant's namespace, thin, the right size.
  const VolumeId id{"ta", "vol-" + name};
  auto stat = rbd_->stat(id);
  ASSERT_TRUE(stat.has_value()) << stat.error().describe();
  EXPECT_EQ(stat->size_bytes, kGiB);

  auto grow = call(a, "POST", "/v1/volumes/" + name + "/resize", R"({"size_gib": 3})");
  ASSERT_EQ(grow.status, 202) << grow.raw;
  EXPECT_EQ(waitTask(a, grow.body["id"])["state"], "succeeded");
  EXPECT_EQ(rbd_->stat(id)->size_bytes, 3 * kGiB);
  EXPECT_EQ(call(a, "GET", "/v1/volumes/" + name).body["size_gib"], 3);

  auto shrink = call(a, "POST", "/v1/volumes/" + name + "/resize", R"({"size_gib": 2})");
  EXPECT_EQ(shrink.status, 400) << shrink.raw;
  EXPECT_NE(shrink.raw.find("only grow"), std::string::npos) << shrink.raw;
  EXPECT_EQ(rbd_->stat(id)->size_bytes, 3 * kGiB);

  auto del = call(a, "DELETE", "/v1/volumes/" + name);
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
  EXPECT_EQ(call(a, "GET", "/v1/volumes/" + name).status, 404);
  auto gone = rbd_->stat(id);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

TEST_F(VolumesTest, TenantsNeitherSeeNorTouchEachOthersVolumes) {
  auto a = as("op-a");
  auto b = as("op-b");
  const std::string name = "shared-" + suffix_;
  ASSERT_EQ(createVolume(a, name, 1)["state"], "succeeded");

  EXPECT_EQ(call(b, "GET", "/v1/volumes/" + name).status, 404);
  EXPECT_EQ(call(b, "DELETE", "/v1/volumes/" + name).status, 404);
  EXPECT_EQ(call(b, "POST", "/v1/volumes/" + name + "/resize", R"({"size_gib": 5})").status, 404);
  auto b_list = call(b, "GET", "/v1/volumes");
  ASSERT_EQ(b_list.status, 200) << b_list.raw;
  for (const auto& v : b_list.body["items"]) {
    EXPECT_NE(v["name"], name) << "tenant b listed tenant a's volume";
  }
  // b may not create in a's tenant.
  auto intrude = call(b, "POST", "/v1/volumes",
                      json({{"name", "x-" + suffix_}, {"tenant", "ta"}, {"size_gib", 1}}).dump());
  EXPECT_EQ(intrude.status, 403) << intrude.raw;

  // The same name in b's tenant is another volume, in another RBD namespace.
  ASSERT_EQ(createVolume(b, name, 2)["state"], "succeeded");
  EXPECT_EQ(rbd_->stat({"ta", "vol-" + name})->size_bytes, kGiB);
  EXPECT_EQ(rbd_->stat({"tb", "vol-" + name})->size_bytes, 2 * kGiB);
  auto in_a = rbd_->list("ta");
  auto in_b = rbd_->list("tb");
  ASSERT_TRUE(in_a && in_b);
  EXPECT_NE(std::find(in_a->begin(), in_a->end(), "vol-" + name), in_a->end());
  EXPECT_NE(std::find(in_b->begin(), in_b->end(), "vol-" + name), in_b->end());

  // The admin sees both and must say which one it means.
  auto admin = as("admin");
  auto ambiguous = call(admin, "GET", "/v1/volumes/" + name);
  EXPECT_EQ(ambiguous.status, 409) << ambiguous.raw;
  EXPECT_EQ(call(admin, "GET", "/v1/volumes/" + name + "?tenant=tb").body["size_gib"], 2);

  for (auto* c : {&a, &b}) {
    auto del = call(*c, "DELETE", "/v1/volumes/" + name);
    ASSERT_EQ(del.status, 202) << del.raw;
    EXPECT_EQ(waitTask(*c, del.body["id"])["state"], "succeeded");
  }
}

TEST_F(VolumesTest, AVolumeOpenByAClientIsNotDeletedAndTheAnswerNamesIt) {
  auto a = as("op-a");
  const std::string name = "busy-" + suffix_;
  ASSERT_EQ(createVolume(a, name, 1)["state"], "succeeded");
  {
    // This test's own Ceph client opens the volume (as QEMU would) and so watches it.
    auto writer = rbd_->openWriter({"ta", "vol-" + name});
    ASSERT_TRUE(writer.has_value()) << writer.error().describe();
    auto del = call(a, "DELETE", "/v1/volumes/" + name);
    EXPECT_EQ(del.status, 409) << del.raw;
    EXPECT_NE(del.raw.find("client."), std::string::npos) << del.raw;
    EXPECT_TRUE(del.body["error"]["details"].contains("clients")) << del.raw;
    EXPECT_TRUE(rbd_->stat({"ta", "vol-" + name}).has_value());
  }
  auto del = call(a, "DELETE", "/v1/volumes/" + name);
  ASSERT_EQ(del.status, 202) << del.raw;
  EXPECT_EQ(waitTask(a, del.body["id"])["state"], "succeeded");
}

TEST_F(VolumesTest, BadInputIsRefusedAndMakesNothing) {
  auto a = as("op-a");
  const std::vector<std::string> bodies = {
      "not json",
      R"({"name": "ok", "size_gib": 0})",
      R"({"name": "ok", "size_gib": 99999999})",
      R"({"name": "ok", "size_gib": "1"})",
      R"({"name": "a/b", "size_gib": 1})",
      R"({"name": "it's", "size_gib": 1})",
      R"({"name": "UPPER", "size_gib": 1})",
      R"({"name": "ok", "size_gib": 1, "extra": true})",
      R"({"name": "ok", "size_gib": 1, "pool": "other"})",
      R"({"name": "ok", "size_gib": 1, "qos": {"iops": -1}})",
      R"({"name": "ok", "size_gib": 1, "qos": {"burst": 5}})",
      R"({"name": "ok", "name": "ok2", "size_gib": 1})",
      R"([1, 2])",
  };
  auto before = call(a, "GET", "/v1/volumes").body["items"].size();
  auto namespace_before = rbd_->list("ta");
  for (const auto& body : bodies) {
    auto r = call(a, "POST", "/v1/volumes", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.raw;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty()) << body;
  }
  EXPECT_EQ(call(a, "GET", "/v1/volumes").body["items"].size(), before);
  EXPECT_EQ(rbd_->list("ta")->size(), namespace_before->size());
}

}  // namespace
}  // namespace qiao::testing
