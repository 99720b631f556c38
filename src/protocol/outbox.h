// Outbox: the frames queued during one round of the Dispatcher's work, per peer, handed over in
// one batch per peer when the round ends (Flush). It is the one way frames leave the Dispatcher:
// replies, events, status pushes, and the answers of store-backed requests (posted back to this
// thread first), so a burst of events costs one hand-off per socket.
//
// Threading: the Dispatcher's thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/transport.h"
#include "protocol/session_table.h"

namespace presenced::protocol {

using Frame = std::shared_ptr<const std::string>;

class Outbox {
 public:
  // Queues a frame to a session (the session remembers its entry for the round: no lookup).
  void Queue(Session& session, Frame frame) {
    if (session.outbox_entry < 0) {
      session.outbox_entry = static_cast<int32_t>(entries_.size());
      entries_.push_back(Entry{session.peer, &session.outbox_entry, {}});
    }
    entries_[static_cast<size_t>(session.outbox_entry)].frames.push_back(std::move(frame));
    ++frames_;
  }
  // Queues a frame to a peer that has no session (a refused connection).
  void Queue(const std::shared_ptr<Peer>& peer, Frame frame);
  // The session is going away: its queued frames still go out, to its peer.
  void Forget(Session& session);
  // Hands every queued frame to its peer, one batch per peer.
  void Flush();
  size_t pending_frames() const { return frames_; }

 private:
  struct Entry {
    std::shared_ptr<Peer> peer;
    int32_t* owner;  // the session's outbox_entry, reset at Flush (null: no session)
    std::vector<Frame> frames;
  };
  std::vector<Entry> entries_;
  size_t frames_ = 0;
};

}  // namespace presenced::protocol
