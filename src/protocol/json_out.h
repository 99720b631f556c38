// Small helpers to write JSON text directly into a std::string. Replies and events are built this
// way (rather than through a DOM) so member data, already serialized as JsonText, is spliced in
// as-is and each event is serialized exactly once. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace presenced::protocol {

// Appends `s` as a JSON string literal (quoted, escaped). Invalid UTF-8 is passed through as is;
// all strings reaching here came from parsed (validated) JSON or from the server itself.
void AppendQuoted(std::string& out, std::string_view s);

// Appends `"key":` (with a leading comma unless `first`).
inline void AppendKey(std::string& out, std::string_view key, bool first = false) {
  if (!first) out.push_back(',');
  AppendQuoted(out, key);
  out.push_back(':');
}

inline void AppendInt(std::string& out, int64_t v) { out += std::to_string(v); }
inline void AppendUint(std::string& out, uint64_t v) { out += std::to_string(v); }
inline void AppendBool(std::string& out, bool v) { out += v ? "true" : "false"; }

// Appends a quoted string, or null.
inline void AppendOptional(std::string& out, const std::optional<std::string_view>& v) {
  if (v) {
    AppendQuoted(out, *v);
  } else {
    out += "null";
  }
}
inline void AppendOptionalInt(std::string& out, const std::optional<int64_t>& v) {
  if (v) {
    AppendInt(out, *v);
  } else {
    out += "null";
  }
}

}  // namespace presenced::protocol
