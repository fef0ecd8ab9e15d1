#include "node/state/identity_repositories.h"

#include "node/state/database.h"
#include "node/state/mirror.h"
#include "node/state/table.h"

namespace qiao {
namespace {

// Tenants are stored as a JSON array of DNS labels (no escaping needed, but done anyway).
std::string tenantsToJson(const std::vector<std::string>& tenants) {
  std::string out = "[";
  for (size_t i = 0; i < tenants.size(); ++i) {
    out += i ? ",\"" : "\"";
    for (char c : tenants[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "]";
}

std::vector<std::string> tenantsFromJson(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in = false, esc = false;
  for (char c : text) {
    if (!in) {
      if (c == '"') {
        in = true;
        cur.clear();
      }
      continue;
    }
    if (esc) {
      cur += c;
      esc = false;
    } else if (c == '\\') {
      esc = true;
    } else if (c == '"') {
      out.push_back(cur);
      in = false;
    } else {
      cur += c;
    }
  }
  return out;
}

const Table<Binding> kBindings{
    "bindings",
    {
        field("identity", &Binding::identity),
        field("role", &Binding::role),
        mapped<Binding, std::string>(
            "tenants_json", [](const Binding& b) { return tenantsToJson(b.tenants); },
            [](Binding& b, std::string json) { b.tenants = tenantsFromJson(json); }),
        createdAt(&Binding::created_at),
        field("serial", &Binding::serial),
    }};

const Table<CertificateRecord> kCertificates{
    "certificates",
    {
        field("serial", &CertificateRecord::serial),
        field("identity", &CertificateRecord::identity),
        field("not_after", &CertificateRecord::not_after),
        field("issued_at", &CertificateRecord::issued_at,
              Column<CertificateRecord>::Fill::kCreatedAt),
        field("revoked_at", &CertificateRecord::revoked_at),
        field("reason", &CertificateRecord::reason),
    }};

Mirror<Binding>::Key bindingKey() {
  return {{"identity"},
          [](const Binding& b) { return b.identity; },
          [](const std::string& key) -> std::optional<Binding> {
            if (key.empty()) return std::nullopt;
            Binding b;
            b.identity = key;
            return b;
          }};
}

Error noBinding(const std::string& identity) {
  return Error{ErrorCode::kNotFound, "store", "no binding for " + identity, ""};
}

const Table<QuotaRecord> kQuotas{"quotas",
                                 {
                                     field("tenant", &QuotaRecord::tenant),
                                     field("limits_json", &QuotaRecord::limits_json),
                                     updatedAt(&QuotaRecord::updated_at),
                                 }};

Mirror<QuotaRecord>::Key quotaKey() {
  return {{"tenant"},
          [](const QuotaRecord& q) { return q.tenant; },
          [](const std::string& key) -> std::optional<QuotaRecord> {
            if (key.empty()) return std::nullopt;
            QuotaRecord q;
            q.tenant = key;
            return q;
          }};
}

}  // namespace

BindingRepository::BindingRepository(Database& db)
    : db_(db), mirror_(std::make_unique<Mirror<Binding>>(db, kBindings, bindingKey())) {}

BindingRepository::~BindingRepository() = default;

void BindingRepository::share(std::unique_ptr<RecordTable> table) {
  mirror_->share(std::move(table), [](const Binding&) { return true; });
}

Replicated& BindingRepository::replica() { return *mirror_; }

Status BindingRepository::put(const Binding& binding) {
  auto put = mirror_->update(binding, [&](std::optional<Binding>& current) -> Status {
    current = binding;
    return {};
  });
  if (!put) return std::unexpected(put.error());
  return {};
}

Result<Binding> BindingRepository::get(const std::string& identity) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kBindings.select() + " WHERE identity = ?");
  q.bind(identity);
  auto step = q.step();
  if (step == Statement::Step::kRow) return kBindings.read(q);
  if (step == Statement::Step::kDone) return std::unexpected(noBinding(identity));
  return std::unexpected(db_.error("get binding"));
}

Result<std::vector<Binding>> BindingRepository::list() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kBindings.select() + " ORDER BY identity");
  return readAll<Binding>(
      db_, q, [](const Statement& row) { return kBindings.read(row); }, "list bindings");
}

