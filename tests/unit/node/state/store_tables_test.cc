// The store's tables beyond VMs, tasks, the journal and the audit log: images, networks,
// ports (with the renumbering of a VM's NICs when one is unplugged), security groups, quotas
// and certificates. Each on a temporary file: every field round-trips, names conflict within a
// tenant only, missing rows answer kNotFound, a tenant's listing shows none of another's rows,
// lists are ordered, and the invariants store.h promises hold.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "node/state/record_json.h"
#include "node/state/store.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;

class StoreTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qiao-store-tables-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    path_ = (dir_ / "qiao.db").string();
    auto s = Store::open(path_);
    ASSERT_TRUE(s.has_value()) << s.error().describe();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  static TaskRecord task(const std::string& id, const std::string& tenant,
                         const std::string& target) {
    TaskRecord t;
    t.id = id;
    t.kind = TaskKind::kImageImport;
    t.tenant = tenant;
    t.target = target;
    t.identity = "qiao://c/user/u";
    t.state = TaskState::kQueued;
    return t;
  }
  static ImageRecord image(const std::string& tenant, const std::string& name) {
    ImageRecord i;
    i.tenant = tenant;
    i.name = name;
    i.uuid = "img-" + tenant + "-" + name;
    i.owner = tenant.empty() ? "admin" : tenant;
    i.state = ImageState::kPending;
    i.source = "upload";
    i.backend = "local";
    i.object = "image-" + i.uuid;
    return i;
  }
  static NetworkRecord network(const std::string& tenant, const std::string& name, int64_t segment,
                               const std::string& type = "vxlan") {
    NetworkRecord n;
    n.tenant = tenant;
    n.name = name;
    n.uuid = "net-" + tenant + "-" + name;
    n.type = type;
    n.segment_id = segment;
    n.subnet = "10.0.0.0/24";
    n.gateway = "10.0.0.1";
    n.dhcp_ip = "10.0.0.2";
    n.dhcp_mac = "02:00:00:00:00:02";
    n.state = NetworkState::kCreating;
    return n;
  }
  static PortRecord port(const NetworkRecord& net, const std::string& vm, int64_t nic,
                         const std::string& ip) {
    PortRecord p;
    p.uuid = "port-" + vm + "-" + std::to_string(nic) + "-" + ip;
    p.tenant = net.tenant;
    p.network = net.uuid;
    p.vm = "vm-uuid-" + vm;
    p.vm_name = vm;
    p.nic = nic;
    p.name = "tap-" + vm + "-" + std::to_string(nic);
    p.ip = ip;
    // Unique per address: 02:00:<ip's octets>.
    std::string mac = "02:00";
    std::string octet;
    for (char c : ip + ".") {
      if (c == '.') {
        char buf[4];
        std::snprintf(buf, sizeof buf, ":%02x", std::stoi(octet) & 0xff);
        mac += buf;
        octet.clear();
      } else {
        octet += c;
      }
    }
    p.mac = mac;
    return p;
  }
  static SecurityGroupRecord group(const std::string& tenant, const std::string& name,
                                   const std::string& rules = "[]") {
    return {tenant, name, "sg-" + tenant + "-" + name, rules, "", ""};
  }
  // A network made in the store, with its filled numbers.
  NetworkRecord made(NetworkRecord n) {
    auto created = store_->networks().create(n, nullptr);
    EXPECT_TRUE(created.has_value()) << created.error().describe();
    return n;
  }
  PortRecord plugged(PortRecord p) {
    auto created = store_->ports().create(p);
    EXPECT_TRUE(created.has_value()) << created.error().describe();
    return p;
  }
  std::vector<PortRecord> portsOf(const std::string& vm_name) {
    auto ports = store_->ports().ofVm("vm-uuid-" + vm_name);
    EXPECT_TRUE(ports.has_value());
    return ports ? *ports : std::vector<PortRecord>{};
  }

  fs::path dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

template <typename Record>
std::vector<std::string> keys(const Result<std::vector<Record>>& rows) {
  std::vector<std::string> out;
  if (!rows) {
    ADD_FAILURE() << rows.error().describe();
    return out;
  }
  for (const auto& r : *rows) out.push_back(r.tenant + "/" + r.name);
  return out;
}

// ---- Images -------------------------------------------------------------------------------

TEST_F(StoreTablesTest, AnImageKeepsEveryFieldAndItsTaskIsRecordedWithIt) {
  ImageRecord in = image("acme", "ubuntu");
  in.state = ImageState::kImporting;
  in.source = "path:/srv/images/ubuntu.qcow2";
  in.declared_format = "qcow2";
  in.format = "qcow2";
  in.virtual_size = int64_t{10} << 30;
  in.file_size = int64_t{700} << 20;
  in.sha256 = std::string(64, 'a');
  in.backend = "rbd";
  in.object = "image-u1";
  in.last_error = "it's \"quoted\"; -- 名字";
  TaskRecord t = task("t-img", "acme", "image/ubuntu");
  ASSERT_TRUE(store_->images().create(in, &t));
  auto got = store_->images().get("acme", "ubuntu");
  ASSERT_TRUE(got.has_value()) << got.error().describe();
  EXPECT_EQ(got->tenant, in.tenant);
  EXPECT_EQ(got->name, in.name);
  EXPECT_EQ(got->uuid, in.uuid);
  EXPECT_EQ(got->owner, in.owner);
  EXPECT_EQ(got->state, in.state);
  EXPECT_EQ(got->source, in.source);
  EXPECT_EQ(got->declared_format, in.declared_format);
  EXPECT_EQ(got->format, in.format);
  EXPECT_EQ(got->virtual_size, in.virtual_size);
  EXPECT_EQ(got->file_size, in.file_size);
  EXPECT_EQ(got->sha256, in.sha256);
  EXPECT_EQ(got->backend, in.backend);
  EXPECT_EQ(got->object, in.object);
  EXPECT_EQ(got->last_error, in.last_error);
  EXPECT_FALSE(got->created_at.empty()) << "the store stamps the row";
  EXPECT_EQ(got->created_at, got->updated_at);
  auto recorded = store_->tasks().get("t-img");
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->target, "image/ubuntu");
  EXPECT_EQ(recorded->state, TaskState::kQueued);
  // Without a task, only the image.
  ASSERT_TRUE(store_->images().create(image("acme", "plain"), nullptr));
  EXPECT_TRUE(store_->images().get("acme", "plain").has_value());
}

