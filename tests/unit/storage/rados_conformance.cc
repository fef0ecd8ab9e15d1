#include "tests/unit/storage/rados_conformance.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace qiao::testing {

using namespace std::chrono_literals;

void RadosConformance::SetUp() {
  world_ = GetParam()();
  ASSERT_NE(world_, nullptr);
  ns_ = "conformance-" + std::to_string(::getpid()) + "-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(ns_.begin(), ns_.end(), '/', '-');
}

void RadosConformance::TearDown() {
  if (world_ == nullptr) return;
  auto c = world_->client();
  auto names = c->listObjects(world_->pool(), ns_);
  if (!names) return;
  for (const auto& name : *names) (void)c->removeObject(object(name));
}

RadosObject RadosConformance::object(const std::string& name) const {
  return {world_->pool(), ns_, name};
}

namespace {

bool blocklisted(RadosCluster& c, const std::string& address) {
  auto list = c.blocklist();
  EXPECT_TRUE(list) << list.error().describe();
  if (!list) return false;
  return std::any_of(list->begin(), list->end(),
                     [&](const BlocklistEntry& e) { return e.address == address; });
}

}  // namespace

TEST_P(RadosConformance, ALockIsExclusiveRenewableAndNamesItsHolder) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 0s));
  auto a_address = a->clientAddress();
  ASSERT_TRUE(a_address);

  auto refused = b->lock(lease, "leader", "b-1", "host b", 0s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find(*a_address), std::string::npos) << refused.error().message;

  auto holders = b->lockers(lease, "leader");
  ASSERT_TRUE(holders) << holders.error().describe();
  ASSERT_EQ(holders->size(), 1u);
  EXPECT_EQ(holders->front().cookie, "a-1");
  EXPECT_EQ(holders->front().address, *a_address);
  EXPECT_TRUE(holders->front().client.starts_with("client."));

  // The holder renews with its cookie; another cookie of the same client is someone else.
  EXPECT_TRUE(a->lock(lease, "leader", "a-1", "host a", 0s));
  EXPECT_EQ(a->lock(lease, "leader", "a-2", "host a", 0s).error().code, ErrorCode::kConflict);
  // Only the holder unlocks; then the lock is free.
  EXPECT_EQ(b->unlock(lease, "leader", "b-1").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(a->unlock(lease, "leader", "a-1"));
  EXPECT_TRUE(b->lockers(lease, "leader")->empty());
  EXPECT_TRUE(b->lock(lease, "leader", "b-1", "host b", 0s));
  EXPECT_TRUE(b->unlock(lease, "leader", "b-1"));
  // Nobody holds a lock on an object never made.
  auto none = a->lockers(object("never-made"), "leader");
  ASSERT_TRUE(none) << none.error().describe();
  EXPECT_TRUE(none->empty());
}

TEST_P(RadosConformance, ALeaseNotRenewedExpires) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 2s));
  EXPECT_EQ(b->lock(lease, "leader", "b-1", "host b", 2s).error().code, ErrorCode::kConflict);
  // Renewed within its time, it holds past the first end.
  world_->pass(1s);
  ASSERT_TRUE(a->lock(lease, "leader", "a-1", "host a", 2s));
  world_->pass(1s);
  EXPECT_EQ(b->lock(lease, "leader", "b-1", "host b", 2s).error().code, ErrorCode::kConflict);
  // Not renewed, it is gone, and another takes it.
  world_->pass(3s);
  EXPECT_TRUE(b->lockers(lease, "leader")->empty());
  EXPECT_TRUE(b->lock(lease, "leader", "b-1", "host b", 2s));
  EXPECT_EQ(a->unlock(lease, "leader", "a-1").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b->unlock(lease, "leader", "b-1"));
}

