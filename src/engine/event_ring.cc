// EventRing (event_ring.h): one channel's recent events; the engine's thread.
#include "engine/event_ring.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <utility>

namespace presenced::engine {

// ----- RetainedBudget -------------------------------------------------------------------------

int RetainedBudget::ClassOf(size_t bytes) {
  if (bytes == 0) return -1;
  const int log2 = std::bit_width(bytes) - 1;
  if (log2 < 2) return log2;
  // Four classes per power of two: the two bits below the leading one.
  return log2 * 4 + static_cast<int>((bytes >> (log2 - 2)) & 3);
}

EventRing* RetainedBudget::Largest() const {
  for (int word = kClasses / 64 - 1; word >= 0; --word) {
    if (occupied_[word] == 0) continue;
    const int bit = 63 - std::countl_zero(occupied_[word]);
    return heads_[word * 64 + bit];
  }
  return nullptr;
}

void RetainedBudget::Link(EventRing& ring, int size_class) {
  ring.size_class_ = size_class;
  EventRing*& head = heads_[size_class];
  if (head == nullptr) {
    ring.prev_ = ring.next_ = &ring;
    head = &ring;
    occupied_[size_class / 64] |= uint64_t{1} << (size_class % 64);
  } else {
    // At the back: the ring at the front has been in this class longest and is trimmed first.
    EventRing* tail = head->prev_;
    ring.prev_ = tail;
    ring.next_ = head;
    tail->next_ = &ring;
    head->prev_ = &ring;
  }
  ++rings_;
}

void RetainedBudget::Unlink(EventRing& ring) {
  const int size_class = ring.size_class_;
  EventRing*& head = heads_[size_class];
  if (ring.next_ == &ring) {
    head = nullptr;
    occupied_[size_class / 64] &= ~(uint64_t{1} << (size_class % 64));
  } else {
    ring.prev_->next_ = ring.next_;
    ring.next_->prev_ = ring.prev_;
    if (head == &ring) head = ring.next_;
  }
  ring.prev_ = ring.next_ = nullptr;
  ring.size_class_ = -1;
  --rings_;
}

void RetainedBudget::Changed(EventRing& ring, size_t old_bytes) {
  bytes_ = bytes_ - old_bytes + ring.bytes_;
  const int size_class = ClassOf(ring.bytes_);
  if (size_class == ring.size_class_) return;
  if (ring.size_class_ >= 0) Unlink(ring);
  if (size_class >= 0) Link(ring, size_class);
}

void RetainedBudget::Enforce() {
  if (max_bytes_ == 0) return;
  while (bytes_ > max_bytes_) {
    EventRing* ring = Largest();
    assert(ring != nullptr);  // bytes_ > 0, so some ring holds events
    // Trim this ring until it leaves its size class (another ring may be the largest then) or
    // the cap holds. Every step drops one event, so the loop ends.
    const int size_class = ring->size_class_;
    do {
      ring->DropOldest();
    } while (bytes_ > max_bytes_ && ring->size_class_ == size_class);
  }
}

// ----- EventRing ------------------------------------------------------------------------------

EventRing::~EventRing() {
  if (budget_ == nullptr) return;
  const size_t old = bytes_;
  bytes_ = 0;
  budget_->Changed(*this, old);
}

void EventRing::Account(size_t old_bytes) {
  if (budget_ != nullptr) budget_->Changed(*this, old_bytes);
}

void EventRing::Push(EventRecord record) {
  const size_t old = bytes_;
  bytes_ += CostOf(record);
  if (count_ < buf_.size()) {
    buf_[(head_ + count_) % buf_.size()] = std::move(record);
    ++count_;
  } else if (buf_.size() < capacity_) {
    // Grows geometrically up to the capacity.
    Reallocate(buf_.empty() ? std::min<size_t>(4, capacity_)
                            : std::min(buf_.size() * 2, capacity_));
    buf_[count_++] = std::move(record);
  } else {
    bytes_ -= CostOf(buf_[head_]);
    buf_[head_] = std::move(record);  // overwrite the oldest
    head_ = (head_ + 1) % buf_.size();
    ++first_serial_;
  }
  Account(old);
  if (budget_ != nullptr) budget_->Enforce();
}

void EventRing::DropOldest() {
  assert(count_ > 0);
  const size_t old = bytes_;
  bytes_ -= CostOf(buf_[head_]);
  buf_[head_] = EventRecord{};  // releases its data and identity now
  head_ = (head_ + 1) % buf_.size();
  --count_;
  ++first_serial_;
  // A ring trimmed by the budget gives back its slots too (halving at a quarter full keeps this
  // O(1) amortized).
  if (buf_.size() > 4 && count_ <= buf_.size() / 4) Reallocate(buf_.size() / 2);
  Account(old);
}

void EventRing::Reallocate(size_t slots) {
  assert(slots >= count_);
  std::vector<EventRecord> next(slots);
  for (size_t i = 0; i < count_; ++i) next[i] = std::move(buf_[(head_ + i) % buf_.size()]);
  buf_ = std::move(next);
  head_ = 0;
}

}  // namespace presenced::engine
