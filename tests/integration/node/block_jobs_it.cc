// Volume copies as block jobs, through a real qiaod, real QEMU and qemu-storage-daemon and the
// stack's Ceph: a volume no VM runs is copied in a qemu-storage-daemon, one attached to a
// running guest in the guest's QEMU (live); progress is reported; a copy cancelled half way
// leaves the source unchanged and no partial copy; qiaod killed during a copy finds the job
// again after its restart and ends it cleanly. The data is compared by checksum, read behind
// qiaod's back through the test's own Ceph client.
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "base/crypto.h"
#include "storage/volume_driver.h"
#include "tests/integration/harness.h"

namespace qiao::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr size_t kChunk = 4 << 20;

class BlockJobsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qiaod_ = new Qiaod(stackCephConfig());
    qiaod_->start();
    ceph_ = stackCeph().release();
  }
  static void TearDownTestSuite() {
    delete qiaod_;
    qiaod_ = nullptr;
    delete ceph_;
    ceph_ = nullptr;
  }
  void SetUp() override { suffix_ = randomSuffix(); }
  ApiClient admin() { return qiaod_->adminClient(); }

  static VolumeId idOf(const std::string& name, const std::string& pool = {}) {
    return {"ta", "vol-" + name, pool};
  }

  json accepted(ApiClient& c, const std::string& method, const std::string& target,
                const std::string& body = {}) {
    auto r = call(c, method, target, body);
    EXPECT_EQ(r.status, 202) << method << " " << target << ": " << r.raw;
    return r.body;
  }
  json succeeds(ApiClient& c, const std::string& method, const std::string& target,
                const std::string& body = {}) {
    json task = accepted(c, method, target, body);
    if (!task.contains("id")) return json();
    task = waitTask(c, task["id"], seconds(300));
    EXPECT_EQ(task["state"], "succeeded") << method << " " << target << ": " << task.dump();
    return task;
  }
  // A 1 GiB volume with 4 MiB of random data at each of a few offsets (the rest sparse).
  void makeSource(ApiClient& c, const std::string& name) {
    succeeds(c, "POST", "/v1/volumes",
             json{{"name", name}, {"tenant", "ta"}, {"size_gib", 1}}.dump());
    auto writer = ceph_->openWriter(idOf(name));
    ASSERT_TRUE(writer.has_value()) << writer.error().describe();
    std::mt19937_64 random(std::random_device{}());
    std::string data(kChunk, '\0');
    for (int64_t offset :
         {int64_t{0}, int64_t{100} << 20, int64_t{600} << 20, kGiB - int64_t(kChunk)}) {
      for (size_t i = 0; i < data.size(); i += 8) {
        uint64_t v = random();
        std::memcpy(&data[i], &v, 8);
      }
      ASSERT_TRUE((*writer)->write(static_cast<uint64_t>(offset), data.data(), data.size()));
    }
    ASSERT_TRUE((*writer)->finish());
  }
  static std::string checksum(const std::string& name, const std::string& pool = {}) {
    Sha256 hash;
    for (int64_t offset = 0; offset < kGiB; offset += kChunk) {
      auto chunk = ceph_->read(idOf(name, pool), static_cast<uint64_t>(offset), kChunk);
      if (!chunk) return "unreadable: " + chunk.error().describe();
      hash.update(*chunk);
    }
    return hash.finishHex();
  }
  // The qemu-storage-daemons of this qiaod (their pid files are under its state dir).
  static int storageDaemons() {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::ifstream in(entry.path() / "cmdline", std::ios::binary);
      std::string args((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (args.starts_with("qemu-storage-daemon") &&
          args.find(qiaod_->dir()) != std::string::npos) {
        ++n;
      }
    }
    return n;
  }
  // How many times qiaod's log says it followed a copy's job after a restart.
  static int followedJobs() {
    return countOccurrences(readFile(qiaod_->dir() + "/qiaod.log"),
                            "following a block copy begun before");
  }
  // Polls the task until its progress reaches `percent`; the last task JSON.
  json waitProgress(ApiClient& c, const std::string& id, int percent, json* seen_live = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(120);
    json task;
    while (std::chrono::steady_clock::now() < deadline) {
      task = call(c, "GET", "/v1/tasks/" + id).body;
      const std::string message = task.value("message", "");
      if (seen_live != nullptr && message.find("copying") != std::string::npos) {
        *seen_live = message;
      }
      const std::string state = task.value("state", "");
      if (task.value("progress", 0) >= percent || (state != "running" && state != "queued")) {
        return task;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    ADD_FAILURE() << "task " << id << " did not reach " << percent << "%: " << task.dump();
    return task;
  }

  static Qiaod* qiaod_;
  static VolumeDriver* ceph_;
  std::string suffix_;
};
Qiaod* BlockJobsTest::qiaod_ = nullptr;
VolumeDriver* BlockJobsTest::ceph_ = nullptr;

TEST_F(BlockJobsTest, AVolumeNoVmRunsIsCopiedExactlyWithProgress) {
  auto c = admin();
  const std::string src = "src-" + suffix_, dst = "dst-" + suffix_;
  makeSource(c, src);
  const std::string before = checksum(src);

  // 256 MiB/s: about 4 s for 1 GiB, long enough to see progress on the way.
  json task = accepted(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta",
                       json{{"name", dst}, {"bandwidth_mib_s", 256}}.dump());
  ASSERT_TRUE(task.contains("id"));
  EXPECT_EQ(task["kind"], "volume.copy");
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + dst + "?tenant=ta").body["state"], "creating");
  json message;
  json mid = waitProgress(c, task["id"], 30, &message);
  EXPECT_EQ(mid["state"], "running") << mid.dump();
  EXPECT_NE(message.dump().find("copying offline"), std::string::npos) << message.dump();
  EXPECT_EQ(storageDaemons(), 1) << "the copy runs in a qemu-storage-daemon";
  // The source is the task's: it cannot change under the copy.
  EXPECT_EQ(call(c, "DELETE", "/v1/volumes/" + src + "?tenant=ta").status, 409);
  EXPECT_EQ(call(c, "POST", "/v1/volumes/" + src + "/resize?tenant=ta", R"({"size_gib":2})").status,
            409);
  json done = waitTask(c, task["id"], seconds(120));
  ASSERT_EQ(done["state"], "succeeded") << done.dump();

  auto copy = call(c, "GET", "/v1/volumes/" + dst + "?tenant=ta");
  EXPECT_EQ(copy.body["state"], "available") << copy.raw;
  EXPECT_EQ(copy.body["size_bytes"], kGiB);
  EXPECT_EQ(checksum(dst), before);
  EXPECT_EQ(checksum(src), before);
  EXPECT_EQ(storageDaemons(), 0) << "the daemon quits with its copy";

  // Refusals: the name is taken; malformed bodies; tasks that cannot (or no longer) stop.
  EXPECT_EQ(
      call(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta", json{{"name", dst}}.dump()).status,
      409);
  for (const char* bad : {R"({"name":"a\"b"})", R"({"name":"x","pool":"p"})", R"({})",
                          R"({"name":"x","pool":""})", R"({"name":"x","pool":7})",
                          R"({"name":"x","bandwidth_mib_s":-1})", R"([1])"}) {
    EXPECT_EQ(call(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta", bad).status, 400) << bad;
  }
  EXPECT_EQ(call(c, "POST", "/v1/tasks/" + task["id"].get<std::string>() + "/cancel").status, 409);
  // (A volume made in the node's other pool, by a task that cannot be cancelled.)
  json create = accepted(
      c, "POST", "/v1/volumes",
      json{{"name", "other-" + suffix_}, {"tenant", "ta"}, {"size_gib", 1}, {"pool", "qiao-b"}}
          .dump());
  auto refused = call(c, "POST", "/v1/tasks/" + create["id"].get<std::string>() + "/cancel");
  EXPECT_TRUE(refused.status == 409) << refused.raw;
  EXPECT_EQ(waitTask(c, create["id"])["state"], "succeeded");
  EXPECT_TRUE(ceph_->stat(idOf("other-" + suffix_, "qiao-b")).has_value());
  EXPECT_EQ(call(c, "GET", "/v1/volumes/other-" + suffix_ + "?tenant=ta").body["pool"], "qiao-b");
  EXPECT_EQ(call(c, "POST", "/v1/tasks/no-such-task/cancel").status, 404);

  // qiaoctl: the copy with --wait prints the new volume.
  auto op = qiaod_->identity("op-a", "operator", {"ta"});
  auto ctl =
      qiaod_->qiaoctl(op, {"volume", "copy", src, "--to", dst + "b", "--wait", "--tenant", "ta"});
  EXPECT_EQ(ctl.exit_code, 0) << ctl.out << ctl.err;
  EXPECT_NE(ctl.out.find(dst + "b"), std::string::npos) << ctl.out;
  EXPECT_EQ(checksum(dst + "b"), before);

  for (const std::string& v : {src, dst, dst + "b", "other-" + suffix_}) {
    succeeds(c, "DELETE", "/v1/volumes/" + v + "?tenant=ta");
  }
}

TEST_F(BlockJobsTest, ACopyCancelledHalfWayLeavesTheSourceUnchangedAndNoCopy) {
  auto c = admin();
  const std::string src = "src-" + suffix_, dst = "dst-" + suffix_;
  makeSource(c, src);
  const std::string before = checksum(src);
  // 64 MiB/s: 16 s for 1 GiB.
  json task = accepted(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta",
                       json{{"name", dst}, {"bandwidth_mib_s", 64}}.dump());
  ASSERT_TRUE(task.contains("id"));
  const std::string id = task["id"];
  json mid = waitProgress(c, id, 50);
  ASSERT_EQ(mid["state"], "running") << mid.dump();

  // Only an operator of the tenant may cancel it.
  auto viewer = qiaod_->client(qiaod_->identity("view-a", "viewer", {"ta"}));
  EXPECT_EQ(call(viewer, "POST", "/v1/tasks/" + id + "/cancel").status, 403);
  auto other = qiaod_->client(qiaod_->identity("op-b", "operator", {"tb"}));
  EXPECT_EQ(call(other, "POST", "/v1/tasks/" + id + "/cancel").status, 404);
  auto op = qiaod_->identity("op-a", "operator", {"ta"});
  auto ctl = qiaod_->qiaoctl(op, {"task", "cancel", id, "--wait"});
  EXPECT_EQ(ctl.exit_code, 0) << ctl.out << ctl.err;
  EXPECT_NE(ctl.out.find("cancelled"), std::string::npos) << ctl.out;

  json done = call(c, "GET", "/v1/tasks/" + id).body;
  EXPECT_EQ(done["state"], "cancelled") << done.dump();
  EXPECT_LT(done.value("progress", 100), 95) << "it stopped before the end";
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + dst + "?tenant=ta").status, 404);
  auto gone = ceph_->stat(idOf(dst));
  EXPECT_FALSE(gone.has_value()) << "the partial copy is removed from Ceph";
  EXPECT_EQ(checksum(src), before);
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + src + "?tenant=ta").body["state"], "available");
  EXPECT_EQ(storageDaemons(), 0);
  auto journal = qiaod_->admin({"journal", "verify"});
  EXPECT_EQ(journal.exit_code, 0) << journal.out << journal.err;
  succeeds(c, "DELETE", "/v1/volumes/" + src + "?tenant=ta");
}

