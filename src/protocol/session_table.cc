// SessionTable and RateLimiter (session_table.h); the Dispatcher's thread.
#include "protocol/session_table.h"

#include <algorithm>

namespace presenced::protocol {

bool RateLimiter::Take(TimeMs now, double rate_per_second, double burst) {
  if (now > refilled_at_) {
    tokens_ = std::min(
        burst, tokens_ + static_cast<double>(now - refilled_at_) * rate_per_second / 1000.0);
    refilled_at_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Session& SessionTable::Add(Session s) {
  const uint32_t slot = engine::ConnectionSlot(s.handle);
  if (slot >= by_slot_.size()) by_slot_.resize(std::max<size_t>(slot + 1, by_slot_.size() * 2));
  if (by_slot_[slot]) by_id_.erase(by_slot_[slot]->id);
  by_id_[s.id] = slot;
  by_slot_[slot] = std::make_unique<Session>(std::move(s));
  return *by_slot_[slot];
}

Session* SessionTable::ById(SessionId id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : by_slot_[it->second].get();
}

std::unique_ptr<Session> SessionTable::Remove(SessionId id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  std::unique_ptr<Session> s = std::move(by_slot_[it->second]);
  by_id_.erase(it);
  return s;
}

std::vector<std::unique_ptr<Session>> SessionTable::TakeAll() {
  std::vector<std::unique_ptr<Session>> all;
  for (auto& s : by_slot_) {
    if (s) all.push_back(std::move(s));
  }
  by_id_.clear();
  return all;
}

}  // namespace presenced::protocol
