// Networks, their ports and security groups of cluster members (node/state/network_repository.h,
// security_group_repository.h) on MemoryCeph: a network is the cluster's but carried (numbered)
// per host, segment ids and addresses are given out by RADOS whatever a member's cache knows,
// OpenFlow numbers are each host's own, a group in use or a network with ports stays, and a
// change whose local step fails is taken back out of the cluster.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/unit/node/state/mirror_fixture.h"

namespace qiao {
namespace {

constexpr std::pair<int64_t, int64_t> kRange{1000, 1100};

class NetworkMirrorTest : public MirrorFixture {
 protected:
  void SetUp() override {
    MirrorFixture::SetUp();
    a_ = open("a.db", "10.0.0.1", "a");
    b_ = open("b.db", "10.0.0.2", "b");
    ASSERT_TRUE(a_.replicator->syncNow());
    ASSERT_TRUE(b_.replicator->syncNow());
  }

  // A store of its own whose networks, ports and groups are the cluster's.
  Member open(const std::string& file, const std::string& ip, const std::string& host) {
    Member m = openStore(file, ip);
    m.store->networks().share(table(m, "networks"), table(m, "segments"), host);
    m.store->ports().share(table(m, "ports"), host);
    m.store->groups().share(table(m, "groups"));
    replicate(m, {&m.store->networks().replica(), &m.store->ports().replica(),
                  &m.store->groups().replica()});
    return m;
  }

  static NetworkRecord network(const std::string& name, int64_t segment = 0, bool dhcp = true) {
    NetworkRecord n;
    n.tenant = "t1";
    n.name = name;
    n.uuid = "net-" + name;
    n.type = "vxlan";
    n.segment_id = segment;
    n.subnet = "10.0.0.0/24";
    n.gateway = "10.0.0.1";
    n.dhcp = dhcp;
    n.dhcp_ip = "10.0.0.2";
    n.dhcp_mac = "02:00:00:00:00:02";
    return n;
  }
  // Port `id` (its uuid, tap name and VM) of `host` with address 10.0.0.<last>.
  static PortRecord port(const NetworkRecord& net, const std::string& id, int last,
                         const std::string& host, const std::string& groups = R"(["default"])") {
    PortRecord p;
    p.uuid = "port-" + id;
    p.tenant = net.tenant;
    p.network = net.uuid;
    p.vm = "vm-" + id;
    p.vm_name = id;
    p.name = "qt-" + id;
    p.ip = "10.0.0." + std::to_string(last);
    char mac[32];
    std::snprintf(mac, sizeof mac, "02:00:00:00:00:%02x", last);
    p.mac = mac;
    p.host = host;
    p.security_groups = groups;
    return p;
  }
  static SecurityGroupRecord group(const std::string& name, const std::string& rules = "[]") {
    return {"t1", name, "sg-" + name, rules, "", ""};
  }