TEST_P(RadosConformance, AFencedHolderIsCutOffAndItsLockBroken) {
  auto a = world_->client();
  auto b = world_->client();
  const auto lease = object("lease");
  ASSERT_TRUE(a->lock(lease, "vm.web1", "a-1", "host a runs web1", 0s));
  auto a_address = a->clientAddress();
  ASSERT_TRUE(a_address);

  // b fences a, then breaks a's lock and takes it. Once the fence has returned, b's calls
  // carry the map that holds it, and an OSD that handled one of them refuses a.
  ASSERT_TRUE(b->blocklistAdd(*a_address, 600s));
  EXPECT_TRUE(blocklisted(*b, *a_address));
  auto holders = b->lockers(lease, "vm.web1");
  ASSERT_TRUE(holders);
  ASSERT_EQ(holders->size(), 1u);
  ASSERT_TRUE(b->breakLock(lease, "vm.web1", holders->front()));
  EXPECT_TRUE(b->lock(lease, "vm.web1", "b-1", "host b runs web1", 0s));
  auto cut = a->lock(lease, "vm.web1", "a-1", "host a runs web1", 0s);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kUnavailable) << cut.error().describe();
  // Breaking a lock that is no longer there says so.
  EXPECT_EQ(b->breakLock(lease, "vm.web1", holders->front()).error().code, ErrorCode::kNotFound);

  // The fence is lifted once a is known to be gone.
  ASSERT_TRUE(b->blocklistRemove(*a_address));
  EXPECT_FALSE(blocklisted(*b, *a_address));
  EXPECT_EQ(b->blocklistRemove(*a_address).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(b->unlock(lease, "vm.web1", "b-1"));
}

// ---- Objects with omap ------------------------------------------------------------------

namespace {

// What a watch heard, for a test to wait on (the real Ceph calls from its own threads).
class Events {
 public:
  std::function<void(const WatchEvent&)> sink() {
    return [this](const WatchEvent& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
      changed_.notify_all();
    };
  }
  // Waits (bounded) until an event of `kind` has come; true if it did.
  bool waitFor(WatchEvent::Kind kind, std::chrono::seconds timeout = 60s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return std::any_of(events_.begin(), events_.end(),
                         [&](const WatchEvent& e) { return e.kind == kind; });
    });
  }
  std::vector<WatchEvent> all() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<std::string> payloads() {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& e : events_) {
      if (e.kind == WatchEvent::Kind::kNotify) out.push_back(e.payload);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<WatchEvent> events_;
};

OmapWrite setting(std::map<std::string, std::string> entries) {
  OmapWrite w;
  w.set = std::move(entries);
  return w;
}

// The entry's value, "" when absent.
std::string valueOf(RadosCluster& c, const RadosObject& o, const std::string& key) {
  auto page = c.omapGet(o, {key});
  if (!page) return "";
  auto it = page->entries.find(key);
  return it == page->entries.end() ? "" : it->second;
}

// Read, add one, write guarded by the value read; again when another writer came first.
// Returns the number of refusals, or -1 after too many.
int increment(RadosCluster& c, const RadosObject& o) {
  for (int refused = 0; refused < 1000; ++refused) {
    std::string read;
    auto page = c.omapGet(o, {"count"});
    if (page && page->entries.count("count")) read = page->entries.at("count");
    if (!page && page.error().code != ErrorCode::kNotFound) return -1;
    OmapWrite w;
    w.guards = {{"count", read}};
    w.set = {{"count", std::to_string((read.empty() ? 0 : std::stoll(read)) + 1)}};
    auto done = c.omapWrite(o, w);
    if (done) return refused;
    if (done.error().code != ErrorCode::kConflict) return -1;
  }
  return -1;
}

}  // namespace