TEST_F(StoreTablesTest, ImageNamesConflictWithinATenantOnlyAndARefusedImageLeavesNoTask) {
  ASSERT_TRUE(store_->images().create(image("acme", "os"), nullptr));
  ImageRecord again = image("acme", "os");
  again.uuid = "another-uuid";
  TaskRecord t = task("t-refused", "acme", "image/os");
  auto refused = store_->images().create(again, &t);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("acme/os already exists"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(store_->tasks().get("t-refused").error().code, ErrorCode::kNotFound)
      << "the task of a refused image must not exist";
  EXPECT_EQ(store_->images().get("acme", "os")->uuid, "img-acme-os") << "the first one is kept";
  // The same name in another tenant, and in the public catalog, is another image.
  EXPECT_TRUE(store_->images().create(image("globex", "os"), nullptr));
  EXPECT_TRUE(store_->images().create(image("", "os"), nullptr));
  auto public_again = store_->images().create(image("", "os"), nullptr);
  ASSERT_FALSE(public_again.has_value());
  EXPECT_EQ(public_again.error().code, ErrorCode::kConflict);
  EXPECT_NE(public_again.error().message.find("(public) os"), std::string::npos)
      << public_again.error().message;
}

TEST_F(StoreTablesTest, AnImageWhoseTaskCannotBeRecordedIsNotRecordedEither) {
  ASSERT_TRUE(store_->tasks().create(task("t-dup", "acme", "image/first")));
  TaskRecord dup = task("t-dup", "acme", "image/second");
  auto refused = store_->images().create(image("acme", "second"), &dup);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(store_->images().get("acme", "second").error().code, ErrorCode::kNotFound)
      << "image and task are one transaction";
}

TEST_F(StoreTablesTest, ImagesAreListedByTenantThenNameAndNeverAcrossTenants) {
  for (const auto& [tenant, name] : std::vector<std::pair<std::string, std::string>>{
           {"globex", "b"}, {"acme", "z"}, {"", "public"}, {"acme", "a"}, {"globex", "a"}}) {
    ASSERT_TRUE(store_->images().create(image(tenant, name), nullptr));
  }
  EXPECT_EQ(keys(store_->images().list({})),
            (std::vector<std::string>{"/public", "acme/a", "acme/z", "globex/a", "globex/b"}));
  EXPECT_EQ(keys(store_->images().list({"acme"})), (std::vector<std::string>{"acme/a", "acme/z"}));
  EXPECT_EQ(keys(store_->images().list({"acme", ""})),
            (std::vector<std::string>{"/public", "acme/a", "acme/z"}))
      << "\"\" is the public catalog, listed only when asked for";
  EXPECT_EQ(keys(store_->images().list({"acme", "globex"}, "a")),
            (std::vector<std::string>{"acme/a", "globex/a"}));
  EXPECT_TRUE(store_->images().list({"nobody"})->empty());
  // Another tenant's image is not found through this one.
  EXPECT_EQ(store_->images().get("acme", "b").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->images().get("globex", "b")->tenant, "globex");
  EXPECT_EQ(store_->images().get("", "public")->name, "public");
  EXPECT_EQ(store_->images().get("acme", "").error().code, ErrorCode::kNotFound)
      << "an empty name finds nothing, not the tenant's first image";
}

TEST_F(StoreTablesTest, AnImageUpdateWritesItsOutcomeAndNothingElse) {
  ImageRecord in = image("acme", "os");
  in.declared_format = "raw";
  ASSERT_TRUE(store_->images().create(in, nullptr));
  ImageRecord up = in;
  up.state = ImageState::kReady;
  up.format = "qcow2";
  up.virtual_size = 1 << 30;
  up.file_size = 1 << 20;
  up.sha256 = std::string(64, 'f');
  up.last_error = "probe said qcow2";
  // Not written by an update: identity, origin and placement.
  up.uuid = "changed";
  up.owner = "changed";
  up.source = "path:/changed";
  up.declared_format = "iso";
  up.backend = "rbd";
  up.object = "changed";
  ASSERT_TRUE(store_->images().update(up));
  auto got = store_->images().get("acme", "os");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, ImageState::kReady);
  EXPECT_EQ(got->format, "qcow2");
  EXPECT_EQ(got->virtual_size, 1 << 30);
  EXPECT_EQ(got->file_size, 1 << 20);
  EXPECT_EQ(got->sha256, std::string(64, 'f'));
  EXPECT_EQ(got->last_error, "probe said qcow2");
  EXPECT_EQ(got->uuid, in.uuid);
  EXPECT_EQ(got->owner, in.owner);
  EXPECT_EQ(got->source, in.source);
  EXPECT_EQ(got->declared_format, "raw");
  EXPECT_EQ(got->backend, in.backend);
  EXPECT_EQ(got->object, in.object);
  EXPECT_GE(got->updated_at, got->created_at);
  // Only that tenant's image changed.
  ImageRecord missing = image("globex", "os");
  auto not_found = store_->images().update(missing);
  ASSERT_FALSE(not_found.has_value());
  EXPECT_EQ(not_found.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->images().get("globex", "os").error().code == ErrorCode::kNotFound);
}

