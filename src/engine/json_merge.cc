#include "engine/json_merge.h"

#include <boost/json.hpp>

namespace presenced::engine {

JsonText ShallowMerge(const JsonText& current, const JsonText& patch) {
  if (current.text().empty() || patch.text().empty() || current.text().front() != '{' ||
      patch.text().front() != '{') {
    return patch;
  }
  boost::system::error_code ec;
  boost::json::value base = boost::json::parse(current.text(), ec);
  if (ec || !base.is_object()) return patch;
  boost::json::value add = boost::json::parse(patch.text(), ec);
  if (ec || !add.is_object()) return patch;
  boost::json::object& target = base.as_object();
  for (auto& [key, value] : add.as_object()) target[key] = std::move(value);
  return JsonText::FromSerialized(boost::json::serialize(base));
}

}  // namespace presenced::engine