  // The network uuid a segment claim names, or "" when there is no claim.
  std::string claimant(int64_t segment) {
    const std::string text = shared("segments", "vxlan/" + std::to_string(segment));
    if (text.empty()) return "";
    return nlohmann::json::parse(text).value("network", "");
  }
  static NetworkRecord made(Member& m, NetworkRecord n) {
    auto created = m.store->networks().create(n, nullptr, kRange);
    EXPECT_TRUE(created.has_value()) << created.error().describe();
    return n;
  }
  static PortRecord plugged(Member& m, PortRecord p) {
    auto created = m.store->ports().create(p);
    EXPECT_TRUE(created.has_value()) << created.error().describe();
    return p;
  }
  static std::vector<PortRecord> portsOn(Member& m, const NetworkRecord& n) {
    auto ports = m.store->ports().ofNetwork(n.uuid);
    EXPECT_TRUE(ports.has_value());
    return ports ? *ports : std::vector<PortRecord>{};
  }
};

TEST_F(NetworkMirrorTest, ANetworkIsTheClustersAndEachHostNumbersWhatItCarries) {
  made(a_, network("one"));
  NetworkRecord two = made(a_, network("two"));
  EXPECT_EQ(two.local_id, 2);
  EXPECT_EQ(two.dhcp_ofport, kFirstOfport + 1);

  b_.replicator->step();
  auto seen = b_.store->networks().get("t1", "two");
  ASSERT_TRUE(seen) << seen.error().describe();
  EXPECT_EQ(seen->uuid, "net-two");
  EXPECT_EQ(seen->segment_id, two.segment_id);
  EXPECT_EQ(seen->dhcp_ip, "10.0.0.2");
  // B does not carry it: none of B's numbers.
  EXPECT_EQ(seen->local_id, 0);
  EXPECT_EQ(seen->dhcp_ofport, 0);
  EXPECT_TRUE(b_.store->networks().carried()->empty());

  // B carries it with numbers of its own (its first), whatever A gave it.
  NetworkRecord carried = *seen;
  ASSERT_TRUE(b_.store->networks().carry(carried));
  EXPECT_EQ(carried.local_id, 1);
  EXPECT_EQ(carried.dhcp_ofport, kFirstOfport);
  seen = b_.store->networks().get("t1", "two");
  EXPECT_EQ(seen->local_id, 1);
  EXPECT_EQ(seen->dhcp_ofport, kFirstOfport);
  EXPECT_EQ(*b_.store->networks().carried(), std::vector<std::string>{"net-two"});
  EXPECT_EQ(b_.store->networks().get("t1", "one")->local_id, 0);
  // Carried already: the same numbers again.
  NetworkRecord again = *seen;
  again.local_id = 0;
  ASSERT_TRUE(b_.store->networks().carry(again));
  EXPECT_EQ(again.local_id, 1);
  EXPECT_EQ(again.dhcp_ofport, kFirstOfport);
  // A's numbers are A's.
  EXPECT_EQ(a_.store->networks().get("t1", "two")->local_id, 2);
  EXPECT_EQ(a_.store->networks().get("t1", "two")->dhcp_ofport, kFirstOfport + 1);

  ASSERT_TRUE(b_.store->networks().drop("net-two"));
  EXPECT_EQ(b_.store->networks().get("t1", "two")->local_id, 0);
  EXPECT_TRUE(b_.store->networks().carried()->empty());
}

TEST_F(NetworkMirrorTest, SegmentsAreClaimedInTheClusterWhateverACacheKnows) {
  NetworkRecord on_a = made(a_, network("na"));
  EXPECT_EQ(on_a.segment_id, 1000);
  // B has not heard of A's network: the claim in RADOS sends it to the next segment.
  NetworkRecord on_b = made(b_, network("nb"));
  EXPECT_EQ(on_b.segment_id, 1001);
  EXPECT_EQ(claimant(1000), "net-na");
  EXPECT_EQ(claimant(1001), "net-nb");

  // Asked for by number, a claimed segment is refused, and the claim stays its holder's.
  NetworkRecord same = network("nc", 1000);
  auto refused = b_.store->networks().create(same, nullptr, kRange);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("segment"), std::string::npos) << refused.error().message;
  EXPECT_EQ(shared("networks", "t1/nc"), "");
  EXPECT_EQ(claimant(1000), "net-na");
  EXPECT_EQ(*b_.store->networks().carried(), std::vector<std::string>{"net-nb"});

  // Once A's network is gone, its segment is free again.
  ASSERT_TRUE(a_.store->networks().remove("t1", "na"));
  EXPECT_EQ(claimant(1000), "");
  NetworkRecord retaken = made(b_, network("nc", 1000));
  EXPECT_EQ(retaken.segment_id, 1000);
  EXPECT_EQ(claimant(1000), "net-nc");

