// The Peer a WebSocket session hands the Service (common/transport.h): thread-safe, it queues work
// on the session's strand and holds the session weakly, so a Peer kept after the session ended
// costs nothing and does nothing. Internal to src/net (websocket_session.cc).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "net/websocket_session.h"

namespace presenced::net {

// Writes the Service's frames through the session; holds it weakly, so a Peer kept by the service
// after the session ended costs nothing and does nothing.
template <class Stream>
class PeerImpl final : public Peer {
 public:
  PeerImpl(const std::shared_ptr<WebSocketSession<Stream>>& s, size_t bound)
      : session_(s), gauge_(s->gauge()), bound_(bound) {}
  // Bytes handed over count as unsent from here on (HasRoomFor), until the strand queues them.
  void Send(std::shared_ptr<const std::string> message) override {
    if (auto s = session_.lock()) {
      gauge_->handed.fetch_add(message->size(), std::memory_order_relaxed);
      s->PostSend(std::move(message));
    }
  }
  void SendBatch(std::vector<std::shared_ptr<const std::string>> messages) override {
    if (auto s = session_.lock()) {
      size_t bytes = 0;
      for (const auto& m : messages) bytes += m->size();
      gauge_->handed.fetch_add(bytes, std::memory_order_relaxed);
      s->PostSendBatch(std::move(messages));
    }
  }
  void Close(uint16_t code, std::string reason, bool abrupt) override {
    if (auto s = session_.lock()) s->PostClose(code, std::move(reason), abrupt);
  }
  bool HasRoomFor(size_t queued, size_t bytes) const override {
    const size_t total = gauge_->total() + queued;
    return total == 0 || total + bytes <= bound_;
  }
  void NotifyWhenDrained() override {
    if (auto s = session_.lock()) {
      gauge_->drain_wanted.store(true, std::memory_order_relaxed);
      s->PostCheckDrained();
    }
  }

 private:
  std::weak_ptr<WebSocketSession<Stream>> session_;
  const std::shared_ptr<OutboundGauge> gauge_;
  const size_t bound_;
};

}  // namespace presenced::net
