// One mapping between an enum's values and the names that the database, the API's JSON, the
// cluster's records and the events carry: specialise EnumNames<E> with the table, then
// toString and parseEnum read it. The names are part of the API: they never change.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace qiao {

// Specialised for each named enum: `static constexpr std::array<std::pair<E,
// std::string_view>, N> kNames`, and optionally `static constexpr E kUnreadable` (see
// unreadableValue).
template <typename E>
struct EnumNames;

template <typename E>
concept NamedEnum = requires { EnumNames<E>::kNames; };

// The name of a value (a std::string, so that messages can add it to their text); "unknown"
// for a value the table leaves without a name (TaskKind::kUnknown, read from a row that a newer
// version wrote).
template <NamedEnum E>
std::string toString(E value) {
  for (const auto& [e, name] : EnumNames<E>::kNames) {
    if (e == value) return std::string(name);
  }
  return "unknown";
}

// The value a name stands for; nullopt for a name that is none of them.
template <NamedEnum E>
constexpr std::optional<E> parseEnum(std::string_view name) {
  for (const auto& [e, n] : EnumNames<E>::kNames) {
    if (n == name) return e;
  }
  return std::nullopt;
}

// The value a stored name that is none of E's is read as: the table's kUnreadable when it has
// one, else its first value.
template <NamedEnum E>
constexpr E unreadableValue() {
  if constexpr (requires { EnumNames<E>::kUnreadable; }) {
    return EnumNames<E>::kUnreadable;
  } else {
    return EnumNames<E>::kNames.front().first;
  }
}

}  // namespace qiao