  // A claim its network left behind (a create cut short) is taken over, by number or as the
  // lowest free one.
  RecordTable segments(*a_.rados, pool_.table("segments"));
  auto stale = [](const std::string& name) {
    return nlohmann::json{{"network", "net-ghost-" + name}, {"key", "t1/ghost-" + name}}.dump();
  };
  ASSERT_TRUE(segments.insert("vxlan/1050", stale("1")));
  ASSERT_TRUE(segments.insert("vxlan/1002", stale("2")));
  NetworkRecord by_number = made(b_, network("nd", 1050));
  EXPECT_EQ(by_number.segment_id, 1050);
  EXPECT_EQ(claimant(1050), "net-nd");
  NetworkRecord lowest = made(b_, network("ne"));
  EXPECT_EQ(lowest.segment_id, 1002);
  EXPECT_EQ(claimant(1002), "net-ne");
  // A claim whose key names a network of another uuid (the name made again since) is stale too.
  made(a_, network("nf", 1060));
  ASSERT_TRUE(segments.insert("vxlan/1061",
                              nlohmann::json{{"network", "net-old-nf"}, {"key", "t1/nf"}}.dump()));
  made(a_, network("ng", 1061));
  EXPECT_EQ(claimant(1061), "net-ng");
}

// A create writes its claim, then its network: a claim whose network is not there yet may be
// one another member is making right now. Taken over, both networks would have the segment.
TEST_F(NetworkMirrorTest, AClaimWhoseNetworkIsInTheMakingIsNotTakenOver) {
  using namespace std::chrono;
  RecordTable segments(*a_.rados, pool_.table("segments"));
  auto claim = [](const std::string& name, system_clock::time_point at) {
    return nlohmann::json{{"network", "net-" + name},
                          {"key", "t1/" + name},
                          {"at", duration_cast<milliseconds>(at.time_since_epoch()).count()}}
        .dump();
  };
  // A's create of t1/x has claimed 1000 and not yet written its network.
  ASSERT_TRUE(segments.insert("vxlan/1000", claim("x", system_clock::now())));
  NetworkRecord same = network("y", 1000);
  auto refused = b_.store->networks().create(same, nullptr, kRange);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(claimant(1000), "net-x");
  EXPECT_EQ(shared("networks", "t1/y"), "");
  // Asked for the lowest free one, B moves on.
  EXPECT_EQ(made(b_, network("z")).segment_id, 1001);
  EXPECT_EQ(claimant(1000), "net-x");

  // A claim long left behind is taken over.
  ASSERT_TRUE(segments.insert("vxlan/1050", claim("old", system_clock::now() - hours(1))));
  EXPECT_EQ(made(b_, network("w", 1050)).segment_id, 1050);
  EXPECT_EQ(claimant(1050), "net-w");
}

TEST_F(NetworkMirrorTest, AnAddressIsGivenOutOnceAcrossTheCluster) {
  NetworkRecord n = made(a_, network("net"));
  // B knows the network, not yet its ports.
  ASSERT_TRUE(b_.store->networks().replica().refresh());
  plugged(a_, port(n, "pa", 3, "a"));
  PortRecord same = port(n, "pb", 3, "b");
  auto second = b_.store->ports().create(same);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find("address"), std::string::npos) << second.error().message;
  EXPECT_NE(shared("ports", "net-net/10.0.0.3").find(R"("uuid":"port-pa")"), std::string::npos)
      << shared("ports", "net-net/10.0.0.3");
  EXPECT_TRUE(portsOn(b_, n).empty());

  b_.replicator->step();
  auto seen = portsOn(b_, n);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].uuid, "port-pa");
  EXPECT_EQ(seen[0].host, "a");
  EXPECT_EQ(seen[0].ofport, kFirstOfport + 1);  // A's number (its DHCP server has the first)
}

TEST_F(NetworkMirrorTest, OpenflowNumbersAreEachHostsOwn) {
  NetworkRecord n = made(a_, network("net", 0, /*dhcp=*/false));
  PortRecord p1 = plugged(a_, port(n, "p1", 3, "a"));
  PortRecord p2 = plugged(a_, port(n, "p2", 4, "a"));
  EXPECT_EQ(p1.ofport, kFirstOfport);
  EXPECT_EQ(p2.ofport, kFirstOfport + 1);

  b_.replicator->step();
  ASSERT_EQ(portsOn(b_, n).size(), 2u);
  // A's ports take none of B's numbers.
  PortRecord p3 = plugged(b_, port(n, "p3", 5, "b"));
  EXPECT_EQ(p3.ofport, kFirstOfport);

  // Nor B's ports A's: A's first number, freed, is A's to give again.
  ASSERT_TRUE(a_.store->ports().remove(p1.uuid));
  a_.replicator->step();
  ASSERT_EQ(portsOn(a_, n).size(), 2u);
  PortRecord p4 = plugged(a_, port(n, "p4", 6, "a"));
  EXPECT_EQ(p4.ofport, kFirstOfport);

  // Both hosts' ports with one number sit side by side in each cache.
  b_.replicator->step();
  std::map<std::string, std::pair<std::string, int64_t>> on_b;
  for (const auto& p : portsOn(b_, n)) on_b[p.uuid] = {p.host, p.ofport};
  EXPECT_EQ(on_b, (std::map<std::string, std::pair<std::string, int64_t>>{
                      {"port-p2", {"a", kFirstOfport + 1}},
                      {"port-p3", {"b", kFirstOfport}},
                      {"port-p4", {"a", kFirstOfport}}}));
}

