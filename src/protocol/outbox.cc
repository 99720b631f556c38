// Outbox (outbox.h): the round's frames per peer; the Dispatcher's thread.
#include "protocol/outbox.h"

namespace presenced::protocol {

void Outbox::Queue(const std::shared_ptr<Peer>& peer, Frame frame) {
  entries_.push_back(Entry{peer, nullptr, {}});
  entries_.back().frames.push_back(std::move(frame));
  ++frames_;
}

void Outbox::Forget(Session& session) {
  if (session.outbox_entry < 0) return;
  entries_[static_cast<size_t>(session.outbox_entry)].owner = nullptr;
  session.outbox_entry = -1;
}

void Outbox::Flush() {
  // Peers only queue work on their own strands (common/transport.h): nothing here calls back
  // into the Dispatcher, so the entries are walked in place and the vector keeps its capacity.
  for (Entry& e : entries_) {
    if (e.owner != nullptr) *e.owner = -1;
    e.peer->SendBatch(std::move(e.frames));
  }
  entries_.clear();
  frames_ = 0;
}

}  // namespace presenced::protocol