TEST_F(StoreTablesTest, AnImageDeleteIsIdempotentAndTouchesOneTenant) {
  ASSERT_TRUE(store_->images().create(image("acme", "os"), nullptr));
  ASSERT_TRUE(store_->images().create(image("globex", "os"), nullptr));
  ASSERT_TRUE(store_->images().create(image("", "os"), nullptr));
  ASSERT_TRUE(store_->images().remove("acme", "os"));
  ASSERT_TRUE(store_->images().remove("acme", "os"));  // idempotent
  ASSERT_TRUE(store_->images().remove("acme", "never-was"));
  EXPECT_EQ(store_->images().get("acme", "os").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys(store_->images().list({})), (std::vector<std::string>{"/os", "globex/os"}));
  // The name is free again.
  EXPECT_TRUE(store_->images().create(image("acme", "os"), nullptr));
}

// ---- Networks -----------------------------------------------------------------------------

TEST_F(StoreTablesTest, ANetworkKeepsEveryFieldAndGetsItsNumbersFromTheStore) {
  NetworkRecord in = network("acme", "front", 5001);
  in.dns_json = R"(["1.1.1.1","9.9.9.9"])";
  in.mtu = 1450;
  in.last_error = "none yet";
  in.local_id = 77;      // filled by the store, whatever the caller says
  in.dhcp_ofport = 999;  // likewise when dhcp is on
  TaskRecord t = task("t-net", "acme", "network/front");
  t.kind = TaskKind::kNetworkCreate;
  ASSERT_TRUE(store_->networks().create(in, &t));
  EXPECT_EQ(in.local_id, 1) << "the first local id";
  EXPECT_EQ(in.dhcp_ofport, kFirstOfport) << "the first ofport Qiao gives out";
  auto got = store_->networks().get("acme", "front");
  ASSERT_TRUE(got.has_value()) << got.error().describe();
  EXPECT_EQ(got->tenant, "acme");
  EXPECT_EQ(got->name, "front");
  EXPECT_EQ(got->uuid, in.uuid);
  EXPECT_EQ(got->local_id, 1);
  EXPECT_EQ(got->type, "vxlan");
  EXPECT_EQ(got->segment_id, 5001);
  EXPECT_EQ(got->subnet, in.subnet);
  EXPECT_EQ(got->gateway, in.gateway);
  EXPECT_TRUE(got->dhcp);
  EXPECT_EQ(got->dns_json, in.dns_json);
  EXPECT_EQ(got->mtu, 1450);
  EXPECT_EQ(got->dhcp_ip, in.dhcp_ip);
  EXPECT_EQ(got->dhcp_mac, in.dhcp_mac);
  EXPECT_EQ(got->dhcp_ofport, kFirstOfport);
  EXPECT_EQ(got->state, NetworkState::kCreating);
  EXPECT_EQ(got->last_error, "none yet");
  EXPECT_FALSE(got->created_at.empty());
  EXPECT_EQ(store_->tasks().get("t-net")->kind, TaskKind::kNetworkCreate);

  // Without DHCP: no DHCP port is given out, and the flag round-trips as false.
  NetworkRecord plain = network("acme", "back", 5002, "vlan");
  plain.dhcp = false;
  plain.dhcp_ip.clear();
  plain.dhcp_mac.clear();
  ASSERT_TRUE(store_->networks().create(plain, nullptr));
  EXPECT_EQ(plain.local_id, 2);
  EXPECT_EQ(plain.dhcp_ofport, 0);
  auto back = store_->networks().get("acme", "back");
  ASSERT_TRUE(back.has_value());
  EXPECT_FALSE(back->dhcp);
  EXPECT_EQ(back->dhcp_ofport, 0);
  EXPECT_EQ(back->type, "vlan");
  EXPECT_EQ(back->dns_json, "[]");
  EXPECT_EQ(back->mtu, 1500);
}

TEST_F(StoreTablesTest, NetworkNamesConflictPerTenantAndSegmentsPerType) {
  NetworkRecord first = made(network("acme", "front", 100));
  // The same name in the tenant.
  NetworkRecord same_name = network("acme", "front", 200);
  same_name.uuid = "other-uuid";
  TaskRecord t = task("t-refused", "acme", "network/front");
  auto refused = store_->networks().create(same_name, &t);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("acme/front already exists"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(store_->tasks().get("t-refused").error().code, ErrorCode::kNotFound);
  // The same segment of the same type, in any tenant.
  NetworkRecord same_segment = network("globex", "other", 100);
  auto taken = store_->networks().create(same_segment, nullptr);
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code, ErrorCode::kConflict);
  EXPECT_NE(taken.error().message.find("vxlan segment 100 is taken"), std::string::npos)
      << taken.error().message;
  // The same segment of another type, and the same name in another tenant, are fine.
  made(network("globex", "other", 100, "geneve"));
  made(network("globex", "front", 101));
  EXPECT_EQ(keys(store_->networks().list({})),
            (std::vector<std::string>{"acme/front", "globex/front", "globex/other"}));
  auto got = store_->networks().get("acme", "front");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->uuid, first.uuid);
  EXPECT_EQ(got->segment_id, 100);
}