TEST_P(RadosConformance, ACreatingWriteRefusesAnObjectThatExists) {
  auto c = world_->client();
  const auto o = object("created");
  OmapWrite create = setting({{"a", "1"}});
  create.create = true;
  auto v = c->omapWrite(o, create);
  ASSERT_TRUE(v) << v.error().describe();
  create.set = {{"a", "2"}};
  auto again = c->omapWrite(o, create);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_NE(again.error().message.find("exists"), std::string::npos) << again.error().message;
  auto page = c->omapGet(o, {"a"});
  ASSERT_TRUE(page) << page.error().describe();
  EXPECT_EQ(page->entries, (std::map<std::string, std::string>{{"a", "1"}}));
  EXPECT_EQ(page->version, *v);
  // Creating and requiring the object at once can never pass.
  OmapWrite both = setting({{"b", "1"}});
  both.create = true;
  both.must_exist = true;
  EXPECT_EQ(c->omapWrite(object("both"), both).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(c->omapRead(object("both"), "", "", 10).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, AWriteThatNeedsTheObjectMakesNone) {
  auto c = world_->client();
  const auto o = object("needed");
  OmapWrite w = setting({{"a", "1"}});
  w.must_exist = true;
  auto missing = c->omapWrite(o, w);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound) << missing.error().describe();
  EXPECT_EQ(c->omapRead(o, "", "", 10).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(c->omapGet(o, {"a"}).error().code, ErrorCode::kNotFound);
  auto names = c->listObjects(world_->pool(), ns_);
  ASSERT_TRUE(names) << names.error().describe();
  EXPECT_TRUE(names->empty());
  // Once it exists, the same write passes; an unguarded write makes a missing object.
  ASSERT_TRUE(c->omapWrite(o, setting({{"b", "2"}})));
  ASSERT_TRUE(c->omapWrite(o, w));
  EXPECT_EQ(valueOf(*c, o, "a"), "1");
  EXPECT_EQ(valueOf(*c, o, "b"), "2");
}

TEST_P(RadosConformance, AVersionGuardPassesOnlyOnTheVersionRead) {
  auto a = world_->client();
  auto b = world_->client();
  const auto o = object("versioned");
  auto v1 = a->omapWrite(o, setting({{"a", "1"}}));
  ASSERT_TRUE(v1) << v1.error().describe();
  auto read = b->omapRead(o, "", "", 10);
  ASSERT_TRUE(read) << read.error().describe();
  EXPECT_EQ(read->version, *v1);

  OmapWrite w = setting({{"a", "2"}});
  w.version = *v1;
  auto v2 = b->omapWrite(o, w);
  ASSERT_TRUE(v2) << v2.error().describe();
  EXPECT_NE(*v2, *v1);
  // The other writer still holds v1: refused, nothing written, the version unchanged.
  w.set = {{"a", "3"}, {"z", "1"}};
  auto stale = a->omapWrite(o, w);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_NE(stale.error().message.find("version"), std::string::npos) << stale.error().message;
  auto now = a->omapRead(o, "", "", 10);
  ASSERT_TRUE(now);
  EXPECT_EQ(now->version, *v2);
  EXPECT_EQ(now->entries, (std::map<std::string, std::string>{{"a", "2"}}));
  w.version = now->version;
  EXPECT_TRUE(a->omapWrite(o, w));
  EXPECT_EQ(valueOf(*b, o, "a"), "3");
  // A version guard needs the object.
  EXPECT_EQ(a->omapWrite(object("never-made"), w).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, EntryGuardsRefuseAChangedValueAndApplyNothing) {
  auto c = world_->client();
  const auto o = object("guarded");
  ASSERT_TRUE(c->omapWrite(o, setting({{"a", "1"}, {"b", "2"}, {"c", "3"}})));
  OmapWrite w = setting({{"a", "10"}});
  w.guards = {{"a", "1"}};
  ASSERT_TRUE(c->omapWrite(o, w));
  // The value guarded has changed since.
  w.set = {{"a", "11"}};
  auto stale = c->omapWrite(o, w);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_NE(stale.error().message.find("entry a "), std::string::npos) << stale.error().message;
  // "" guards an absent key.
  OmapWrite absent = setting({{"new", "1"}});
  absent.guards = {{"new", ""}};
  ASSERT_TRUE(c->omapWrite(o, absent));
  auto taken = c->omapWrite(o, absent);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("entry new "), std::string::npos) << taken.error().message;

  // One guard of three fails: no entry is set or removed, the version is unchanged.
  auto before = c->omapRead(o, "", "", 100);
  ASSERT_TRUE(before);
  OmapWrite mixed = setting({{"a", "12"}, {"d", "4"}});
  mixed.remove = {"c"};
  mixed.guards = {{"a", "10"}, {"b", "wrong"}, {"gone", ""}};
  auto refused = c->omapWrite(o, mixed);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_NE(refused.error().message.find("entry b "), std::string::npos) << refused.error().message;
  auto after = c->omapRead(o, "", "", 100);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->entries, before->entries);
  EXPECT_EQ(after->version, before->version);
  // All guards hold: all of it is applied; removing an absent entry is no error.
  mixed.guards[1].value = "2";
  mixed.remove.push_back("never-there");
  ASSERT_TRUE(c->omapWrite(o, mixed));
  EXPECT_EQ(
      c->omapRead(o, "", "", 100)->entries,
      (std::map<std::string, std::string>{{"a", "12"}, {"b", "2"}, {"d", "4"}, {"new", "1"}}));

  // On an object not yet made every entry is absent: "" passes (and makes it), a value fails
  // (and makes nothing).
  OmapWrite fresh = setting({{"x", "1"}});
  fresh.guards = {{"x", ""}};
  fresh.remove = {"y"};
  ASSERT_TRUE(c->omapWrite(object("fresh"), fresh));
  EXPECT_EQ(valueOf(*c, object("fresh"), "x"), "1");
  fresh.guards = {{"x", "1"}};
  auto none = c->omapWrite(object("fresh2"), fresh);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kConflict);
  EXPECT_EQ(c->omapRead(object("fresh2"), "", "", 10).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, TwoClientsRacingAnUpdateLoseNone) {
  auto a = world_->client();
  auto b = world_->client();
  const auto o = object("counter");
  // Both read the entry absent; the first write wins, the second is refused, re-reads, retries.
  OmapWrite first = setting({{"count", "1"}});
  first.guards = {{"count", ""}};
  ASSERT_TRUE(a->omapWrite(o, first));
  auto lost = b->omapWrite(o, first);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, ErrorCode::kConflict);
  EXPECT_EQ(increment(*b, o), 0);
  EXPECT_EQ(valueOf(*a, o, "count"), "2");

  // Two clients, each adding kEach from its own thread: every increment counts.
  constexpr int kEach = 25;
  std::atomic<int> refusals{0}, failures{0};
  auto run = [&](RadosCluster* c) {
    for (int i = 0; i < kEach; ++i) {
      int r = increment(*c, o);
      if (r < 0) {
        ++failures;
        return;
      }
      refusals += r;
    }
  };
  std::thread ta(run, a.get());
  std::thread tb(run, b.get());
  ta.join();
  tb.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(valueOf(*a, o, "count"), std::to_string(2 + 2 * kEach));
  RecordProperty("refused_writes", refusals.load());
}

