// Request fields, parsed once for both surfaces: a WebSocket message and a REST body are JSON
// objects; a REST path and query string become an object of text values. `Args` gives typed access
// to either, every failure a bad_request naming the field, so each op's request struct
// (requests.h) is filled by one parse whichever surface it came from.
//
// Pure functions and values; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json_text.h"

namespace presenced::protocol {

namespace json = boost::json;

Error BadRequest(std::string why);

// Parses a request (a WebSocket message or a REST body) as one JSON object nested at most
// kMaxJsonDepth deep. Strings are valid UTF-8 (Boost.JSON checks). With `finite`, a number out of
// a double's range is refused too; without, the caller checks (CheckNumbers) once it knows the id.
Result<json::object> ParseRequestObject(std::string_view text, bool finite = true);
// Refuses a number too large for a double (1e400, a 5,000-digit integer): Boost.JSON reads it as
// infinity, which would be stored and sent on as text no JSON parser accepts.
Status CheckNumbers(const json::object& o);

// A name a client sends (channel, clientId, device): not empty, at most `max` bytes, valid UTF-8.
// Names reach other users' frames, so one that is not valid UTF-8 is refused at the edge.
Status CheckName(std::string_view value, std::string_view what, size_t max);

// An integer as JSON may spell it (1, 1.0), within what a double holds exactly.
std::optional<int64_t> AsInt(const json::value& v);
// A JSON value as JsonText (null: the empty JsonText).
JsonText ToJsonText(const json::value& v);

// Typed access to the fields of one request object. With `text_values` (a REST path and query),
// integers and booleans may also be given as text ("10", "true").
class Args {
 public:
  explicit Args(const json::object& o, bool text_values = false) : o_(o), text_(text_values) {}

  bool Has(std::string_view key) const { return o_.contains(key); }
  Result<std::string_view> String(std::string_view key) const;
  Result<std::optional<std::string_view>> OptString(std::string_view key) const;
  Result<std::optional<int64_t>> OptInt(std::string_view key) const;
  Result<bool> OptBool(std::string_view key, bool fallback) const;
  Result<std::vector<std::string>> StringArray(std::string_view key) const;
  Result<std::optional<std::vector<std::string>>> OptStringArray(std::string_view key) const;
  // The field as JsonText, when present (null is present: the empty JsonText).
  std::optional<JsonText> OptJson(std::string_view key) const;
  const json::value* Get(std::string_view key) const { return o_.if_contains(key); }
  const json::object& object() const { return o_; }

 private:
  const json::object& o_;
  bool text_;
};

}  // namespace presenced::protocol
