// libFuzzer target: what arrives on ovsdb-server's socket - the stream splitter and the message
// parser on arbitrary bytes, and the monitored view fed with whatever an "update" carries. They
// must never crash, hang or leak; the same stream cut into reads of any size must give the
// same texts; whatever the parser accepts must be a well-formed message of its kind that
// survives being written out and read again; an update the view refuses changes nothing, and
// every row it keeps is an object with its _uuid.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "network/ovsdb.h"

namespace {

constexpr size_t kMaxBytes = 1 << 16;
constexpr int kMaxDepth = 32;

void checkMessage(const qiao::OvsdbMessage& m) {
  using Kind = qiao::OvsdbMessage::Kind;
  switch (m.kind) {
    case Kind::kRequest:
      if (m.id.is_null() || !m.params.is_array()) std::abort();
      break;
    case Kind::kNotification:
      if (!m.id.is_null() || !m.params.is_array()) std::abort();
      break;
    case Kind::kResponse:
      if (m.id.is_null() || m.result.is_null() == m.error.is_null()) std::abort();
      break;
  }
  nlohmann::json again = {{"id", m.id}};
  if (m.kind == Kind::kResponse) {
    again["result"] = m.result;
    again["error"] = m.error;
  } else {
    again["method"] = m.method;
    again["params"] = m.params;
  }
  auto reparsed = qiao::parseOvsdbMessage(
      again.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict), kMaxDepth);
  if (!reparsed || reparsed->kind != m.kind || reparsed->id != m.id ||
      reparsed->method != m.method || reparsed->params != m.params ||
      reparsed->result != m.result || reparsed->error != m.error) {
    std::abort();
  }
  if (m.kind == Kind::kNotification && m.params.size() == 2) {
    qiao::OvsdbTableCache view;
    if (!view.apply({{"Port", {{"p0", {{"new", {{"name", "kept"}}}}}}}}, true)) std::abort();
    const bool applied = view.apply(m.params[1], false).has_value();
    if (!applied && view.rows("Port").size() != 1) std::abort();
    if (m.params[1].is_object()) {
      for (const auto& [table, _] : m.params[1].items()) {
        for (const auto& row : view.rows(table)) {
          if (!row.is_object() || !row.contains("_uuid")) std::abort();
        }
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  qiao::JsonStreamSplitter whole(kMaxBytes, kMaxDepth);
  std::vector<std::string> texts;
  const bool whole_ok = whole.feed(stream, &texts).has_value();

  // The read size comes from the input's length, so that corpus files stay plain messages.
  const size_t chunk = 1 + size % 29;
  qiao::JsonStreamSplitter pieces(kMaxBytes, kMaxDepth);
  std::vector<std::string> piece_texts;
  bool pieces_ok = true;
  for (size_t at = 0; at < stream.size() && pieces_ok; at += chunk) {
    pieces_ok = pieces.feed(stream.substr(at, chunk), &piece_texts).has_value();
  }
  if (whole_ok != pieces_ok || texts != piece_texts) std::abort();

  for (const auto& text : texts) {
    if (text.size() > kMaxBytes) std::abort();
    if (auto message = qiao::parseOvsdbMessage(text, kMaxDepth)) checkMessage(*message);
  }
  if (auto message = qiao::parseOvsdbMessage(stream, kMaxDepth)) checkMessage(*message);
  return 0;
}
