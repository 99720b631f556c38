// Private to src/net. WebSocketSession: one connection after a successful upgrade, until its
// socket closes. It owns the socket, the frame reader (ws_codec.h), the bounded outbound queue and
// the session's one entry on the server's timer wheel (heartbeat, silence, outbound drain, close
// deadline: all decided with the server's Clock), and reports the session to the Service (OnOpen,
// OnMessage, OnClose).
//
// Stream is a tcp::socket (plain TCP) or a TlsStream (tls.h); both are compiled in
// websocket_session.cc, and what differs is chosen at compile time, so the plain session is the
// same code as before TLS. Plain: it waits for readability and reads what is there into the I/O
// thread's buffer (non-blocking), and gathers frames into one async_write_some. TLS: readability
// says nothing (OpenSSL may hold records already read), so it reads with async_read_some into a
// buffer of its own (one TLS record at most); writes are the same calls through TLS.
//
// Threading: everything runs on the session's strand (the executor of its socket). Peer calls,
// `processed` callbacks and the Connection methods post to it from any thread.
//
// Ending: a session that sends a close frame stops delivering, writes it, shuts down its sending
// side and keeps reading (discarding) until the peer closes or the close deadline passes. Reading
// on means the kernel never answers the peer's unread bytes with a reset, which would destroy the
// close frame still in the send buffer. Over TLS its sending side ends with TLS's close_notify.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "net/server_impl.h"
#include "net/ws_codec.h"

namespace presenced::net {

// What a Peer reads of its session's output from other threads (Peer::HasRoomFor): the bytes
// handed to the session and not yet queued on its strand, and the session's unsent bytes.
struct OutboundGauge {
  std::atomic<size_t> handed{0};
  std::atomic<size_t> unsent{0};
  std::atomic<bool> drain_wanted{false};  // Peer::NotifyWhenDrained, until OnDrained
  size_t total() const {
    const size_t in_transit = handed.load(std::memory_order_acquire);
    return in_transit + unsent.load(std::memory_order_relaxed);
  }
};

template <class Stream>
class WebSocketSession final : public Connection,
                               public WheelEntry,
                               public std::enable_shared_from_this<WebSocketSession<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  WebSocketSession(UpgradedSocket<Stream> upgraded, Server::Impl& server);
  ~WebSocketSession() override;

  // Reports OnOpen and starts reading; call on the session's strand, once.
  void Open(std::string early_bytes);

  // Thread-safe entry points used by the Peer.
  void PostSend(std::shared_ptr<const std::string> message);
  void PostSendBatch(std::vector<std::shared_ptr<const std::string>> messages);
  void PostClose(uint16_t code, std::string reason, bool abrupt);
  void PostCheckDrained();
  const std::shared_ptr<OutboundGauge>& gauge() const { return gauge_; }
  // Lets the session read again once the service has caught up with what it sent (backpressure).
  void OnProcessed(size_t bytes);

  void PostCut() override;
  void PostCutIfHttp() override {}
  void PostCheckDeadlines() override;
  void Abandon() override;
  std::shared_ptr<void> Retain() override { return this->weak_from_this().lock(); }
  void Fired() override;

 private:
  enum Report { kClean, kAbrupt, kNoReport };
  // One piece of output: a large message (its header here, its shared text by reference), or
  // bytes of our own: a control frame, the handshake, or a run of small messages copied whole
  // (header and text) one after the other, so a round's many small frames leave as one buffer.
  struct Outgoing {
    std::string header;                          // see above
    std::shared_ptr<const std::string> payload;  // a large message's text (else null)
    uint32_t messages = 0;                       // text messages in it
    bool droppable = true;                       // false for the handshake and the close frame
    size_t size() const { return header.size() + (payload ? payload->size() : 0); }
    // A run of small messages that may take more.
    bool OpenRun() const { return !payload && messages > 0 && droppable; }
  };
  // Messages up to kCopyBytes are copied into a run (cheaper than a buffer and a reference
  // each); a run is closed at about kRunBytes.
  static constexpr size_t kCopyBytes = 8 * 1024;
  static constexpr size_t kRunBytes = 64 * 1024;
  // Whether a Peer call may act at once instead of posting: one I/O thread, called on it (the
  // engine's round), not from inside this session's own call into the service.
  bool OnOwnThread() const;
  struct InServiceCall {
    explicit InServiceCall(WebSocketSession& s) : s(s) { ++s.in_service_call_; }
    ~InServiceCall() { --s.in_service_call_; }
    InServiceCall(const InServiceCall&) = delete;
    InServiceCall& operator=(const InServiceCall&) = delete;
    WebSocketSession& s;
  };
  int in_service_call_ = 0;

