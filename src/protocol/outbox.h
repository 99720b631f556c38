// Outbox: the frames queued during one round of the Dispatcher's work, per peer, handed over in
// one batch per peer when the round ends (Flush). It is the one way frames leave the Dispatcher:
// replies, events, status pushes, and the answers of store-backed requests (posted back to this
// thread first), so a burst of events costs one hand-off per socket. For a session that asked for
// `batch=1` the round's messages are packed into `{"type":"batch","messages":[...]}` frames
// (protocol-ext §1), at most max_batch_bytes each.
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
  explicit Outbox(size_t max_batch_bytes = 1 << 20) : max_batch_bytes_(max_batch_bytes) {}

  // Queues a frame to a session (the session remembers its entry for the round: no lookup).
  void Queue(Session& session, Frame frame) {
    if (session.outbox_entry < 0) {
      session.outbox_entry = static_cast<int32_t>(entries_.size());
      entries_.push_back(Entry{session.peer, &session.outbox_entry, {}, 0, session.batch, 0});
    }
    Entry& e = entries_[static_cast<size_t>(session.outbox_entry)];
    e.bytes += frame->size();
    e.frames.push_back(std::move(frame));
    ++frames_;
  }
  // The frames queued to the session so far stay frames of their own (`connected` is never
  // packed into a batch).
  void Seal(const Session& session) {
    if (session.outbox_entry < 0) return;
    Entry& e = entries_[static_cast<size_t>(session.outbox_entry)];
    e.sealed = e.frames.size();
  }
  // Bytes queued to the session this round (what Peer::HasRoomFor does not see yet).
  size_t QueuedBytes(const Session& session) const {
    return session.outbox_entry < 0 ? 0 : entries_[static_cast<size_t>(session.outbox_entry)].bytes;
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
    size_t bytes;
    bool batch;     // pack the frames after the first `sealed` ones
    size_t sealed;  // frames not to pack
  };
  // Replaces e.frames[e.sealed...] by batch frames.
  void Pack(Entry& e) const;

  const size_t max_batch_bytes_;
  std::vector<Entry> entries_;
  size_t frames_ = 0;
};

}  // namespace presenced::protocol