TEST_F(StoreTablesTest, LocalIdsAndOfportsAreUniqueAndTheLowestFreeOnesAreReused) {
  NetworkRecord a = made(network("acme", "a", 1));
  NetworkRecord b = made(network("acme", "b", 2));
  NetworkRecord c = made(network("acme", "c", 3));
  EXPECT_EQ(std::set<int64_t>({a.local_id, b.local_id, c.local_id}), (std::set<int64_t>{1, 2, 3}));
  EXPECT_EQ(std::set<int64_t>({a.dhcp_ofport, b.dhcp_ofport, c.dhcp_ofport}),
            (std::set<int64_t>{kFirstOfport, kFirstOfport + 1, kFirstOfport + 2}));
  // A port takes the next ofport: DHCP ports and VM ports share the host's numbers.
  PortRecord p = plugged(port(a, "web", 0, "10.0.0.10"));
  EXPECT_EQ(p.ofport, kFirstOfport + 3);
  ASSERT_TRUE(store_->networks().remove("acme", "b"));
  NetworkRecord d = made(network("acme", "d", 4));
  EXPECT_EQ(d.local_id, b.local_id) << "a freed local id is given out again";
  EXPECT_EQ(d.dhcp_ofport, b.dhcp_ofport) << "a freed ofport is given out again";
  PortRecord q = plugged(port(a, "web", 1, "10.0.0.11"));
  EXPECT_EQ(q.ofport, kFirstOfport + 4);
  ASSERT_TRUE(store_->ports().remove(p.uuid));
  NetworkRecord e = made(network("acme", "e", 5));
  EXPECT_EQ(e.dhcp_ofport, p.ofport) << "a VM port's freed ofport goes to a DHCP port too";
  EXPECT_EQ(e.local_id, 4);
}

TEST_F(StoreTablesTest, NetworksAreListedByTenantThenNameAndNeverAcrossTenants) {
  made(network("globex", "b", 1));
  made(network("acme", "z", 2));
  made(network("acme", "a", 3));
  made(network("globex", "a", 4));
  EXPECT_EQ(keys(store_->networks().list({})),
            (std::vector<std::string>{"acme/a", "acme/z", "globex/a", "globex/b"}));
  EXPECT_EQ(keys(store_->networks().list({"globex"})),
            (std::vector<std::string>{"globex/a", "globex/b"}));
  EXPECT_EQ(keys(store_->networks().list({}, "a")),
            (std::vector<std::string>{"acme/a", "globex/a"}));
  EXPECT_TRUE(store_->networks().list({"nobody"})->empty());
  EXPECT_EQ(store_->networks().get("acme", "b").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->networks().get("acme", "").error().code, ErrorCode::kNotFound);
  auto segments = store_->networks().segmentsInUse("vxlan");
  ASSERT_TRUE(segments.has_value());
  EXPECT_EQ(*segments, (std::vector<int64_t>{1, 2, 3, 4}));
  made(network("acme", "v", 7, "vlan"));
  EXPECT_EQ(*store_->networks().segmentsInUse("vlan"), (std::vector<int64_t>{7}));
  EXPECT_TRUE(store_->networks().segmentsInUse("geneve")->empty());
}

TEST_F(StoreTablesTest, ANetworkStateChangeWritesStateAndErrorOfThatNetworkOnly) {
  made(network("acme", "n", 1));
  made(network("globex", "n", 2));
  ASSERT_TRUE(store_->networks().setState("acme", "n", NetworkState::kError, "ovs said no"));
  auto got = store_->networks().get("acme", "n");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, NetworkState::kError);
  EXPECT_EQ(got->last_error, "ovs said no");
  EXPECT_GE(got->updated_at, got->created_at);
  EXPECT_EQ(store_->networks().get("globex", "n")->state, NetworkState::kCreating);
  ASSERT_TRUE(store_->networks().setState("acme", "n", NetworkState::kReady));
  EXPECT_EQ(store_->networks().get("acme", "n")->last_error, "") << "the error is cleared";
}

TEST_F(StoreTablesTest, TheStateOfAMissingNetworkCannotBeSet) {
  made(network("acme", "n", 1));
  auto missing = store_->networks().setState("acme", "nope", NetworkState::kReady);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  auto other_tenant = store_->networks().setState("globex", "n", NetworkState::kError, "x");
  ASSERT_FALSE(other_tenant.has_value());
  EXPECT_EQ(other_tenant.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->networks().get("acme", "n")->state, NetworkState::kCreating);
}

