// The WebSocket phase of a connection (see websocket_session.h). Runs on the session's strand.
#include "net/websocket_session.h"

#include "net/tls.h"
#include "net/websocket_peer.h"

namespace presenced::net {

template <class Stream>
void StartWebSocketSession(UpgradedSocket<Stream> upgraded, Server::Impl& server) {
  std::string early = std::move(upgraded.early_bytes);
  auto session = std::make_shared<WebSocketSession<Stream>>(std::move(upgraded), server);
  server.Register(session.get());
  session->Open(std::move(early));
}

template <class Stream>
WebSocketSession<Stream>::WebSocketSession(UpgradedSocket<Stream> upgraded, Server::Impl& server)
    : socket_(std::move(upgraded.socket)),
      server_(server),
      slot_(std::move(upgraded.slot)),
      attachment_(std::move(upgraded.upgrade.attachment)),
      heartbeat_ms_(upgraded.upgrade.heartbeat_ms > 0 ? upgraded.upgrade.heartbeat_ms
                                                      : server.options.heartbeat_ms),
      sends_on_open_(upgraded.upgrade.sends_on_open),
      id_(server.next_session.fetch_add(1, std::memory_order_relaxed)),
      reader_(server.options.max_frame_bytes),
      handshake_(std::move(upgraded.handshake)) {}

// Normally unregistered by Finish; this covers a session destroyed with the io_context.
template <class Stream>
WebSocketSession<Stream>::~WebSocketSession() {
  server_.CancelDeadline(*this);
  server_.Unregister(this);
}

template <class Stream>
void WebSocketSession<Stream>::Open(std::string early_bytes) {
  self_ = this->shared_from_this();
  server_.counters.connections_open.fetch_add(1, std::memory_order_relaxed);
  server_.counters.connections_total.fetch_add(1, std::memory_order_relaxed);
  last_rx_ = server_.clock.NowMs();
  last_ping_ = last_rx_;
  out_bytes_ += handshake_.size();
  if constexpr (kTls) {
    tls_in_ = std::make_unique<char[]>(kTlsReadBytes);
  } else {
    beast::error_code ec;
    socket_.non_blocking(true, ec);
  }
  {
    InServiceCall call(*this);
    server_.service.OnOpen(id_, std::move(attachment_),
                           std::make_shared<PeerImpl<Stream>>(this->shared_from_this(),
                                                              server_.options.max_outbound_bytes));
  }
  ArmTimer();
  if (!sends_on_open_) Write();  // the 101 now, else with the first frame
  ProcessBytes(early_bytes.data(), early_bytes.size());
  if (!read_paused_) ReadFrames();
}

template <class Stream>
bool WebSocketSession<Stream>::OnOwnThread() const {
  // Not from inside this session's own call into the service: a service that answers at once
  // (net_test's echo) gets the posted order, as with several threads.
  // in_service_call_ is the strand's own: read only once on the I/O thread.
  return server_.io_threads == 1 && server_.ioc.get_executor().running_in_this_thread() &&
         in_service_call_ == 0;
}

template <class Stream>
void WebSocketSession<Stream>::PostSend(std::shared_ptr<const std::string> message) {
  if (OnOwnThread()) return Enqueue(std::move(message));
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), m = std::move(message)]() mutable {
               self->Enqueue(std::move(m));
             });
}

template <class Stream>
void WebSocketSession<Stream>::PostSendBatch(
    std::vector<std::shared_ptr<const std::string>> messages) {
  auto queue_all = [](WebSocketSession<Stream>& self,
                      std::vector<std::shared_ptr<const std::string>>& m) {
    // Queue them all, then start one write that carries the lot.
    self.batching_ = true;
    for (auto& message : m) self.Enqueue(std::move(message));
    self.batching_ = false;
    if (!self.writing_) self.Write();
  };
  // With one I/O thread the engine runs on it: the frames are queued now, no closure per round.
  if (OnOwnThread()) return queue_all(*this, messages);
  asio::post(socket_.get_executor(), [self = this->shared_from_this(), m = std::move(messages),
                                      queue_all]() mutable { queue_all(*self, m); });
}

