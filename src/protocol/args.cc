// Args (args.h): request fields from JSON or from a REST path and query; pure.
#include "protocol/args.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>

#include "common/utf8.h"

namespace presenced::protocol {

Error BadRequest(std::string why) { return MakeError(ErrorCode::kBadRequest, std::move(why)); }

namespace {

bool AllNumbersFinite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return std::isfinite(v.get_double());
    case json::kind::array:
      for (const json::value& e : v.get_array()) {
        if (!AllNumbersFinite(e)) return false;
      }
      return true;
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        if (!AllNumbersFinite(kv.value())) return false;
      }
      return true;
    default:
      return true;
  }
}

std::optional<int64_t> ParseDecimal(std::string_view s) {
  int64_t v = 0;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

Result<json::object> ParseRequestObject(std::string_view text, bool finite) {
  json::parse_options opts;
  opts.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return BadRequest("malformed JSON: " + ec.message());
  if (!v.is_object()) return BadRequest("a request must be a JSON object");
  if (finite && !AllNumbersFinite(v)) return BadRequest("a number is out of range");
  return std::move(v.as_object());
}

Status CheckNumbers(const json::object& o) {
  for (const auto& kv : o) {
    if (!AllNumbersFinite(kv.value())) return BadRequest("a number is out of range");
  }
  return Status::Ok();
}

Status CheckName(std::string_view value, std::string_view what, size_t max) {
  if (value.empty()) return BadRequest(std::string(what) + " must not be empty");
  if (value.size() > max) {
    return MakeError(ErrorCode::kTooLarge,
                     std::string(what) + " longer than " + std::to_string(max) + " bytes");
  }
  if (!IsValidUtf8(value)) return BadRequest(std::string(what) + " is not valid UTF-8");
  return Status::Ok();
}

std::optional<int64_t> AsInt(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.as_uint64());
  }
  if (v.is_double()) {
    const double d = v.as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

JsonText ToJsonText(const json::value& v) {
  if (v.is_null()) return JsonText();
  return JsonText::FromSerialized(json::serialize(v));
}

Result<std::string_view> Args::String(std::string_view key) const {
  const json::value* v = o_.if_contains(key);
  if (v == nullptr) return BadRequest("missing field " + std::string(key));
  if (!v->is_string()) return BadRequest(std::string(key) + " must be a string");
  return std::string_view(v->as_string());
}

Result<std::optional<std::string_view>> Args::OptString(std::string_view key) const {
  const json::value* v = o_.if_contains(key);
  if (v == nullptr) return std::optional<std::string_view>();
  if (!v->is_string()) return BadRequest(std::string(key) + " must be a string");
  return std::optional<std::string_view>(std::string_view(v->as_string()));
}

Result<std::optional<int64_t>> Args::OptInt(std::string_view key) const {
  const json::value* v = o_.if_contains(key);
  if (v == nullptr) return std::optional<int64_t>();
  std::optional<int64_t> i = text_ && v->is_string() ? ParseDecimal(v->as_string()) : AsInt(*v);
  if (!i) return BadRequest(std::string(key) + " must be an integer");
  return std::optional<int64_t>(*i);
}

Result<bool> Args::OptBool(std::string_view key, bool fallback) const {
  const json::value* v = o_.if_contains(key);
  if (v == nullptr) return fallback;
  if (text_ && v->is_string()) {
    if (v->as_string() == "true") return true;
    if (v->as_string() == "false") return false;
  }
  if (!v->is_bool()) return BadRequest(std::string(key) + " must be a boolean");
  return v->as_bool();
}

Result<std::vector<std::string>> Args::StringArray(std::string_view key) const {
  const json::value* v = o_.if_contains(key);
  if (v == nullptr) return BadRequest("missing field " + std::string(key));
  if (!v->is_array()) return BadRequest(std::string(key) + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return BadRequest(std::string(key) + " must be an array of strings");
    out.emplace_back(e.as_string());
  }
  return out;
}

Result<std::optional<std::vector<std::string>>> Args::OptStringArray(std::string_view key) const {
  if (!Has(key)) return std::optional<std::vector<std::string>>();
  auto list = StringArray(key);
  if (!list.ok()) return list.error();
  return std::optional<std::vector<std::string>>(std::move(list).value());
}

std::optional<JsonText> Args::OptJson(std::string_view key) const {
  const json::value* d = o_.if_contains(key);
  if (d == nullptr) return std::nullopt;
  return ToJsonText(*d);
}

}  // namespace presenced::protocol