TEST_F(StoreTablesTest, ANetworkDeleteIsIdempotentAndANetworkWithPortsStays) {
  NetworkRecord n = made(network("acme", "n", 1));
  PortRecord p = plugged(port(n, "web", 0, "10.0.0.10"));
  auto busy = store_->networks().remove("acme", "n");
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(store_->networks().get("acme", "n").has_value()) << "it still has a port";
  EXPECT_EQ(*store_->networks().carried(), std::vector<std::string>{n.uuid}) << "still here";
  ASSERT_TRUE(store_->ports().remove(p.uuid));
  ASSERT_TRUE(store_->networks().remove("acme", "n"));
  EXPECT_EQ(store_->networks().get("acme", "n").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(store_->networks().remove("acme", "n"));  // idempotent
  ASSERT_TRUE(store_->networks().remove("acme", "never-was"));
  // A port of another tenant's network does not keep this one.
  NetworkRecord mine = made(network("acme", "mine", 2));
  NetworkRecord theirs = made(network("globex", "mine", 3));
  plugged(port(theirs, "db", 0, "10.0.0.20"));
  ASSERT_TRUE(store_->networks().remove("acme", "mine"));
  EXPECT_EQ(store_->networks().get("acme", "mine").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->networks().get("globex", "mine").has_value());
  (void)mine;
}

// ---- Ports --------------------------------------------------------------------------------

TEST_F(StoreTablesTest, APortKeepsEveryFieldAndGetsTheNextOfport) {
  NetworkRecord n = made(network("acme", "n", 1));
  PortRecord in = port(n, "web", 0, "10.0.0.10");
  in.security_groups = R"(["default","web"])";
  in.ofport = 5;  // filled by the store
  ASSERT_TRUE(store_->ports().create(in));
  EXPECT_EQ(in.ofport, n.dhcp_ofport + 1);
  auto ports = store_->ports().ofNetwork(n.uuid);
  ASSERT_TRUE(ports.has_value());
  ASSERT_EQ(ports->size(), 1u);
  const PortRecord& got = ports->front();
  EXPECT_EQ(got.uuid, in.uuid);
  EXPECT_EQ(got.tenant, "acme");
  EXPECT_EQ(got.network, n.uuid);
  EXPECT_EQ(got.vm, "vm-uuid-web");
  EXPECT_EQ(got.vm_name, "web");
  EXPECT_EQ(got.nic, 0);
  EXPECT_EQ(got.name, "tap-web-0");
  EXPECT_EQ(got.mac, in.mac);
  EXPECT_EQ(got.ip, "10.0.0.10");
  EXPECT_EQ(got.ofport, in.ofport);
  EXPECT_FALSE(got.created_at.empty());
  EXPECT_EQ(got.security_groups, R"(["default","web"])");
  // A port made without naming groups is in "default".
  PortRecord plain = plugged(port(n, "web", 1, "10.0.0.11"));
  EXPECT_EQ(portsOf("web").at(1).security_groups, R"(["default"])");
  EXPECT_EQ(plain.ofport, in.ofport + 1);
}

TEST_F(StoreTablesTest, AddressesAndMacsConflictWithinANetworkNamedInTheError) {
  NetworkRecord a = made(network("acme", "a", 1));
  NetworkRecord b = made(network("acme", "b", 2));
  PortRecord first = plugged(port(a, "web", 0, "10.0.0.10"));

  PortRecord same_ip = port(a, "db", 0, "10.0.0.10");
  same_ip.mac = "02:00:00:00:00:99";
  auto ip_taken = store_->ports().create(same_ip);
  ASSERT_FALSE(ip_taken.has_value());
  EXPECT_EQ(ip_taken.error().code, ErrorCode::kConflict);
  EXPECT_NE(ip_taken.error().message.find("address 10.0.0.10 is taken"), std::string::npos)
      << ip_taken.error().message;

  PortRecord same_mac = port(a, "db", 0, "10.0.0.11");
  same_mac.mac = first.mac;
  auto mac_taken = store_->ports().create(same_mac);
  ASSERT_FALSE(mac_taken.has_value());
  EXPECT_EQ(mac_taken.error().code, ErrorCode::kConflict);
  EXPECT_NE(mac_taken.error().message.find("MAC " + first.mac + " is taken"), std::string::npos)
      << mac_taken.error().message;

  // A tap name is the host's; a NIC number is the VM's.
  PortRecord same_tap = port(a, "db", 0, "10.0.0.12");
  same_tap.name = first.name;
  auto tap_taken = store_->ports().create(same_tap);
  ASSERT_FALSE(tap_taken.has_value());
  EXPECT_EQ(tap_taken.error().code, ErrorCode::kConflict);
  PortRecord same_nic = port(b, "web", 0, "10.0.0.13");
  same_nic.name = "tap-web-other";
  auto nic_taken = store_->ports().create(same_nic);
  ASSERT_FALSE(nic_taken.has_value());
  EXPECT_EQ(nic_taken.error().code, ErrorCode::kConflict);

  // The same address and MAC on another network are another port's.
  PortRecord elsewhere = port(b, "db", 0, "10.0.0.10");
  elsewhere.mac = first.mac;
  EXPECT_TRUE(store_->ports().create(elsewhere).has_value());
  auto all = store_->ports().all();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 2u) << "no refused port was recorded";
  // The refusals gave no ofport away for good.
  EXPECT_EQ(elsewhere.ofport, first.ofport + 1);
}

TEST_F(StoreTablesTest, APortNeedsAnExistingNetwork) {
  NetworkRecord ghost = network("acme", "ghost", 1);  // never made
  PortRecord p = port(ghost, "web", 0, "10.0.0.10");
  auto refused = store_->ports().create(p);
  ASSERT_FALSE(refused.has_value());
  // Not found (the caller named a network that is not there), not an internal error.
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound) << refused.error().describe();
  EXPECT_NE(refused.error().message.find(ghost.uuid), std::string::npos) << refused.error().message;
  EXPECT_TRUE(store_->ports().all()->empty());
}

TEST_F(StoreTablesTest, PortsAreListedByVmThenNicAndFilteredByNetworkOrVm) {
  NetworkRecord a = made(network("acme", "a", 1));
  NetworkRecord b = made(network("globex", "b", 2));
  plugged(port(a, "web", 1, "10.0.0.11"));
  plugged(port(b, "db", 0, "10.0.0.20"));
  plugged(port(a, "web", 0, "10.0.0.10"));
  plugged(port(b, "web", 2, "10.0.0.12"));
  auto order = [](const Result<std::vector<PortRecord>>& ports) {
    std::vector<std::string> out;
    if (!ports) {
      ADD_FAILURE() << ports.error().describe();
      return out;
    }
    for (const auto& p : *ports) out.push_back(p.vm_name + "#" + std::to_string(p.nic));
    return out;
  };
  EXPECT_EQ(order(store_->ports().all()),
            (std::vector<std::string>{"db#0", "web#0", "web#1", "web#2"}));
  EXPECT_EQ(order(store_->ports().ofNetwork(a.uuid)), (std::vector<std::string>{"web#0", "web#1"}));
  EXPECT_EQ(order(store_->ports().ofNetwork(b.uuid)), (std::vector<std::string>{"db#0", "web#2"}));
  EXPECT_EQ(order(store_->ports().ofVm("vm-uuid-web")),
            (std::vector<std::string>{"web#0", "web#1", "web#2"}));
  EXPECT_TRUE(store_->ports().ofVm("vm-uuid-nobody")->empty());
  EXPECT_TRUE(store_->ports().ofNetwork("no-such-network")->empty());
}