template <class Stream>
void WebSocketSession<Stream>::PostClose(uint16_t code, std::string reason, bool abrupt) {
  if (OnOwnThread()) {
    return CloseWith(code, reason, abrupt ? kAbrupt : kClean, CloseCause::kServiceClosed);
  }
  asio::post(socket_.get_executor(),
             [self = this->shared_from_this(), code, reason = std::move(reason), abrupt] {
               self->CloseWith(code, reason, abrupt ? kAbrupt : kClean, CloseCause::kServiceClosed);
             });
}

template <class Stream>
void WebSocketSession<Stream>::PostCheckDrained() {
  if (OnOwnThread()) return CheckDrained();
  asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->CheckDrained(); });
}

template <class Stream>
void WebSocketSession<Stream>::OnProcessed(size_t bytes) {
  const size_t before = inflight_bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
  if (before - bytes < LowWater() && before >= LowWater()) {
    if (auto self = this->weak_from_this().lock()) {
      asio::post(socket_.get_executor(), [self = std::move(self)] { self->MaybeResumeReading(); });
    }
  }
}

template <class Stream>
void WebSocketSession<Stream>::PostCut() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(socket_.get_executor(), [self = std::move(self)] { self->Finish(); });
  }
}

template <class Stream>
void WebSocketSession<Stream>::PostCheckDeadlines() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(socket_.get_executor(), [self = std::move(self)] {
      if (!self->done_) self->OnTimer();
    });
  }
}

// ----- Input ----------------------------------------------------------------------------------

template <class Stream>
tcp::socket& WebSocketSession<Stream>::Socket() {
  if constexpr (kTls) {
    return beast::get_lowest_layer(socket_).socket();
  } else {
    return socket_;
  }
}

// Plain: waits until the socket is readable, then reads into the I/O thread's buffer: a session
// holds only the bytes of an incomplete frame header, not a read buffer of its own. TLS: one
// async_read_some into the session's buffer.
template <class Stream>
void WebSocketSession<Stream>::ReadFrames() {
  if (reading_ || done_ || peer_eof_) return;
  reading_ = true;
  if constexpr (kTls) {
    socket_.async_read_some(asio::buffer(tls_in_.get(), kTlsReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->reading_ = false;
                              if (self->done_) return;
                              self->OnTlsRead(ec, n);
                            });
  } else {
    socket_.async_wait(tcp::socket::wait_read,
                       [self = this->shared_from_this()](beast::error_code ec) {
                         self->reading_ = false;
                         if (self->done_) return;
                         // An error here (reset) is an abrupt drop.
                         if (ec) return self->closing_ ? self->Finish() : self->EndAbruptly();
                         self->ReadAvailable();
                       });
  }
}

// TLS: ReadAvailable and Drain in one, for what one read brought.
template <class Stream>
void WebSocketSession<Stream>::OnTlsRead(beast::error_code ec, size_t n) {
  if (closing_) {
    if (ec) {
      peer_eof_ = true;
      // Done once our last frame is out; otherwise the write's end finishes the session.
      if (lingering_ || !IsTlsEnd(ec)) Finish();
      return;
    }
    return ReadFrames();  // discarded
  }
  // The peer's end (close_notify or not) or an error, without a close frame: an abrupt drop.
  if (ec) return EndAbruptly();
  last_rx_ = server_.clock.NowMs();
  ProcessBytes(tls_in_.get(), n);
  if (!read_paused_) ReadFrames();  // while closing: drains until the peer's end
}

