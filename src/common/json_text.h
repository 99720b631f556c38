// JsonText: an immutable, reference-counted piece of serialized JSON (member data, activity data).
//
// Presence data is stored and forwarded as the text it will be sent as, so an event is serialized
// once however many subscribers receive it, and copying a member or event only bumps a count.
// The text is never re-validated here: whoever builds a JsonText (the protocol layer, after
// parsing) guarantees it is one valid JSON value. A default-constructed JsonText is JSON null.
//
// Thread-safety: the count is atomic, so copies may be handed to other threads (storage, I/O);
// the text itself never changes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace presenced {

// The deepest nesting of arrays and objects accepted anywhere JSON is parsed (requests, stored
// data, merges), so that data accepted once is never refused or mangled later.
inline constexpr int kMaxJsonDepth = 64;

class JsonText {
 public:
  JsonText() = default;
  // Copies `serialized`, which must be exactly one valid JSON value. "null" yields a null JsonText.
  static JsonText FromSerialized(std::string_view serialized);

  JsonText(const JsonText& other) : rep_(other.rep_) {
    if (rep_) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  JsonText(JsonText&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  JsonText& operator=(JsonText other) noexcept {
    std::swap(rep_, other.rep_);
    return *this;
  }
  ~JsonText() { Release(); }

  bool is_null() const { return rep_ == nullptr; }
  // The serialized value; "null" for a null JsonText.
  std::string_view text() const {
    return rep_ ? std::string_view(rep_->data, rep_->size) : std::string_view("null");
  }
  size_t size() const { return text().size(); }
  // True when both hold the same text (not merely the same object).
  friend bool operator==(const JsonText& a, const JsonText& b) { return a.text() == b.text(); }

 private:
  struct Rep {
    std::atomic<uint32_t> refs;
    uint32_t size;
    char data[1];  // `size` bytes follow
  };
  void Release();

  Rep* rep_ = nullptr;
};

}  // namespace presenced