TEST_F(BlockJobsTest, AnAttachedDiskIsCopiedLiveAndACopyOutlivesAKilledQiaod) {
  if (!testGuestAvailable()) GTEST_SKIP() << "no test guest (scripts/build-test-guest)";
  auto c = admin();
  const std::string vm = "bj-" + suffix_, src = "src-" + suffix_, dst = "dst-" + suffix_;
  makeSource(c, src);
  const std::string before = checksum(src);
  succeeds(c, "POST", "/v1/vms", guestSpec(vm, "ta", "qiao.watchblk=1").dump());
  ASSERT_NE(waitConsole(c, vm, "ta", "QIAO-TEST-GUEST booted").find("booted"), std::string::npos);
  succeeds(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", json{{"volume", src}}.dump());

  // Into the node's other pool.
  json task = accepted(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta",
                       json{{"name", dst}, {"pool", "qiao-b"}, {"bandwidth_mib_s", 64}}.dump());
  ASSERT_TRUE(task.contains("id"));
  const std::string id = task["id"];
  json message;
  waitProgress(c, id, 20, &message);
  EXPECT_NE(message.dump().find("copying live"), std::string::npos) << message.dump();
  EXPECT_EQ(storageDaemons(), 0) << "a live copy runs in the guest's QEMU";
  // The VM and the disk stay as they are under the copy.
  auto stop = call(c, "POST", "/v1/vms/" + vm + "/actions/stop?tenant=ta");
  EXPECT_EQ(stop.status, 409) << stop.raw;
  EXPECT_NE(stop.raw.find(id), std::string::npos) << "the refusal names the copy: " << stop.raw;
  EXPECT_EQ(call(c, "DELETE", "/v1/vms/" + vm + "/disks/" + src + "?tenant=ta").status, 409);

  // qiaod dies; the job goes on in QEMU; the restarted qiaod follows it to its end.
  const int followed = followedJobs();
  qiaod_->kill9();
  std::this_thread::sleep_for(seconds(2));
  qiaod_->start();
  c = admin();
  json done = waitTask(c, id, seconds(180));
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  EXPECT_GT(followedJobs(), followed) << "the job was followed on, not begun again";
  EXPECT_EQ(checksum(dst, "qiao-b"), before);
  EXPECT_FALSE(ceph_->stat(idOf(dst)).has_value()) << "nothing of the copy in the first pool";
  auto copy = call(c, "GET", "/v1/volumes/" + dst + "?tenant=ta");
  EXPECT_EQ(copy.body["state"], "available") << copy.raw;
  EXPECT_EQ(copy.body["pool"], "qiao-b") << copy.raw;
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + src + "?tenant=ta").body["pool"], "qiao");
  // The copy in the other pool is a disk like any: plugged into the same guest.
  succeeds(c, "POST", "/v1/vms/" + vm + "/disks?tenant=ta", json{{"volume", dst}}.dump());
  // The guest ran through all of it with its disk.
  EXPECT_EQ(call(c, "GET", "/v1/vms/" + vm + "?tenant=ta").body["state"], "running");
  EXPECT_EQ(call(c, "GET", "/v1/volumes/" + src + "?tenant=ta").body["attached_vm"], vm);
  auto journal = qiaod_->admin({"journal", "verify"});
  EXPECT_EQ(journal.exit_code, 0) << journal.out << journal.err;

  succeeds(c, "DELETE", "/v1/vms/" + vm + "?tenant=ta&force=true");
  for (const std::string& v : {src, dst}) succeeds(c, "DELETE", "/v1/volumes/" + v + "?tenant=ta");
}