template <class Stream>
void WebSocketSession<Stream>::ReadAvailable() {
  if (closing_) return Drain();
  const asio::mutable_buffer buf = ReadBuffer(server_.options.read_buffer_bytes);
  for (int round = 0; round < 4; ++round) {
    beast::error_code ec;
    const size_t n = socket_.read_some(buf, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    // EOF or reset without a close frame: an abrupt drop.
    if (ec) return EndAbruptly();
    last_rx_ = server_.clock.NowMs();
    ProcessBytes(static_cast<const char*>(buf.data()), n);
    if (closing_ || read_paused_) break;
    if (n < buf.size()) break;
  }
  if (!read_paused_) ReadFrames();  // while closing: drains until the peer's EOF
}

// While closing: reads and discards what the peer still sends, until its EOF.
template <class Stream>
void WebSocketSession<Stream>::Drain() {
  for (int round = 0; round < 4; ++round) {
    beast::error_code ec;
    socket_.read_some(ReadBuffer(server_.options.read_buffer_bytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) {
      peer_eof_ = true;
      // Done once our last frame is out; otherwise the write's end finishes the session.
      if (lingering_ || ec != asio::error::eof) Finish();
      return;
    }
  }
  ReadFrames();
}

// Parses what arrived together with what was left of an incomplete frame header.
template <class Stream>
void WebSocketSession<Stream>::ProcessBytes(const char* data, size_t n) {
  size_t used = 0;
  if (inbuf_.empty()) {
    ProcessInput(std::string_view(data, n), used);
    if (!closing_) inbuf_.assign(data + used, n - used);
  } else {
    inbuf_.append(data, n);
    ProcessInput(inbuf_, used);
    inbuf_.erase(0, used);
  }
  if (inbuf_.empty() || closing_) std::string().swap(inbuf_);
  if (!closing_ && (inflight_bytes_.load(std::memory_order_acquire) >= HighWater() ||
                    out_bytes_ > server_.options.max_outbound_bytes)) {
    read_paused_ = true;  // resumed by MaybeResumeReading
  }
}

// Parses bytes into messages and acts on them; `offset` is how many it consumed. Every rule of
// RFC 6455 about received frames is the reader's; a failure closes with the reader's code.
template <class Stream>
void WebSocketSession<Stream>::ProcessInput(std::string_view input, size_t& offset) {
  offset = 0;
  ws::Message m;  // reused: a burst of pings allocates once
  while (!closing_) {
    size_t used = 0;
    const auto r = reader_.Next(input.substr(offset), m, used);
    offset += used;
    if (r == ws::MessageReader::Result::kNeedMore) break;
    if (r == ws::MessageReader::Result::kError) {
      return CloseWith(reader_.close_code(), reader_.error(), kClean,
                       CauseOfReaderError(reader_.close_code()));
    }
    switch (m.opcode) {
      // A binary message is read as a request too (docs/protocol.md): the contract closes a
      // connection for no bad frame but an oversize one, and the JSON parser checks the UTF-8
      // of every string in it.
      case ws::Opcode::kBinary:
      case ws::Opcode::kText: {
        const size_t bytes = m.payload.size() + 64;  // + per-message overhead
        inflight_bytes_.fetch_add(bytes, std::memory_order_acq_rel);
        InServiceCall call(*this);
        server_.service.OnMessage(id_, std::move(m.payload), std::chrono::steady_clock::now(),
                                  [weak = this->weak_from_this(), bytes] {
                                    if (auto self = weak.lock()) self->OnProcessed(bytes);
                                  });
        break;
      }
      case ws::Opcode::kPing:
        QueuePong(m.payload);
        break;
      case ws::Opcode::kPong:
        break;
      case ws::Opcode::kClose:
        // §5.5.1: echo the peer's code
        return CloseWith(m.ReplyCode(), "", kClean, CloseCause::kClientClosed);
      default:
        break;
    }
  }
}

template <class Stream>
void WebSocketSession<Stream>::MaybeResumeReading() {
  if (!read_paused_ || closing_ || done_) return;
  if (inflight_bytes_.load(std::memory_order_acquire) >= LowWater()) return;
  if (out_bytes_ > server_.options.max_outbound_bytes / 2) return;
  read_paused_ = false;
  ReadFrames();
}

// ----- Deadlines ------------------------------------------------------------------------------

// One timer per session: the heartbeat (pings, silence, the outbound drain deadline) while open,
// the close deadline while closing. Each decision is the clock's (OnTimer); the timer only wakes
// the session when the clock should have reached the next deadline.
template <class Stream>
void WebSocketSession<Stream>::ArmTimer() {
  TimeMs next;
  if (closing_) {
    next = close_deadline_;
  } else {
    next = std::min(last_ping_ + heartbeat_ms_, last_rx_ + 2 * heartbeat_ms_);
    if (over_bound_since_) next = std::min(next, *over_bound_since_ + 2 * heartbeat_ms_);
  }
  // A deadline that moved later keeps the earlier wake-up: OnTimer decides with the clock and
  // re-arms, so the wheel is touched once per wake-up, not once per message.
  if (done_ || (armed_ && next >= armed_for_)) return;
  armed_ = true;
  armed_for_ = next;
  server_.ScheduleDeadline(*this, next);
}

template <class Stream>
void WebSocketSession<Stream>::Fired() {
  if (OnOwnThread()) {
    if (!done_) OnTimer();
    return;
  }
  asio::post(socket_.get_executor(), [self = this->shared_from_this()] {
    if (!self->done_) self->OnTimer();
  });
}

template <class Stream>
void WebSocketSession<Stream>::Abandon() {
  auto self = std::move(self_);  // may be the last reference: destroyed on return
}

template <class Stream>
void WebSocketSession<Stream>::OnTimer() {
  armed_ = false;
  const TimeMs now = server_.clock.NowMs();
  if (closing_) {
    if (now >= close_deadline_) return Finish();  // the peer had its time to take the close
    return ArmTimer();
  }
  // Not reading (backpressure) is the server's doing, not the client's silence; and a client
  // whose output is stuck over the bound cannot answer pings it never got: the drain deadline
  // below judges it, and tells it why with a close frame.
  if (read_paused_ || over_bound_since_) last_rx_ = now;
  if (now - last_rx_ >= 2 * heartbeat_ms_) {
    return EndAbruptly(CloseCause::kHeartbeatTimeout);  // silent for two intervals
  }
  if (over_bound_since_ && now - *over_bound_since_ >= 2 * heartbeat_ms_) {
    return CloseSlowConsumer("outbound queue did not drain");
  }
  if (now - last_ping_ >= heartbeat_ms_) {
    last_ping_ = now;
    QueuePing();
  }
  ArmTimer();
}

// ----- Output ---------------------------------------------------------------------------------

// The bytes stop counting as handed only once they count as unsent (or are dropped), and the
// release pairs with OutboundGauge::total's acquire: a Peer on another thread never sees them in
// neither, which would read as room.
template <class Stream>
void WebSocketSession<Stream>::Enqueue(std::shared_ptr<const std::string> message) {
  const size_t n = message->size();
  Queue(std::move(message));
  gauge_->handed.fetch_sub(n, std::memory_order_release);
}

template <class Stream>
void WebSocketSession<Stream>::Queue(std::shared_ptr<const std::string> message) {
  if (closing_ || done_) return;
  // Keeping under the bound is the service's (Peer::HasRoomFor): it drops what it may. Over it,
  // the drain deadline runs; a backlog past twice the bound is a slow consumer at once. One
  // message is always accepted when no other is waiting (a large snapshot must not drop a healthy
  // client).
  if (pending_messages_ > 0 &&
      out_bytes_ + message->size() > 2 * server_.options.max_outbound_bytes) {
    return CloseSlowConsumer("outbound queue full");
  }
  const size_t n = message->size();
  if (n > kCopyBytes) {
    return Push(Outgoing{ws::FrameHeader(ws::Opcode::kText, n), std::move(message), 1});
  }
  if (queue_.empty() || !queue_.back().OpenRun() || queue_.back().header.size() + n > kRunBytes) {
    queue_.push_back(Outgoing{});
  }
  Outgoing& run = queue_.back();
  const size_t before = run.header.size();
  ws::AppendFrameHeader(ws::Opcode::kText, n, run.header);
  run.header.append(*message);
  ++run.messages;
  out_bytes_ += run.header.size() - before;
  ++pending_messages_;
  NoteOutbound();
  if (!writing_ && !batching_) Write();
}

// A subscriber that cannot keep up is dropped as abrupt (its grace period applies, so it can
// resume and catch up) instead of growing memory. What is not yet on the wire is dropped, so the
// close frame follows at most the frame being written.
template <class Stream>
void WebSocketSession<Stream>::CloseSlowConsumer(std::string_view why) {
  server_.counters.queue_drops_total.fetch_add(1, std::memory_order_relaxed);
  CloseWith(ws::kCloseSlowConsumer, why, kAbrupt, CloseCause::kSlowConsumer, /*drop_unsent=*/true);
}

template <class Stream>
void WebSocketSession<Stream>::Push(Outgoing o) {
  out_bytes_ += o.size();
  pending_messages_ += o.messages;
  queue_.push_back(std::move(o));
  NoteOutbound();
  if (!writing_ && !batching_) Write();
}

// RFC 6455 §5.5.3: a pong may answer only the most recent ping, so at most one pong waits to be
// written; a newer ping replaces its payload. A client that pings without reading cannot make
// the server buffer more than that.
template <class Stream>
void WebSocketSession<Stream>::QueuePong(std::string_view payload) {
  if (closing_) return;
  out_bytes_ -= pong_.size();
  ws::EncodeFrameInto(ws::Opcode::kPong, payload, pong_);
  out_bytes_ += pong_.size();
  NoteOutbound();
  if (!writing_ && !batching_) Write();
}

template <class Stream>
void WebSocketSession<Stream>::QueuePing() {
  if (ping_pending_ || closing_) return;
  ping_pending_ = true;
  out_bytes_ += kPingFrame.size();
  NoteOutbound();
  if (!writing_ && !batching_) Write();
}

// Tracks the outbound bound: over it, reading stops (so a client that does not read cannot make
// the server buffer its requests' answers) and the drain deadline runs; below half, both end.
template <class Stream>
void WebSocketSession<Stream>::NoteOutbound() {
  const size_t bound = server_.options.max_outbound_bytes;
  if (out_bytes_ > bound) {
    if (!over_bound_since_ && !closing_) {
      over_bound_since_ = server_.clock.NowMs();
      ArmTimer();
    }
  } else if (out_bytes_ <= bound / 2 && over_bound_since_) {
    over_bound_since_.reset();
    MaybeResumeReading();
  } else if (read_paused_ && out_bytes_ <= bound / 2) {
    MaybeResumeReading();
  }
  gauge_->unsent.store(out_bytes_, std::memory_order_relaxed);
  CheckDrained();
}

// Peer::NotifyWhenDrained: one OnDrained once the output (what is queued here and what is on its
// way to this strand) is at most half the bound. Never after the session's end was reported.
template <class Stream>
void WebSocketSession<Stream>::CheckDrained() {
  if (!gauge_->drain_wanted.load(std::memory_order_relaxed) || reported_ || closing_ || done_) {
    return;
  }
  const size_t unsent = gauge_->handed.load(std::memory_order_relaxed) + out_bytes_;
  if (unsent > server_.options.max_outbound_bytes / 2) return;
  if (gauge_->drain_wanted.exchange(false, std::memory_order_relaxed)) {
    InServiceCall call(*this);
    server_.service.OnDrained(id_);
  }
}

template <class Stream>
bool WebSocketSession<Stream>::HasOutput() const {
  return !handshake_.empty() || !pong_.empty() || ping_pending_ || !queue_.empty();
}

// Writes what is queued in as few system calls as the kernel allows: the handshake first, then
// control frames (they may go between any two frames), then up to write_batch_frames /
// write_batch_bytes.
template <class Stream>
void WebSocketSession<Stream>::Write() {
  if (writing_ || done_ || !HasOutput()) return;
  writing_ = true;
  batch_.clear();
  batch_pos_ = 0;
  batch_off_ = 0;
  if (!handshake_.empty()) {
    batch_.push_back(Outgoing{std::move(handshake_), nullptr, 0, false});
    handshake_.clear();
  }
  if (!pong_.empty()) {
    batch_.push_back(Outgoing{std::move(pong_), nullptr});
    pong_.clear();
  }
  if (ping_pending_) {
    batch_.push_back(Outgoing{std::string(kPingFrame), nullptr});
    ping_pending_ = false;
  }
  size_t bytes = 0;
  size_t taken = 0;
  while (taken < queue_.size() && batch_.size() < server_.options.write_batch_frames &&
         bytes < server_.options.write_batch_bytes) {
    bytes += queue_[taken].size();
    batch_.push_back(std::move(queue_[taken++]));
  }
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
  WriteSome();
}

template <class Stream>
void WebSocketSession<Stream>::WriteSome() {
  // The kernel takes at most 64 buffers per call (Asio's limit); the rest go in the next one.
  buffers_.clear();
  size_t offset = batch_off_;
  for (size_t i = batch_pos_; i < batch_.size() && buffers_.size() < 63; ++i, offset = 0) {
    const Outgoing& o = batch_[i];
    if (offset < o.header.size()) buffers_.emplace_back(asio::buffer(o.header) + offset);
    if (o.payload) {
      const size_t skip = offset > o.header.size() ? offset - o.header.size() : 0;
      buffers_.emplace_back(asio::buffer(*o.payload) + skip);
    }
  }
  socket_.async_write_some(buffers_,
                           [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                             self->OnWritten(ec, n);
                           });
}

template <class Stream>
void WebSocketSession<Stream>::OnWritten(beast::error_code ec, size_t n) {
  Advance(n);
  if (ec || done_) {
    writing_ = false;
    if (done_) return;
    return closing_ ? Finish() : EndAbruptly();
  }
  if (trim_batch_) {
    // Closing as a slow consumer: the frame on the wire is completed, the rest of the batch is
    // dropped (the close frame is queued after it).
    trim_batch_ = false;
    const size_t keep = batch_pos_ + (batch_off_ > 0 ? 1 : 0);
    for (size_t i = keep; i < batch_.size(); ++i) {
      if (!batch_[i].droppable) continue;
      out_bytes_ -= batch_[i].size();
      pending_messages_ -= batch_[i].messages;
      batch_[i].header.clear();
      batch_[i].payload.reset();
    }
    std::erase_if(batch_, [](const Outgoing& o) { return o.header.empty() && !o.payload; });
  }
  NoteOutbound();
  if (batch_pos_ < batch_.size()) return WriteSome();
  writing_ = false;
  ReleaseWritten();
  if (HasOutput()) return Write();
  if (closing_) ShutdownAndLinger();  // the close frame is out
}

// Accounts for `n` bytes written from the front of the batch.
template <class Stream>
void WebSocketSession<Stream>::Advance(size_t n) {
  out_bytes_ -= std::min(out_bytes_, n);
  while (n > 0 && batch_pos_ < batch_.size()) {
    const Outgoing& o = batch_[batch_pos_];
    const size_t rest = o.size() - batch_off_;
    if (n < rest) {
      batch_off_ += n;
      return;
    }
    n -= rest;
    pending_messages_ -= o.messages;
    ++batch_pos_;
    batch_off_ = 0;
  }
}

// Drops the written messages; an idle session keeps no queue capacity.
template <class Stream>
void WebSocketSession<Stream>::ReleaseWritten() {
  batch_.clear();
  buffers_.clear();
  if (queue_.empty()) {
    std::vector<Outgoing>().swap(batch_);
    std::vector<asio::const_buffer>().swap(buffers_);
    std::vector<Outgoing>().swap(queue_);
  }
}

// ----- Ending ---------------------------------------------------------------------------------

// Sends a close frame after what is queued (after the frame being written when `drop_unsent`),
// then ends the session once the peer closed or the close deadline passed: the time to take the
// frame in flight and the close frame, and to answer with its own close (§7.1.1).
template <class Stream>
void WebSocketSession<Stream>::CloseWith(uint16_t code, std::string_view reason, Report report,
                                         CloseCause cause, bool drop_unsent) {
  if (closing_ || done_) return;
  closing_ = true;
  read_paused_ = false;
  over_bound_since_.reset();
  ReportClose(report, CloseInfo{cause, code, std::string(reason)});
  if (drop_unsent) {
    for (const Outgoing& o : queue_) {
      out_bytes_ -= o.size();
      pending_messages_ -= o.messages;
    }
    queue_.clear();
    out_bytes_ -= pong_.size() + (ping_pending_ ? kPingFrame.size() : 0);
    pong_.clear();
    ping_pending_ = false;
    if (writing_) trim_batch_ = true;
  }
  close_deadline_ = server_.clock.NowMs() + server_.options.handshake_timeout_ms;
  ArmTimer();
  Push(Outgoing{ws::EncodeClose(code, reason), nullptr, 0, false});
  ReadFrames();  // drain what the peer sends meanwhile
}

// The close frame is written: send FIN and wait (reading) for the peer's, at most until the close
// deadline. Closing at once could reset the connection (unread bytes) and with it the data still
// in the kernel's send buffer. Over TLS the FIN is TLS's close_notify: async_shutdown writes it
// (no write is pending: the close frame was the last), then waits for the peer's behind the
// session's own read, which ends the session when it sees the peer's end.
template <class Stream>
void WebSocketSession<Stream>::ShutdownAndLinger() {
  if (done_) return;
  lingering_ = true;
  if constexpr (kTls) {
    if (peer_eof_) return Finish();
    socket_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
      if (!self->done_) self->Finish();
    });
  } else {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec || peer_eof_) return Finish();
  }
  ReadFrames();
}

