// Shallow merge of presence data for `update` (json_merge.h); pure.
#include "engine/json_merge.h"

#include <boost/json.hpp>

namespace presenced::engine {

namespace {

// Parses with the one nesting limit of the whole server, so data that was accepted (requests
// allow kMaxJsonDepth) is never refused here: Boost.JSON's default of 32 would fail on deeper
// data, and the merge would silently become a replace.
boost::json::value Parse(std::string_view text, boost::system::error_code& ec) {
  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  return boost::json::parse(text, ec, {}, options);
}

}  // namespace

JsonText ShallowMerge(const JsonText& current, const JsonText& patch) {
  if (current.text().empty() || patch.text().empty() || current.text().front() != '{' ||
      patch.text().front() != '{') {
    return patch;
  }
  boost::system::error_code ec;
  boost::json::value base = Parse(current.text(), ec);
  if (ec || !base.is_object()) return patch;
  boost::json::value add = Parse(patch.text(), ec);
  if (ec || !add.is_object()) return patch;
  boost::json::object& target = base.as_object();
  for (auto& [key, value] : add.as_object()) target[key] = std::move(value);
  return JsonText::FromSerialized(boost::json::serialize(base));
}

}  // namespace presenced::engine