TEST_F(StoreTablesTest, APortDeleteIsIdempotentAndRenumbersNothing) {
  NetworkRecord n = made(network("acme", "n", 1));
  PortRecord p0 = plugged(port(n, "web", 0, "10.0.0.10"));
  PortRecord p1 = plugged(port(n, "web", 1, "10.0.0.11"));
  ASSERT_TRUE(store_->ports().remove(p0.uuid));
  ASSERT_TRUE(store_->ports().remove(p0.uuid));  // idempotent
  ASSERT_TRUE(store_->ports().remove("no-such-port"));
  auto left = portsOf("web");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].uuid, p1.uuid);
  EXPECT_EQ(left[0].nic, 1) << "a plain delete keeps the other NICs' numbers";
}

TEST_F(StoreTablesTest, UnpluggingANicMovesTheVmsLaterNicsUpOne) {
  NetworkRecord a = made(network("acme", "a", 1));
  NetworkRecord b = made(network("acme", "b", 2));
  std::vector<PortRecord> web;
  for (int nic = 0; nic < 5; ++nic) {
    web.push_back(plugged(port(nic % 2 ? b : a, "web", nic, "10.0.0." + std::to_string(10 + nic))));
  }
  // Another VM's NICs never move.
  std::vector<PortRecord> db;
  for (int nic = 0; nic < 3; ++nic) {
    db.push_back(plugged(port(a, "db", nic, "10.0.0." + std::to_string(50 + nic))));
  }

  ASSERT_TRUE(store_->ports().removeOfNic(web[1]));
  auto after = portsOf("web");
  ASSERT_EQ(after.size(), 4u);
  // NICs 0, 2, 3, 4 are now 0, 1, 2, 3: the indexes of the VM's spec without the unplugged one.
  const std::vector<const PortRecord*> expect = {&web[0], &web[2], &web[3], &web[4]};
  for (size_t i = 0; i < after.size(); ++i) {
    SCOPED_TRACE("nic " + std::to_string(i));
    EXPECT_EQ(after[i].nic, static_cast<int64_t>(i));
    EXPECT_EQ(after[i].uuid, expect[i]->uuid);
    // Nothing else about the port changes: the tap, the address, the OpenFlow port.
    EXPECT_EQ(after[i].name, expect[i]->name);
    EXPECT_EQ(after[i].ip, expect[i]->ip);
    EXPECT_EQ(after[i].mac, expect[i]->mac);
    EXPECT_EQ(after[i].ofport, expect[i]->ofport);
    EXPECT_EQ(after[i].network, expect[i]->network);
  }
  auto others = portsOf("db");
  ASSERT_EQ(others.size(), 3u);
  for (size_t i = 0; i < others.size(); ++i) {
    EXPECT_EQ(others[i].uuid, db[i].uuid);
    EXPECT_EQ(others[i].nic, static_cast<int64_t>(i));
  }

  // Idempotent: the port is gone already, nothing moves again.
  ASSERT_TRUE(store_->ports().removeOfNic(web[1]));
  PortRecord unknown = web[1];
  unknown.uuid = "no-such-port";
  ASSERT_TRUE(store_->ports().removeOfNic(unknown));
  EXPECT_EQ(portsOf("web").size(), 4u);
  EXPECT_EQ(portsOf("web")[1].uuid, web[2].uuid);
  EXPECT_EQ(portsOf("web")[1].nic, 1);

  // The first NIC: every other moves up.
  ASSERT_TRUE(store_->ports().removeOfNic(web[0]));
  after = portsOf("web");
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].uuid, web[2].uuid);
  EXPECT_EQ(after[1].uuid, web[3].uuid);
  EXPECT_EQ(after[2].uuid, web[4].uuid);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].nic, static_cast<int64_t>(i));

  // The last NIC: nothing moves.
  ASSERT_TRUE(store_->ports().removeOfNic(web[4]));
  after = portsOf("web");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].uuid, web[2].uuid);
  EXPECT_EQ(after[0].nic, 0);
  EXPECT_EQ(after[1].uuid, web[3].uuid);
  EXPECT_EQ(after[1].nic, 1);

  // A NIC plugged after the renumbering takes the next index without a conflict.
  PortRecord again = port(a, "web", 2, "10.0.0.30");
  again.name = "tap-web-new";
  EXPECT_TRUE(store_->ports().create(again).has_value());
  EXPECT_EQ(portsOf("web").size(), 3u);
}

// ---- Security groups ----------------------------------------------------------------------