template <class Stream>
void WebSocketSession<Stream>::EndAbruptly(CloseCause cause) {
  ReportClose(kAbrupt, CloseInfo{cause, 0, {}});
  Finish();
}

template <class Stream>
void WebSocketSession<Stream>::ReportClose(Report report, CloseInfo info) {
  if (reported_ || report == kNoReport) return;
  reported_ = true;
  server_.counters.disconnects[static_cast<size_t>(info.cause)].fetch_add(
      1, std::memory_order_relaxed);
  InServiceCall call(*this);
  server_.service.OnClose(id_, report == kClean, info);
}

template <class Stream>
void WebSocketSession<Stream>::Finish() {
  if (done_) return;
  done_ = true;
  if (!reported_) ReportClose(kAbrupt, CloseInfo{CloseCause::kServerStopped, 0, {}});
  server_.counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
  server_.CancelDeadline(*this);
  armed_ = false;
  beast::error_code ec;
  Socket().shutdown(tcp::socket::shutdown_both, ec);
  Socket().close(ec);
  server_.Unregister(this);
  auto self = std::move(self_);  // may be the last reference: destroyed on return
}

template void StartWebSocketSession(UpgradedSocket<tcp::socket> upgraded, Server::Impl& server);
template void StartWebSocketSession(UpgradedSocket<TlsStream> upgraded, Server::Impl& server);

}  // namespace presenced::net
