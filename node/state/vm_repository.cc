#include "node/state/vm_repository.h"

#include <algorithm>

#include "node/state/database.h"
#include "node/state/mirror.h"
#include "node/state/queries.h"
#include "node/state/table.h"
#include "node/state/task_repository.h"

namespace qiao {
namespace {

const Table<VmRecord> kVms{"vms",
                           {
                               field("tenant", &VmRecord::tenant),
                               field("name", &VmRecord::name),
                               field("uuid", &VmRecord::uuid),
                               field("spec_json", &VmRecord::spec_json),
                               field("state", &VmRecord::state),
                               field("last_error", &VmRecord::last_error),
                               createdAt(&VmRecord::created_at),
                               updatedAt(&VmRecord::updated_at),
                               field("host", &VmRecord::host),
                           }};

std::string hexEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

bool hexDecode(const std::string& s, std::string* out) {
  if (s.size() % 2 != 0) return false;
  out->clear();
  auto v = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < s.size(); i += 2) {
    int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

VmRecord readVm(const Statement& q) { return kVms.read(q); }

Error noVm(const std::string& tenant, const std::string& name) {
  return Error{ErrorCode::kNotFound, "store", "no vm " + tenant + "/" + name, ""};
}

VmRecord probe(const std::string& tenant, const std::string& name) {
  VmRecord vm;
  vm.tenant = tenant;
  vm.name = name;
  return vm;
}

}  // namespace

VmRepository::VmRepository(Database& db, TaskRepository& tasks)
    : db_(db),
      tasks_(tasks),
      mirror_(std::make_unique<Mirror<VmRecord>>(db, kVms, tenantNameKey<VmRecord>())) {}

VmRepository::~VmRepository() = default;

void VmRepository::share(std::unique_ptr<RecordTable> table, const std::string& host) {
  mirror_->share(std::move(table),
                 [host](const VmRecord& vm) { return vm.host.empty() || vm.host == host; });
}

Replicated& VmRepository::replica() { return *mirror_; }

Status VmRepository::create(const VmRecord& vm, const TaskRecord& task) {
  auto made = mirror_->update(
      vm,
      [&](std::optional<VmRecord>& current) -> Status {
        if (current) {
          return makeError(ErrorCode::kConflict, "store",
                           "vm " + vm.tenant + "/" + vm.name + " already exists");
        }
        current = vm;
        return {};
      },
      [&] { return tasks_.insertLocked(task); });
  if (!made) return std::unexpected(made.error());
  return {};
}

Result<VmRecord> VmRepository::get(const std::string& tenant, const std::string& name) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kVms.select() + " WHERE tenant = ? AND name = ?");
  q.bind(tenant).bind(name);
  auto step = q.step();
  if (step == Statement::Step::kRow) return readVm(q);
  if (step == Statement::Step::kDone) return std::unexpected(noVm(tenant, name));
  return std::unexpected(db_.error("get vm"));
}

Result<std::vector<VmRecord>> VmRepository::findByName(const std::string& name,
                                                       const std::vector<std::string>& tenants) {
  std::lock_guard lock(db_.mutex());
  std::string sql = kVms.select() + " WHERE name = ?";
  if (!tenants.empty()) sql += " AND tenant IN (" + placeholders(tenants.size()) + ")";
  sql += " ORDER BY tenant";
  Statement q(db_, sql);
  q.bind(name).bindAll(tenants);
  return readAll<VmRecord>(db_, q, readVm, "find vms");
}

Result<VmPage> VmRepository::list(const VmFilter& filter) {
  std::lock_guard lock(db_.mutex());
  std::string sql = kVms.select() + " WHERE 1";
  std::vector<std::string> args;
  appendScope(filter.tenants, filter.state, &sql, &args);
  for (const auto& [key, value] : filter.labels) {
    // json_each: the key is compared as a value, never spliced into a JSON path.
    sql +=
        " AND EXISTS (SELECT 1 FROM json_each(vms.spec_json, '$.labels') WHERE "
        "json_each.key = ? AND json_each.value = ?)";
    args.push_back(key);
    args.push_back(value);
  }
  if (!filter.page_token.empty()) {
    std::string decoded;
    auto slash = std::string::npos;
    if (!hexDecode(filter.page_token, &decoded) ||
        (slash = decoded.find('/')) == std::string::npos) {
      return makeError(ErrorCode::kInvalidArgument, "store", "page_token is not valid");
    }
    sql += " AND (tenant, name) > (?, ?)";
    args.push_back(decoded.substr(0, slash));
    args.push_back(decoded.substr(slash + 1));
  }
  int limit = std::max(1, filter.limit);
  sql += " ORDER BY tenant, name LIMIT " + std::to_string(limit + 1);
  Statement q(db_, sql);
  q.bindAll(args);
  auto items = readAll<VmRecord>(db_, q, readVm, "list vms");
  if (!items) return std::unexpected(items.error());
  VmPage page;
  page.items = std::move(*items);
  if (static_cast<int>(page.items.size()) > limit) {
    page.items.pop_back();
    const auto& last = page.items.back();
    page.next_page_token = hexEncode(last.tenant + "/" + last.name);
  }
  return page;
}

Result<std::vector<VmRecord>> VmRepository::all() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kVms.select() + " ORDER BY tenant, name");
  return readAll<VmRecord>(db_, q, readVm, "all vms");
}

Status VmRepository::upsert(const VmRecord& vm) {
  auto put = mirror_->update(vm, [&](std::optional<VmRecord>& current) -> Status {
    current = vm;
    return {};
  });
  if (!put) return std::unexpected(put.error());
  return {};
}

Status VmRepository::setSpec(const std::string& tenant, const std::string& name,
                             const std::string& spec_json) {
  auto set = mirror_->update(probe(tenant, name), [&](std::optional<VmRecord>& vm) -> Status {
    if (!vm) return std::unexpected(noVm(tenant, name));
    vm->spec_json = spec_json;
    return {};
  });
  if (!set) return std::unexpected(set.error());
  return {};
}

Status VmRepository::setState(const std::string& tenant, const std::string& name, VmState state,
                              const std::string& last_error) {
  auto set = mirror_->update(probe(tenant, name), [&](std::optional<VmRecord>& vm) -> Status {
    if (!vm) return std::unexpected(noVm(tenant, name));
    vm->state = state;
    vm->last_error = last_error;
    return {};
  });
  if (!set) return std::unexpected(set.error());
  return {};
}

Status VmRepository::remove(const std::string& tenant, const std::string& name) {
  auto gone = mirror_->update(probe(tenant, name), [](std::optional<VmRecord>& vm) -> Status {
    vm.reset();
    return {};
  });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

Result<std::map<std::string, int>> VmRepository::countByState() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT state, COUNT(*) FROM vms GROUP BY state");
  std::map<std::string, int> out;
  Statement::Step step;
  while ((step = q.step()) == Statement::Step::kRow) {
    out[q.text(0)] = static_cast<int>(q.integer(1));
  }
  if (step != Statement::Step::kDone) return std::unexpected(db_.error("count vms"));
  return out;
}

}  // namespace qiao
