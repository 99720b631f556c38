// JsonText (json_text.h): immutable shared JSON text; copies may cross threads.
#include "common/json_text.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace presenced {

JsonText JsonText::FromSerialized(std::string_view serialized) {
  JsonText out;
  if (serialized == "null") return out;
  void* raw = std::malloc(offsetof(Rep, data) + serialized.size());
  if (raw == nullptr) throw std::bad_alloc();
  Rep* rep = new (raw) Rep;
  rep->refs.store(1, std::memory_order_relaxed);
  rep->size = static_cast<uint32_t>(serialized.size());
  std::memcpy(rep->data, serialized.data(), serialized.size());
  out.rep_ = rep;
  return out;
}

void JsonText::Release() {
  if (rep_ && rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    rep_->~Rep();
    std::free(rep_);
  }
  rep_ = nullptr;
}

}  // namespace presenced
