// libFuzzer target: one line from a QMP server (QEMU, qemu-storage-daemon, or libvirt's
// passthrough answer) through parseQmpMessage. It must never crash, hang or leak; it must
// refuse a line over the size limit; and whatever it accepts must be a well-formed message of
// its kind that, written out again, parses to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/vm/qmp/qmp_message.h"

namespace {

using nlohmann::json;

constexpr size_t kMaxBytes = 1 << 16;
constexpr int kMaxDepth = 32;

json rebuild(const qiao::QmpMessage& message) {
  if (const auto* g = std::get_if<qiao::QmpGreeting>(&message)) {
    return {{"QMP", {{"version", g->version}, {"capabilities", g->capabilities}}}};
  }
  if (const auto* r = std::get_if<qiao::QmpReturn>(&message)) {
    json out = {{"return", r->value}};
    if (!r->id.is_null()) out["id"] = r->id;
    return out;
  }
  if (const auto* e = std::get_if<qiao::QmpErrorReply>(&message)) {
    json out = {{"error", {{"class", e->error_class}, {"desc", e->desc}}}};
    if (!e->id.is_null()) out["id"] = e->id;
    return out;
  }
  const auto& ev = std::get<qiao::QmpEvent>(message);
  return {{"event", ev.name},
          {"data", ev.data},
          {"timestamp", {{"seconds", ev.seconds}, {"microseconds", ev.microseconds}}}};
}

bool same(const qiao::QmpMessage& a, const qiao::QmpMessage& b) {
  if (a.index() != b.index()) return false;
  return rebuild(a) == rebuild(b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  qiao::QmpLimits limits;
  limits.max_message_bytes = kMaxBytes / 2;
  limits.max_depth = kMaxDepth;
  auto message = qiao::parseQmpMessage(line, limits);
  std::string_view trimmed = line;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) {
    trimmed.remove_suffix(1);
  }
  if (trimmed.size() > limits.max_message_bytes) {
    if (message || message.error().code != qiao::ErrorCode::kPayloadTooLarge) std::abort();
    return 0;
  }
  if (!message) {
    if (message.error().subsystem != "qmp" || message.error().message.empty()) std::abort();
    return 0;
  }
  if (const auto* e = std::get_if<qiao::QmpEvent>(&*message)) {
    if (e->name.empty() || !e->data.is_object() || e->microseconds < -1 ||
        e->microseconds > 999999) {
      std::abort();
    }
  }
  if (const auto* g = std::get_if<qiao::QmpGreeting>(&*message)) {
    if (!g->version.is_object()) std::abort();
  }
  if (const auto* r = std::get_if<qiao::QmpErrorReply>(&*message)) {
    if (qiao::qmpErrorToError("fuzz", *r).subsystem != "qmp") std::abort();
  }
  // Written out again (strictly: what the parser accepted is valid UTF-8), it reads the same.
  const std::string again = rebuild(*message).dump(-1, ' ', false, json::error_handler_t::strict);
  qiao::QmpLimits roomy = limits;
  roomy.max_message_bytes = kMaxBytes * 4;
  auto reparsed = qiao::parseQmpMessage(again, roomy);
  if (!reparsed || !same(*message, *reparsed)) std::abort();
  return 0;
}
