// Shallow merge of presence data for `update` with merge: true.
#pragma once

#include "common/json_text.h"

namespace presenced::engine {

// When both `current` and `patch` are JSON objects, returns `current` with each top-level key of
// `patch` set (keys absent from `patch` are kept). Otherwise returns `patch` (replace).
JsonText ShallowMerge(const JsonText& current, const JsonText& patch);

}  // namespace presenced::engine