TEST_F(BlockJobsTest, KilledDuringAnOfflineCopyTheDaemonGoesOnAndTheCopyEndsCleanly) {
  auto c = admin();
  const std::string src = "src-" + suffix_, dst = "dst-" + suffix_;
  makeSource(c, src);
  const std::string before = checksum(src);
  json task = accepted(c, "POST", "/v1/volumes/" + src + "/copy?tenant=ta",
                       json{{"name", dst}, {"bandwidth_mib_s", 64}}.dump());
  ASSERT_TRUE(task.contains("id"));
  const std::string id = task["id"];
  waitProgress(c, id, 25);
  const int followed = followedJobs();
  qiaod_->kill9();
  EXPECT_EQ(storageDaemons(), 1) << "the storage daemon outlives qiaod";
  qiaod_->start();
  c = admin();
  json done = waitTask(c, id, seconds(180));
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  EXPECT_GT(followedJobs(), followed) << "the daemon's job was followed on, not begun again";
  EXPECT_EQ(checksum(dst), before);
  EXPECT_EQ(checksum(src), before);
  EXPECT_EQ(storageDaemons(), 0);
  for (const std::string& v : {src, dst}) succeeds(c, "DELETE", "/v1/volumes/" + v + "?tenant=ta");
}

}  // namespace
}  // namespace qiao::testing
