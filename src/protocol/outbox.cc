// Outbox (outbox.h): the round's frames per peer; the Dispatcher's thread.
#include "protocol/outbox.h"

namespace presenced::protocol {

void Outbox::Queue(const std::shared_ptr<Peer>& peer, Frame frame) {
  entries_.push_back(Entry{peer, nullptr, {}, 0, false, 0});
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
    if (e.batch && e.frames.size() >= e.sealed + 2) Pack(e);
    e.peer->SendBatch(std::move(e.frames));
  }
  entries_.clear();
  frames_ = 0;
}

// Consecutive messages become one `{"type":"batch","messages":[...]}` frame, in order; a frame
// is closed before it would pass max_batch_bytes (a message larger than that travels alone, as
// does the last one of a run when it would be a batch of one).
void Outbox::Pack(Entry& e) const {
  static constexpr std::string_view kOpen = R"({"type":"batch","messages":[)";
  std::vector<Frame> out(e.frames.begin(),
                         e.frames.begin() + static_cast<std::ptrdiff_t>(e.sealed));
  std::vector<const Frame*> run;
  size_t run_bytes = 0;
  auto close_run = [&] {
    if (run.size() == 1) {
      out.push_back(*run.front());
    } else if (!run.empty()) {
      std::string packed;
      packed.reserve(kOpen.size() + run_bytes + run.size() + 2);
      packed += kOpen;
      for (size_t i = 0; i < run.size(); ++i) {
        if (i > 0) packed += ',';
        packed += **run[i];
      }
      packed += "]}";
      out.push_back(std::make_shared<const std::string>(std::move(packed)));
    }
    run.clear();
    run_bytes = 0;
  };
  for (size_t i = e.sealed; i < e.frames.size(); ++i) {
    const Frame& f = e.frames[i];
    if (!run.empty() && kOpen.size() + run_bytes + run.size() + f->size() + 2 > max_batch_bytes_) {
      close_run();
    }
    run.push_back(&f);
    run_bytes += f->size();
  }
  close_run();
  e.frames = std::move(out);
}

}  // namespace presenced::protocol