Status BindingRepository::remove(const std::string& identity) {
  Binding probe;
  probe.identity = identity;
  auto gone = mirror_->update(probe, [&](std::optional<Binding>& current) -> Status {
    if (!current) return std::unexpected(noBinding(identity));
    current.reset();
    return {};
  });
  if (!gone) return std::unexpected(gone.error());
  return {};
}

Status CertificateRepository::record(const CertificateRecord& cert) {
  CertificateRecord fresh = cert;
  fresh.revoked_at.clear();
  fresh.reason.clear();
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kCertificates.insert());
  kCertificates.bindInsert(q, fresh);
  if (q.step() != Statement::Step::kDone) return std::unexpected(db_.error("record certificate"));
  return {};
}

Result<std::vector<CertificateRecord>> CertificateRepository::list() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, kCertificates.select() + " ORDER BY identity, issued_at");
  return readAll<CertificateRecord>(
      db_, q, [](const Statement& row) { return kCertificates.read(row); }, "list certificates");
}

Result<int> CertificateRepository::revoke(const std::string& serial, const std::string& identity,
                                          const std::string& reason) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, std::string("UPDATE certificates SET revoked_at = ") + kSqlNow +
                       ", reason = ? WHERE revoked_at = '' AND (serial = ? OR identity = ?)");
  // An empty serial or identity matches nothing: '' is no certificate's.
  q.bind(reason)
      .bind(serial.empty() ? std::string("\x01") : serial)
      .bind(identity.empty() ? std::string("\x01") : identity);
  if (q.step() != Statement::Step::kDone) {
    return std::unexpected(db_.error("revoke certificates"));
  }
  return db_.changes();
}

QuotaRepository::QuotaRepository(Database& db)
    : db_(db), mirror_(std::make_unique<Mirror<QuotaRecord>>(db, kQuotas, quotaKey())) {}

QuotaRepository::~QuotaRepository() = default;

void QuotaRepository::share(std::unique_ptr<RecordTable> table) {
  mirror_->share(std::move(table), [](const QuotaRecord&) { return true; });
}

Replicated& QuotaRepository::replica() { return *mirror_; }

Result<std::string> QuotaRepository::get(const std::string& tenant) {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT limits_json FROM quotas WHERE tenant = ?");
  q.bind(tenant);
  auto step = q.step();
  if (step == Statement::Step::kRow) return q.text(0);
  if (step == Statement::Step::kDone) {
    return makeError(ErrorCode::kNotFound, "store", "no quota for " + tenant);
  }
  return std::unexpected(db_.error("get quota"));
}

Status QuotaRepository::put(const std::string& tenant, const std::string& limits_json) {
  return update(tenant, [&](const std::string&) { return limits_json; });
}

Status QuotaRepository::update(const std::string& tenant,
                               const std::function<std::string(const std::string&)>& change) {
  QuotaRecord probe;
  probe.tenant = tenant;
  auto put = mirror_->update(probe, [&](std::optional<QuotaRecord>& current) -> Status {
    const std::string limits_json = change(current ? current->limits_json : "");
    current = QuotaRecord{tenant, limits_json, ""};
    return {};
  });
  if (!put) return std::unexpected(put.error());
  return {};
}

Result<std::vector<std::string>> QuotaRepository::tenants() {
  std::lock_guard lock(db_.mutex());
  Statement q(db_, "SELECT tenant FROM quotas ORDER BY tenant");
  return readAll<std::string>(
      db_, q, [](const Statement& row) { return row.text(0); }, "list quotas");
}

}  // namespace qiao