TEST_F(NetworkMirrorTest, GroupsAreTheClustersAndOneInUseStays) {
  int changes_a = 0, changes_b = 0;
  a_.store->groups().replica().onChange([&] { ++changes_a; });
  b_.store->groups().replica().onChange([&] { ++changes_b; });
  ASSERT_TRUE(a_.store->groups().create(group("web")));
  ASSERT_TRUE(a_.store->groups().create(group("db")));
  b_.replicator->step();
  EXPECT_EQ(changes_b, 2);  // once for each record B's cache followed
  EXPECT_EQ(changes_a, 0);  // A's cache has them already
  auto seen = b_.store->groups().get("t1", "web");
  ASSERT_TRUE(seen) << seen.error().describe();
  EXPECT_EQ(seen->uuid, "sg-web");

  // A port of A names "web": B, knowing it, refuses to remove the group.
  NetworkRecord n = made(a_, network("net"));
  plugged(a_, port(n, "pa", 3, "a", R"(["default","web"])"));
  b_.replicator->step();
  changes_a = 0;
  changes_b = 0;
  auto refused = b_.store->groups().remove("t1", "web");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(shared("groups", "t1/web"), "");
  EXPECT_TRUE(b_.store->groups().get("t1", "web"));
  // Taken out of RADOS and put back: neither cache has anything to follow.
  a_.replicator->step();
  b_.replicator->step();
  EXPECT_TRUE(a_.store->groups().get("t1", "web"));
  EXPECT_EQ(changes_a, 0);
  EXPECT_EQ(changes_b, 0);

  // One no port names goes, on both.
  ASSERT_TRUE(b_.store->groups().remove("t1", "db"));
  EXPECT_EQ(shared("groups", "t1/db"), "");
  a_.replicator->step();
  EXPECT_EQ(a_.store->groups().get("t1", "db").error().code, ErrorCode::kNotFound);

  // A changes a group: B's listener hears of it once B's cache follows; A's own change is no
  // change of A's cache to follow.
  changes_a = 0;
  changes_b = 0;
  const std::string rules = R"([{"direction":"ingress","protocol":"tcp","port_min":80}])";
  ASSERT_TRUE(a_.store->groups().setRules("t1", "web", rules));
  a_.replicator->step();
  EXPECT_EQ(changes_a, 0);
  b_.replicator->step();
  EXPECT_EQ(changes_b, 1);
  EXPECT_EQ(b_.store->groups().get("t1", "web")->rules_json, rules);
  b_.replicator->step();
  EXPECT_EQ(changes_b, 1);
}

TEST_F(NetworkMirrorTest, ANetworkWithPortsStays) {
  NetworkRecord n = made(a_, network("net"));
  b_.replicator->step();
  PortRecord on_b = plugged(b_, port(n, "pb", 3, "b"));
  a_.replicator->step();

  auto refused = a_.store->networks().remove("t1", "net");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("ports"), std::string::npos) << refused.error().message;
  EXPECT_NE(shared("networks", "t1/net"), "");
  EXPECT_EQ(claimant(n.segment_id), "net-net");
  EXPECT_EQ(*a_.store->networks().carried(), std::vector<std::string>{"net-net"});
  b_.replicator->step();
  EXPECT_TRUE(b_.store->networks().get("t1", "net"));

  // Its last port gone, it goes, and so does its claim.
  ASSERT_TRUE(b_.store->ports().remove(on_b.uuid));
  a_.replicator->step();
  ASSERT_TRUE(a_.store->networks().remove("t1", "net"));
  EXPECT_EQ(shared("networks", "t1/net"), "");
  EXPECT_EQ(claimant(n.segment_id), "");
  EXPECT_TRUE(a_.store->networks().carried()->empty());
  b_.replicator->step();
  EXPECT_EQ(b_.store->networks().get("t1", "net").error().code, ErrorCode::kNotFound);
}

TEST_F(NetworkMirrorTest, AFailedLocalStepTakesTheClustersRecordBack) {
  NetworkRecord n = made(a_, network("net"));
  plugged(a_, port(n, "pa", 3, "a"));
  b_.replicator->step();

  // A free address in the cluster, but B's cache has a port with the MAC on the network.
  PortRecord clash = port(n, "pb", 9, "b");
  clash.mac = "02:00:00:00:00:03";
  auto refused = b_.store->ports().create(clash);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("MAC"), std::string::npos) << refused.error().message;
  EXPECT_EQ(shared("ports", "net-net/10.0.0.9"), "");
  a_.replicator->step();
  auto on_a = portsOn(a_, n);
  ASSERT_EQ(on_a.size(), 1u);
  EXPECT_EQ(on_a[0].uuid, "port-pa");

  // A network whose task cannot be recorded on B: neither it nor its claim stays.
  const TaskRecord t = task("t-1", TaskKind::kNetworkCreate, "network/x");
  ASSERT_TRUE(b_.store->tasks().create(t));
  NetworkRecord failed = network("x", 1077);
  ASSERT_FALSE(b_.store->networks().create(failed, &t, kRange));
  EXPECT_EQ(shared("networks", "t1/x"), "");
  EXPECT_EQ(claimant(1077), "");
  EXPECT_TRUE(b_.store->networks().carried()->empty());
  a_.replicator->step();
  EXPECT_EQ(a_.store->networks().get("t1", "x").error().code, ErrorCode::kNotFound);
  made(a_, network("y", 1077));  // the segment is free
}

}  // namespace
}  // namespace qiao