TEST_P(RadosConformance, AnEpochGuardRefusesAnOlderWriter) {
  auto c = world_->client();
  const auto o = object("fenced");
  auto epochWrite = [](uint64_t epoch, std::string value) {
    OmapWrite w = setting({{"leader", std::move(value)}});
    w.epoch = EpochGuard{"epoch", epoch};
    return w;
  };
  // A new object's epoch is 0: any writer passes and leaves its epoch.
  ASSERT_TRUE(c->omapWrite(o, epochWrite(9, "e9")));
  EXPECT_EQ(c->epochOf(o, "epoch").value_or(0), 9u);
  // Compared as numbers: 10 is newer than 9.
  ASSERT_TRUE(c->omapWrite(o, epochWrite(10, "e10")));
  EXPECT_EQ(c->epochOf(o, "epoch").value_or(0), 10u);
  // An older writer is refused and writes nothing; the same epoch passes again.
  auto old = c->omapWrite(o, epochWrite(9, "e9-late"));
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ErrorCode::kConflict);
  EXPECT_NE(old.error().message.find("epoch"), std::string::npos) << old.error().message;
  EXPECT_EQ(valueOf(*c, o, "leader"), "e10");
  EXPECT_EQ(c->epochOf(o, "epoch").value_or(0), 10u);
  ASSERT_TRUE(c->omapWrite(o, epochWrite(10, "e10-again")));
  EXPECT_EQ(valueOf(*c, o, "leader"), "e10-again");
  // The epoch is one more guard: with an entry guard failing, nothing is stored.
  OmapWrite both = epochWrite(11, "e11");
  both.guards = {{"leader", "e10"}};
  EXPECT_EQ(c->omapWrite(o, both).error().code, ErrorCode::kConflict);
  EXPECT_EQ(c->epochOf(o, "epoch").value_or(0), 10u);
  // The largest epoch there is.
  const uint64_t top = std::numeric_limits<uint64_t>::max();
  ASSERT_TRUE(c->omapWrite(o, epochWrite(top, "top")));
  EXPECT_EQ(c->epochOf(o, "epoch").value_or(0), top);
  EXPECT_EQ(c->omapWrite(o, epochWrite(top - 1, "below")).error().code, ErrorCode::kConflict);

  // An existing object without the xattr holds 0: epoch 0 passes, and each xattr is its own.
  const auto plain = object("plain");
  ASSERT_TRUE(c->omapWrite(plain, setting({{"a", "1"}})));
  auto zero = c->epochOf(plain, "epoch");
  ASSERT_TRUE(zero) << zero.error().describe();
  EXPECT_EQ(*zero, 0u);
  ASSERT_TRUE(c->omapWrite(plain, epochWrite(0, "e0")));
  EXPECT_EQ(c->epochOf(plain, "epoch").value_or(99), 0u);
  ASSERT_TRUE(c->omapWrite(plain, epochWrite(3, "e3")));
  OmapWrite other = setting({{"b", "1"}});
  other.epoch = EpochGuard{"term", 1};
  ASSERT_TRUE(c->omapWrite(plain, other));
  EXPECT_EQ(c->epochOf(plain, "term").value_or(0), 1u);
  EXPECT_EQ(c->epochOf(plain, "epoch").value_or(0), 3u);
  EXPECT_EQ(c->epochOf(object("never-made"), "epoch").error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, OmapReadPagesInKeyOrder) {
  auto c = world_->client();
  const auto o = object("many");
  // 1500 entries under "e/", one before and one after them. More than one OSD read returns
  // (osd_max_omap_entries_per_request is 1024).
  std::map<std::string, std::string> entries{{"d/1", "d"}, {"f/1", "f"}};
  auto key = [](int i) {
    std::string n = std::to_string(i);
    return "e/" + std::string(5 - n.size(), '0') + n;
  };
  for (int i = 0; i < 1500; ++i) entries[key(i)] = "value-" + std::to_string(i);
  auto v = c->omapWrite(o, setting(entries));
  ASSERT_TRUE(v) << v.error().describe();

  auto page = c->omapRead(o, "", "e/", 1000);
  ASSERT_TRUE(page) << page.error().describe();
  EXPECT_EQ(page->version, *v);
  ASSERT_EQ(page->entries.size(), 1000u);
  EXPECT_EQ(page->entries.begin()->first, key(0));
  EXPECT_EQ(page->entries.rbegin()->first, key(999));
  EXPECT_EQ(page->entries.at(key(7)), "value-7");
  EXPECT_TRUE(page->more);
  auto rest = c->omapRead(o, page->entries.rbegin()->first, "e/", 1000);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->entries.size(), 500u);
  EXPECT_EQ(rest->entries.begin()->first, key(1000));
  EXPECT_FALSE(rest->more);
  // Exactly `max` entries of the prefix, a key of another after them: nothing more.
  auto exact = c->omapRead(o, "", "e/", 1500);
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->entries.size(), 1500u);
  EXPECT_FALSE(exact->more);
  // Everything in one call, and the first two.
  auto all = c->omapRead(o, "", "", 5000);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->entries, entries);
  EXPECT_FALSE(all->more);
  auto two = c->omapRead(o, "", "", 2);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->entries, (std::map<std::string, std::string>{{"d/1", "d"}, {key(0), "value-0"}}));
  EXPECT_TRUE(two->more);
  // `after` before the prefix starts at it; after its last key, nothing.
  auto from = c->omapRead(o, "a", "e/", 2);
  ASSERT_TRUE(from);
  EXPECT_EQ(from->entries.begin()->first, key(0));
  EXPECT_EQ(from->entries.size(), 2u);
  EXPECT_TRUE(from->more);
  auto end = c->omapRead(o, key(1499), "e/", 10);
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->entries.empty());
  EXPECT_FALSE(end->more);
  auto d = c->omapRead(o, "", "d/", 1);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->entries.size(), 1u);
  EXPECT_FALSE(d->more);
  auto none = c->omapRead(o, "", "x/", 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->entries.empty());
  EXPECT_FALSE(none->more);
  EXPECT_EQ(c->omapRead(object("never-made"), "", "", 10).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, OmapGetReturnsTheEntriesThatExist) {
  auto c = world_->client();
  const auto o = object("some");
  auto v = c->omapWrite(o, setting({{"a", "1"}, {"b", "2"}}));
  ASSERT_TRUE(v);
  auto page = c->omapGet(o, {"a", "c"});
  ASSERT_TRUE(page) << page.error().describe();
  EXPECT_EQ(page->entries, (std::map<std::string, std::string>{{"a", "1"}}));
  EXPECT_EQ(page->version, *v);
  auto nothing = c->omapGet(o, {});
  ASSERT_TRUE(nothing) << nothing.error().describe();
  EXPECT_TRUE(nothing->entries.empty());
  EXPECT_EQ(nothing->version, *v);
  EXPECT_EQ(c->omapGet(object("never-made"), {"a"}).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(c->omapGet(object("never-made"), {}).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, RemovingAnObjectIsIdempotent) {
  auto c = world_->client();
  const auto o = object("doomed");
  ASSERT_TRUE(c->omapWrite(o, setting({{"a", "1"}})));
  ASSERT_TRUE(c->removeObject(o));
  EXPECT_TRUE(c->removeObject(o));
  EXPECT_TRUE(c->removeObject(object("never-made")));
  EXPECT_EQ(c->omapRead(o, "", "", 10).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(c->listObjects(world_->pool(), ns_)->empty());
  // Made again, it starts empty.
  OmapWrite create = setting({{"b", "1"}});
  create.create = true;
  ASSERT_TRUE(c->omapWrite(o, create));
  EXPECT_EQ(c->omapRead(o, "", "", 10)->entries, (std::map<std::string, std::string>{{"b", "1"}}));
}

TEST_P(RadosConformance, ObjectsAreListedPerNamespace) {
  auto c = world_->client();
  for (const char* name : {"b", "c", "a"})
    ASSERT_TRUE(c->omapWrite(object(name), setting({{"k", "v"}})));
  const RadosObject elsewhere{world_->pool(), ns_ + "-other", "x"};
  ASSERT_TRUE(c->omapWrite(elsewhere, setting({{"k", "v"}})));
  auto here = c->listObjects(world_->pool(), ns_);
  ASSERT_TRUE(here) << here.error().describe();
  EXPECT_EQ(*here, (std::vector<std::string>{"a", "b", "c"}));
  auto there = c->listObjects(world_->pool(), ns_ + "-other");
  ASSERT_TRUE(there);
  EXPECT_EQ(*there, (std::vector<std::string>{"x"}));
  EXPECT_TRUE(c->listObjects(world_->pool(), ns_ + "-empty")->empty());
  EXPECT_TRUE(c->removeObject(elsewhere));
}

TEST_P(RadosConformance, ANotifyReachesEveryWatcherWithItsPayload) {
  auto a = world_->client();
  auto b = world_->client();
  const auto o = object("announced");
  Events heard_a, heard_b;
  // The watch makes the object.
  auto wa = a->watch(o, heard_a.sink());
  ASSERT_TRUE(wa) << wa.error().describe();
  auto made = b->omapRead(o, "", "", 10);
  ASSERT_TRUE(made) << made.error().describe();
  EXPECT_TRUE(made->entries.empty());
  auto wb = b->watch(o, heard_b.sink());
  ASSERT_TRUE(wb) << wb.error().describe();
  EXPECT_TRUE((*wa)->check());

  // notify() returns once every watcher has handled it, its own client's included.
  const std::string payload("changed\0records", 15);
  ASSERT_TRUE(b->notify(o, payload, 10s));
  EXPECT_EQ(heard_a.payloads(), std::vector<std::string>{payload});
  EXPECT_EQ(heard_b.payloads(), std::vector<std::string>{payload});
  ASSERT_TRUE(a->notify(o, "", 10s));
  EXPECT_EQ(heard_a.payloads().size(), 2u);
  EXPECT_EQ(heard_b.payloads().size(), 2u);

  // An unwatched client hears no more.
  wa->reset();
  ASSERT_TRUE(b->notify(o, "third", 10s));
  EXPECT_EQ(heard_a.payloads().size(), 2u);
  EXPECT_EQ(heard_b.payloads().back(), "third");
  for (const auto& e : heard_a.all()) EXPECT_EQ(e.kind, WatchEvent::Kind::kNotify);
  EXPECT_TRUE((*wb)->check());
  wb->reset();
  // Nobody watches: no error. No object: nothing to notify.
  EXPECT_TRUE(b->notify(o, "nobody", 1s));
  EXPECT_EQ(b->notify(object("never-made"), "x", 1s).error().code, ErrorCode::kNotFound);
}

TEST_P(RadosConformance, AWatchBreaksWhenItsClientIsBlocklisted) {
  auto a = world_->client();
  auto b = world_->client();
  const auto o = object("watched");
  Events heard;
  auto w = a->watch(o, heard.sink());
  ASSERT_TRUE(w) << w.error().describe();
  ASSERT_TRUE((*w)->check());
  auto a_address = a->clientAddress();
  ASSERT_TRUE(a_address);
  ASSERT_TRUE(b->blocklistAdd(*a_address, 600s));
  struct Lift {
    RadosCluster& c;
    std::string address;
    ~Lift() { (void)c.blocklistRemove(address); }
  } lift{*b, *a_address};
  // Ceph tells the watcher at once (the OSD drops a blocklisted client's watches with the map
  // that holds the entry); 60 s bounds a slow map.
  EXPECT_TRUE(heard.waitFor(WatchEvent::Kind::kBroken));
  auto broken = (*w)->check();
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, ErrorCode::kUnavailable);
  // Notifies go on without it.
  ASSERT_TRUE(b->notify(o, "after", 5s));
  EXPECT_TRUE(heard.payloads().empty());
}

TEST_P(RadosConformance, AWatchBreaksWhenItsObjectIsRemoved) {
  auto a = world_->client();
  auto b = world_->client();
  const auto o = object("removed");
  Events heard;
  auto w = a->watch(o, heard.sink());
  ASSERT_TRUE(w) << w.error().describe();
  ASSERT_TRUE(b->removeObject(o));
  EXPECT_TRUE(heard.waitFor(WatchEvent::Kind::kBroken));
  EXPECT_EQ((*w)->check().error().code, ErrorCode::kUnavailable);
  // Watched again, the object is made again.
  Events again;
  auto w2 = a->watch(o, again.sink());
  ASSERT_TRUE(w2) << w2.error().describe();
  ASSERT_TRUE(b->notify(o, "back", 5s));
  EXPECT_EQ(again.payloads(), std::vector<std::string>{"back"});
}

}  // namespace qiao::testing