  // The TCP socket: the stream itself, or the one under TLS.
  tcp::socket& Socket();
  // Input.
  void ReadFrames();
  void ReadAvailable();  // plain
  void Drain();          // plain
  void OnTlsRead(beast::error_code ec, size_t n);
  void ProcessBytes(const char* data, size_t n);
  void ProcessInput(std::string_view input, size_t& offset);
  void MaybeResumeReading();
  // Deadlines.
  void ArmTimer();
  void OnTimer();
  // Output.
  void Enqueue(std::shared_ptr<const std::string> message);
  void Queue(std::shared_ptr<const std::string> message);  // Enqueue without the handed count
  void CloseSlowConsumer(std::string_view why);
  void Push(Outgoing o);
  void QueuePong(std::string_view payload);
  void QueuePing();
  void NoteOutbound();
  void CheckDrained();
  bool HasOutput() const;
  void Write();
  void WriteSome();
  void OnWritten(beast::error_code ec, size_t n);
  void Advance(size_t n);
  void ReleaseWritten();
  // Ending.
  void CloseWith(uint16_t code, std::string_view reason, Report report, CloseCause cause,
                 bool drop_unsent = false);
  void ShutdownAndLinger();
  void EndAbruptly(CloseCause cause = CloseCause::kConnectionLost);
  void ReportClose(Report report, CloseInfo info);
  void Finish();

  size_t HighWater() const {
    return server_.options.input_high_water_frames * server_.options.max_frame_bytes;
  }
  size_t LowWater() const { return 8 * server_.options.max_frame_bytes; }

  Stream socket_;
  Server::Impl& server_;
  SocketSlot slot_;
  // From Open to Finish the session keeps itself alive: its deadlines are on the server's wheel,
  // which holds no reference, and while reading is paused no operation of its own may be pending.
  std::shared_ptr<WebSocketSession> self_;
  bool armed_ = false;  // on the wheel at armed_for_ (or fired, and OnTimer not yet run)
  TimeMs armed_for_ = 0;
  std::shared_ptr<void> attachment_;  // the service's, until OnOpen
  const TimeMs heartbeat_ms_;         // this session's ping interval
  const bool sends_on_open_;          // the 101 waits for the service's first frame

  bool reported_ = false;
  bool closing_ = false;    // a close frame is queued: nothing else is sent
  bool lingering_ = false;  // ... and written, FIN sent: waiting for the peer's end
  bool done_ = false;
  bool reading_ = false;   // a read wait is pending
  bool peer_eof_ = false;  // the peer shut down its sending side
  const SessionId id_;
  ws::MessageReader reader_;
  std::string inbuf_;
  // TLS: what async_read_some reads into (a TLS record's plaintext at most); the I/O thread's
  // buffer cannot serve a read that stays pending. Nothing in the plain session.
  struct NoBuffer {};
  static constexpr size_t kTlsReadBytes = 16 * 1024;
  [[no_unique_address]] std::conditional_t<kTls, std::unique_ptr<char[]>, NoBuffer> tls_in_;
  // Deadlines, in the server clock's milliseconds.
  TimeMs last_rx_ = 0;
  TimeMs last_ping_ = 0;
  TimeMs close_deadline_ = 0;
  std::optional<TimeMs> over_bound_since_;  // out_bytes_ over the bound since
  // Unsent output. out_bytes_ counts every byte not yet accepted by the kernel: the handshake,
  // control frames, queued and in-flight messages.
  std::string handshake_;  // the 101 response, until the first write
  std::string pong_;       // the one pong waiting to be written (empty: none)
  bool ping_pending_ = false;
  std::vector<Outgoing> queue_;  // a deque would allocate even while empty
  std::vector<Outgoing> batch_;  // being written: batch_[batch_pos_] from byte batch_off_ on
  size_t batch_pos_ = 0;
  size_t batch_off_ = 0;
  bool trim_batch_ = false;  // drop the batch's unwritten frames at the next write completion
  std::vector<asio::const_buffer> buffers_;
  size_t out_bytes_ = 0;
  const std::shared_ptr<OutboundGauge> gauge_ = std::make_shared<OutboundGauge>();
  size_t pending_messages_ = 0;  // text messages queued or being written
  bool writing_ = false;
  bool batching_ = false;  // queuing a batch: write once at its end
  // Bytes of messages handed to the service and not yet processed. Above HighWater the session
  // stops reading (TCP backpressure) until it falls below LowWater, so a flooding client cannot
  // grow the service's inbox without bound.
  std::atomic<size_t> inflight_bytes_{0};
  bool read_paused_ = false;  // backpressure: inflight or outbound over its bound
};

}  // namespace presenced::net