TEST_F(StoreTablesTest, ASecurityGroupKeepsItsFieldsAndItsNameIsTheTenants) {
  const std::string rules =
      R"([{"direction":"ingress","protocol":"tcp","port_min":22,"port_max":22,"cidr":"0.0.0.0/0"}])";
  ASSERT_TRUE(store_->groups().create(group("acme", "ssh", rules)));
  auto got = store_->groups().get("acme", "ssh");
  ASSERT_TRUE(got.has_value()) << got.error().describe();
  EXPECT_EQ(got->tenant, "acme");
  EXPECT_EQ(got->name, "ssh");
  EXPECT_EQ(got->uuid, "sg-acme-ssh");
  EXPECT_EQ(got->rules_json, rules);
  EXPECT_FALSE(got->created_at.empty());
  EXPECT_EQ(got->created_at, got->updated_at);

  auto again = store_->groups().create(group("acme", "ssh"));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_NE(again.error().message.find("acme/ssh already exists"), std::string::npos)
      << again.error().message;
  EXPECT_EQ(store_->groups().get("acme", "ssh")->rules_json, rules) << "the first is kept";
  EXPECT_TRUE(store_->groups().create(group("globex", "ssh")).has_value());
  EXPECT_EQ(store_->groups().get("acme", "nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->groups().get("acme", "").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->groups().get("initech", "ssh").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTablesTest, SecurityGroupsAreListedByTenantThenNameAndNeverAcrossTenants) {
  for (const auto& [tenant, name] : std::vector<std::pair<std::string, std::string>>{
           {"globex", "web"}, {"acme", "web"}, {"acme", "default"}, {"globex", "db"}}) {
    ASSERT_TRUE(store_->groups().create(group(tenant, name)));
  }
  EXPECT_EQ(keys(store_->groups().list({})),
            (std::vector<std::string>{"acme/default", "acme/web", "globex/db", "globex/web"}));
  EXPECT_EQ(keys(store_->groups().list({"acme"})),
            (std::vector<std::string>{"acme/default", "acme/web"}));
  EXPECT_EQ(keys(store_->groups().list({}, "web")),
            (std::vector<std::string>{"acme/web", "globex/web"}));
  EXPECT_TRUE(store_->groups().list({"initech"})->empty());
}

TEST_F(StoreTablesTest, SecurityGroupRulesChangeInOneTenantOnly) {
  ASSERT_TRUE(store_->groups().create(group("acme", "web", "[]")));
  ASSERT_TRUE(store_->groups().create(group("globex", "web", "[]")));
  const std::string rules = R"([{"direction":"ingress","protocol":"icmp"}])";
  ASSERT_TRUE(store_->groups().setRules("acme", "web", rules));
  auto got = store_->groups().get("acme", "web");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rules_json, rules);
  EXPECT_GE(got->updated_at, got->created_at);
  EXPECT_EQ(got->uuid, "sg-acme-web");
  EXPECT_EQ(store_->groups().get("globex", "web")->rules_json, "[]");
  auto missing = store_->groups().setRules("acme", "nope", rules);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTablesTest, ASecurityGroupInUseByAPortOfItsTenantCannotBeDeleted) {
  ASSERT_TRUE(store_->groups().create(group("acme", "web")));
  ASSERT_TRUE(store_->groups().create(group("acme", "webserver")));
  ASSERT_TRUE(store_->groups().create(group("globex", "web")));
  NetworkRecord mine = made(network("acme", "n", 1));
  NetworkRecord theirs = made(network("globex", "n", 2));
  PortRecord in_use = port(mine, "vm1", 0, "10.0.0.10");
  in_use.security_groups = R"(["default","web"])";
  plugged(in_use);
  // globex's port names "webserver": a name of acme's, in another tenant.
  PortRecord other = port(theirs, "vm2", 0, "10.0.0.20");
  other.security_groups = R"(["webserver"])";
  plugged(other);

  auto refused = store_->groups().remove("acme", "web");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("in use"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(store_->groups().get("acme", "web").has_value());
  // "web" in a port's list does not hold "webserver" (names match whole), and another
  // tenant's port holds none of this tenant's groups.
  EXPECT_TRUE(store_->groups().remove("acme", "webserver").has_value());
  EXPECT_TRUE(store_->groups().remove("globex", "web").has_value());
  EXPECT_EQ(store_->groups().get("globex", "web").error().code, ErrorCode::kNotFound);
  // Once the port is gone, the group goes; a second delete finds it gone (kConflict, as
  // documented: delete is not idempotent).
  ASSERT_TRUE(store_->ports().remove(in_use.uuid));
  EXPECT_TRUE(store_->groups().remove("acme", "web").has_value());
  EXPECT_EQ(store_->groups().get("acme", "web").error().code, ErrorCode::kNotFound);
  auto gone = store_->groups().remove("acme", "web");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(store_->groups().list({})->empty());
}

// ---- Quotas -------------------------------------------------------------------------------

TEST_F(StoreTablesTest, AQuotaIsPerTenantAndAPutReplacesIt) {
  auto none = store_->quotas().get("acme");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->quotas().tenants()->empty());
  ASSERT_TRUE(store_->quotas().put("acme", R"({"vms":10,"vcpus":40})"));
  ASSERT_TRUE(store_->quotas().put("globex", R"({"volumes":3})"));
  EXPECT_EQ(*store_->quotas().get("acme"), R"({"vms":10,"vcpus":40})");
  EXPECT_EQ(*store_->quotas().get("globex"), R"({"volumes":3})");
  ASSERT_TRUE(store_->quotas().put("acme", R"({"vms":2})"));
  EXPECT_EQ(*store_->quotas().get("acme"), R"({"vms":2})") << "the whole object is replaced";
  EXPECT_EQ(*store_->quotas().get("globex"), R"({"volumes":3})");
  ASSERT_TRUE(store_->quotas().put("aaa", "{}"));
  EXPECT_EQ(*store_->quotas().tenants(), (std::vector<std::string>{"aaa", "acme", "globex"}));
  EXPECT_EQ(store_->quotas().get("initech").error().code, ErrorCode::kNotFound);
}

// ---- Certificates -------------------------------------------------------------------------

TEST_F(StoreTablesTest, CertificatesAreRevokedBySerialOrByIdentityOnce) {
  ASSERT_TRUE(store_->certificates().record({"0a", "qiao://c/user/alice", "2030-01-01T00:00:00Z"}));
  ASSERT_TRUE(store_->certificates().record({"0b", "qiao://c/user/alice", "2031-01-01T00:00:00Z"}));
  ASSERT_TRUE(store_->certificates().record({"0c", "qiao://c/user/bob", "2030-01-01T00:00:00Z"}));
  auto dup = store_->certificates().record({"0c", "qiao://c/user/eve", "2030-01-01T00:00:00Z"});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);

  auto listed = store_->certificates().list();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].identity, "qiao://c/user/alice");
  EXPECT_EQ((*listed)[2].identity, "qiao://c/user/bob");
  for (const auto& c : *listed) {
    EXPECT_FALSE(c.issued_at.empty());
    EXPECT_TRUE(c.revoked_at.empty());
  }
  // Nothing matches empty keys.
  EXPECT_EQ(*store_->certificates().revoke("", "", "nothing"), 0);
  EXPECT_EQ(*store_->certificates().revoke("0c", "", "compromised"), 1);
  EXPECT_EQ(*store_->certificates().revoke("0c", "", "again"), 0) << "revoked once";
  EXPECT_EQ(*store_->certificates().revoke("", "qiao://c/user/alice", "superseded"), 2);
  listed = store_->certificates().list();
  ASSERT_TRUE(listed.has_value());
  for (const auto& c : *listed) {
    EXPECT_FALSE(c.revoked_at.empty()) << c.serial;
    EXPECT_EQ(c.reason, c.serial == "0c" ? "compromised" : "superseded") << c.serial;
  }
}

// Each state has one name, both ways, and the JSON of a record shows that name (the API's).
template <typename E>
void expectNamesRoundTrip() {
  for (const auto& [value, name] : EnumNames<E>::kNames) {
    EXPECT_EQ(toString(value), name);
    EXPECT_EQ(parseEnum<E>(name), value) << name;
  }
  EXPECT_FALSE(parseEnum<E>("no-such-state").has_value());
}

// Every value of E, from the first to `last`, has exactly one name, and no two share one.
template <typename E>
void expectEveryValueNamedOnce(E last) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(last); ++i) {
    const E value = static_cast<E>(i);
    int count = 0;
    for (const auto& [e, name] : EnumNames<E>::kNames) {
      if (e == value) {
        ++count;
        EXPECT_TRUE(names.insert(name).second) << name << " names two values";
      }
    }
    EXPECT_EQ(count, 1) << "value " << i;
  }
  EXPECT_EQ(names.size(), EnumNames<E>::kNames.size());
}

TEST(RecordStates, EachStateHasOneNameAndTheJsonShowsIt) {
  expectNamesRoundTrip<TaskState>();
  expectNamesRoundTrip<VolumeState>();
  expectNamesRoundTrip<ImageState>();
  expectNamesRoundTrip<NetworkState>();
  expectNamesRoundTrip<VmState>();
  expectNamesRoundTrip<TaskKind>();
  expectNamesRoundTrip<JournalPhase>();
  expectEveryValueNamedOnce(VmState::kNoState);
  expectEveryValueNamedOnce(JournalPhase::kCancelRequested);
  // Every kind but kUnknown (the last) has a name, and a family; kUnknown has neither.
  expectEveryValueNamedOnce(TaskKind::kNetworkDelete);
  for (const auto& [kind, name] : EnumNames<TaskKind>::kNames) {
    auto family = familyOf(kind);
    ASSERT_TRUE(family.has_value()) << name;
    const std::string_view prefix = name.substr(0, name.find('.'));
    EXPECT_EQ(prefix, *family == TaskFamily::kVm       ? "vm"
                      : *family == TaskFamily::kVolume ? "volume"
                      : *family == TaskFamily::kImage  ? "image"
                                                       : "network")
        << name;
  }
  EXPECT_FALSE(familyOf(TaskKind::kUnknown).has_value());
  EXPECT_EQ(toString(TaskKind::kUnknown), "unknown");
  EXPECT_FALSE(parseEnum<TaskKind>("unknown").has_value());
  EXPECT_FALSE(parseEnum<TaskKind>("vm.").has_value());
  EXPECT_FALSE(parseEnum<TaskKind>("VM.CREATE").has_value()) << "names are exact";
  EXPECT_FALSE(parseEnum<VmState>("").has_value());
  EXPECT_FALSE(parseEnum<VmState>("Running").has_value());
  EXPECT_FALSE(parseEnum<VmState>("running ").has_value());
  // A stored name that is none of them: a VM state to be reconciled, a kind that runs nothing;
  // the other enums read their first value.
  EXPECT_EQ(unreadableValue<VmState>(), VmState::kNoState);
  EXPECT_EQ(unreadableValue<TaskKind>(), TaskKind::kUnknown);
  EXPECT_EQ(unreadableValue<JournalPhase>(), JournalPhase::kFailed);
  EXPECT_EQ(unreadableValue<TaskState>(), TaskState::kQueued);
  EXPECT_TRUE(transient(VmState::kCreating) && transient(VmState::kDeleting));
  EXPECT_FALSE(transient(VmState::kRunning) || transient(VmState::kError));
  VmRecord vm;
  vm.state = VmState::kPmSuspended;
  EXPECT_EQ(vmToJson(vm)["state"], "pmsuspended");
  VolumeRecord v;
  v.state = VolumeState::kInUse;
  EXPECT_EQ(volumeToJson(v)["state"], "in-use");
  TaskRecord t;
  t.state = TaskState::kCancelled;
  t.kind = TaskKind::kVmForceStop;
  EXPECT_EQ(taskToJson(t)["state"], "cancelled");
  EXPECT_EQ(taskToJson(t)["kind"], "vm.force-stop");
  ImageRecord i;
  i.state = ImageState::kImporting;
  EXPECT_EQ(imageToJson(i)["state"], "importing");
  NetworkRecord n;
  n.state = NetworkState::kDeleting;
  EXPECT_EQ(networkToJson(n)["state"], "deleting");
}

}  // namespace
}  // namespace qiao
