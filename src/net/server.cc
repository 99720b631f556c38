#include "net/server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "net/ws_codec.h"
#include "protocol/codec.h"

namespace presenced::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

class Session;

// Shared state of the server: options, the service, and the set of live sessions (for shutdown).
class Server::Impl {
 public:
  Impl(NetOptions options, Service& service, protocol::Metrics& metrics)
      : options(std::move(options)),
        service(service),
        metrics(metrics),
        acceptor(asio::make_strand(ioc)),
        accept_retry(acceptor.get_executor()),
        signals(ioc) {}

  void Accept();
  void Register(const std::shared_ptr<Session>& s);
  void Unregister(Session* s);

  NetOptions options;
  Service& service;
  protocol::Metrics& metrics;
  asio::io_context ioc;
  tcp::acceptor acceptor;  // on its own strand: accept handlers and close() never race
  asio::steady_timer accept_retry;
  asio::signal_set signals;
  std::atomic<uint64_t> next_session{1};
  std::atomic<size_t> open_sockets{0};
  std::atomic<size_t> over_cap_sockets{0};  // accepted beyond max_connections (see NetOptions)
  std::vector<std::thread> threads;

  // Sessions are created on many strands; the set is only touched on creation, end and shutdown,
  // so a mutex is simpler than routing those through a strand of their own.
  std::mutex mu;
  std::condition_variable all_gone;
  std::unordered_set<Session*> sessions;
};

namespace {

using HeaderList = std::vector<std::pair<http::field, std::string_view>>;

// What an over-cap socket waits at most for its request.
constexpr std::chrono::milliseconds kOverCapReadTimeout{1000};
// A server ping frame (empty payload).
constexpr std::string_view kPingFrame("\x89\x00", 2);

// The I/O thread's read buffer: sessions read into it and keep only what they must.
asio::mutable_buffer ReadBuffer() {
  thread_local std::vector<char> buf(64 * 1024);
  return asio::buffer(buf);
}

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

// One TCP connection: HTTP requests until it upgrades, then WebSocket messages. Everything runs on
// the session's strand (the executor of its stream).
//
// Ending: a session that sends a close frame (or a last HTTP response) stops delivering, writes it,
// shuts down its sending side and keeps reading (discarding) until the peer closes or the close
// deadline passes. Reading on means the kernel never answers the peer's unread bytes with a reset,
// which would destroy the close frame or response still in the send buffer.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server, bool over_cap)
      : stream_(std::move(socket)),
        server_(server),
        timer_(stream_.get_executor()),
        reader_(server.options.max_frame_bytes),
        over_cap_(over_cap) {}

  ~Session() {
    (over_cap_ ? server_.over_cap_sockets : server_.open_sockets)
        .fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }

  // Thread-safe entry points used by the Peer.
  void PostSend(std::shared_ptr<const std::string> message) {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), m = std::move(message)]() mutable {
                 self->Enqueue(std::move(m));
               });
  }
  void PostSendBatch(std::vector<std::shared_ptr<const std::string>> messages) {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), m = std::move(messages)]() mutable {
                 // Queue them all, then start one write that carries the lot.
                 self->batching_ = true;
                 for (auto& message : m) self->Enqueue(std::move(message));
                 self->batching_ = false;
                 if (!self->writing_) self->Write();
               });
  }
  void PostClose(uint16_t code, std::string reason, bool abrupt) {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), code, reason = std::move(reason), abrupt] {
                 self->CloseWith(code, reason, abrupt ? kAbrupt : kClean);
               });
  }
  // Ends the session if it has not become a WebSocket (graceful shutdown).
  void PostCutIfHttp() {
    if (auto self = weak_from_this().lock()) {
      asio::post(stream_.get_executor(), [self] {
        if (!self->websocket_) self->Finish();
      });
    }
  }

  // Lets the session read again once the engine has caught up with what it sent (backpressure).
  void OnProcessed(size_t bytes) {
    const size_t before = inflight_bytes_.fetch_sub(bytes, std::memory_order_acq_rel);
    if (before - bytes < LowWater() && before >= LowWater()) {
      if (auto self = weak_from_this().lock()) {
        asio::post(stream_.get_executor(), [self] { self->MaybeResumeReading(); });
      }
    }
  }

  // Closes the socket at once, for Server::Stop.
  void PostCut() {
    if (auto self = weak_from_this().lock()) {
      asio::post(stream_.get_executor(), [self] { self->Finish(); });
    }
  }

 private:
  enum Report { kClean, kAbrupt, kNoReport };
  struct Outgoing {
    std::string header;                          // frame header, or a whole control frame
    std::shared_ptr<const std::string> payload;  // message text (null for control frames)
    bool droppable = true;                       // false for the handshake and the close frame
    size_t size() const { return header.size() + (payload ? payload->size() : 0); }
  };

  // ----- HTTP ---------------------------------------------------------------------------------
  std::chrono::milliseconds HttpTimeout() const {
    const std::chrono::milliseconds t(server_.options.handshake_timeout_ms);
    return over_cap_ ? std::min(t, kOverCapReadTimeout) : t;
  }

  void ReadRequest() {
    if (!http_) http_ = std::make_unique<HttpState>();
    auto& parser = http_->parser;
    parser.emplace();
    parser->body_limit(server_.options.max_http_body_bytes);
    parser->header_limit(16 * 1024);
    if (over_cap_) {
      // The stream's own timeout would close the socket; this one only stops the read, so the
      // socket can still be told why it waited.
      stream_.expires_never();
      timer_.expires_after(HttpTimeout());
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && !self->done_) self->stream_.socket().cancel(ec);
      });
    } else {
      stream_.expires_after(HttpTimeout());
    }
    http::async_read(
        stream_, http_->buffer, *parser,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(beast::error_code ec) {
    if (over_cap_) {
      timer_.cancel();
      if (ec == asio::error::operation_aborted && !done_) ec = beast::error::timeout;
    }
    if (ec) return OnBadRequest(ec);
    auto& req = http_->parser->get();
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.authorization = std::string(req[http::field::authorization]);
    r.body = req.body();
    keep_alive_ = req.keep_alive() && !over_cap_;

    std::string_view path = r.target;
    path = path.substr(0, path.find('?'));
    if (over_cap_) {
      // Over the connection cap the process still reports its health (load balancers must not
      // take a busy node for a dead one); everything else is refused.
      if (req.method() != http::verb::get || path != "/v1/healthz") return RefuseOverCap();
    } else if (path == "/v1/ws") {
      return Upgrade(req, r);
    }
    stream_.expires_never();
    server_.service.HandleHttp(std::move(r), [self =
                                                  shared_from_this()](HttpResponse resp) {
      asio::post(self->stream_.get_executor(), [self, resp = std::move(resp)]() mutable {
        self->WriteHttp(resp.status, std::move(resp.body), resp.content_type, self->keep_alive_);
      });
    });
  }

  // A request that could not be read: answered when the peer may still be listening for why.
  void OnBadRequest(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return Finish();  // closed between requests
    if (ec == beast::error::timeout) {
      // Nothing (or not enough) arrived in time. An over-cap socket learns why it waited.
      return over_cap_ ? RefuseOverCap() : Finish();
    }
    if (ec == http::error::body_limit) {
      return WriteError(413, ErrorCode::kTooLarge, "request body too large");
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return WriteError(431, ErrorCode::kTooLarge, "request header fields too large");
    }
    if (IsHttpParseError(ec)) return WriteError(400, ErrorCode::kBadRequest, "malformed request");
    Finish();  // reset or another socket error: nobody to answer
  }

  void RefuseOverCap() {
    server_.metrics.connections_refused.fetch_add(1, std::memory_order_relaxed);
    WriteError(503, ErrorCode::kLimitExceeded, "too many connections, retry");
  }

  // An error response in the shape of every other (protocol::ErrorBody); the connection closes.
  void WriteError(unsigned status, ErrorCode code, std::string message, HeaderList extra = {}) {
    WriteHttp(status, protocol::ErrorBody(MakeError(code, std::move(message))), "application/json",
              false, extra);
  }

  void WriteHttp(unsigned status, std::string body, std::string_view content_type, bool keep_alive,
                 const HeaderList& extra = {}) {
    auto res =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "presenced");
    res->set(http::field::content_type, content_type);
    for (const auto& [field, value] : extra) res->set(field, value);
    res->keep_alive(keep_alive);  // keeps a Connection token set in `extra` (e.g. Upgrade)
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(HttpTimeout());
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec) return self->Finish();
                        if (!res->keep_alive()) return self->ShutdownAndLinger();
                        self->ReadRequest();
                      });
  }

  // GET /v1/ws: the opening handshake (RFC 6455 §4.2), then the token.
  void Upgrade(const http::request<http::string_body>& req, const HttpRequest& r) {
    static const HeaderList kUpgradeHeaders = {{http::field::upgrade, "websocket"},
                                               {http::field::connection, "Upgrade"},
                                               {http::field::sec_websocket_version, "13"}};
    if (req.method() != http::verb::get) {
      return WriteError(405, ErrorCode::kMethodNotAllowed, "a WebSocket upgrade is a GET",
                        {{http::field::allow, "GET"}});
    }
    // HTTP/1.1 with "Connection: Upgrade" and "Upgrade: websocket" (tokens, any case).
    if (!beast::websocket::is_upgrade(req)) {
      return WriteError(426, ErrorCode::kBadRequest, "this endpoint needs a WebSocket upgrade",
                        kUpgradeHeaders);
    }
    if (req.count(http::field::host) != 1) {
      return WriteError(400, ErrorCode::kBadRequest, "bad WebSocket handshake: Host is required");
    }
    // §4.2.2: a version the server does not speak is answered with the versions it does.
    if (req.count(http::field::sec_websocket_version) != 1 ||
        req[http::field::sec_websocket_version] != "13") {
      return WriteError(426, ErrorCode::kBadRequest,
                        "bad WebSocket handshake: Sec-WebSocket-Version must be 13",
                        kUpgradeHeaders);
    }
    const std::string_view key = req[http::field::sec_websocket_key];
    if (req.count(http::field::sec_websocket_key) != 1 || !ws::IsValidClientKey(key)) {
      return WriteError(
          400, ErrorCode::kBadRequest,
          "bad WebSocket handshake: Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    }
    auto request = server_.service.AuthorizeUpgrade(r);
    if (!request.ok()) {
      server_.metrics.connections_refused.fetch_add(1, std::memory_order_relaxed);
      const ErrorCode code = request.error().code;
      const unsigned status = code == ErrorCode::kUnauthorized ? 401
                              : code == ErrorCode::kTooLarge   ? 413
                                                               : 400;
      return WriteHttp(status, protocol::ErrorBody(request.error()), "application/json", false);
    }
    connect_ = std::move(request).value();
    // The 101 response waits for the first write and leaves in it with the `connected` frame
    // (and, when the client pipelined requests, their replies): one system call per connection
    // instead of three.
    handshake_ =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::AcceptKey(key) + "\r\nServer: presenced\r\n\r\n";
    out_bytes_ += handshake_.size();
    OpenWebSocket();
  }

  // ----- WebSocket ----------------------------------------------------------------------------
  class PeerImpl final : public Peer {
   public:
    explicit PeerImpl(std::weak_ptr<Session> s) : session_(std::move(s)) {}
    void Send(std::shared_ptr<const std::string> message) override {
      if (auto s = session_.lock()) s->PostSend(std::move(message));
    }
    void SendBatch(std::vector<std::shared_ptr<const std::string>> messages) override {
      if (auto s = session_.lock()) s->PostSendBatch(std::move(messages));
    }
    void Close(uint16_t code, std::string reason, bool abrupt) override {
      if (auto s = session_.lock()) s->PostClose(code, std::move(reason), abrupt);
    }

   private:
    std::weak_ptr<Session> session_;
  };

  void OpenWebSocket() {
    stream_.expires_never();
    websocket_ = true;
    id_ = server_.next_session.fetch_add(1, std::memory_order_relaxed);
    server_.metrics.connections_open.fetch_add(1, std::memory_order_relaxed);
    server_.metrics.connections_total.fetch_add(1, std::memory_order_relaxed);
    opened_ = true;
    last_rx_ = SteadyClock::now();
    last_ping_ = last_rx_;
    // Bytes that arrived with the upgrade request belong to the WebSocket stream.
    const auto& buffer = http_->buffer;
    const std::string early(static_cast<const char*>(buffer.data().data()), buffer.size());
    // The HTTP phase's state is not needed any more: an idle WebSocket keeps no buffer at all.
    http_.reset();
    beast::error_code ec;
    stream_.socket().non_blocking(true, ec);
    server_.service.OnOpen(id_, std::move(connect_), std::make_shared<PeerImpl>(weak_from_this()));
    ArmTimer();
    ProcessBytes(early.data(), early.size());
    if (!read_paused_) ReadFrames();
  }

  // Waits until the socket is readable, then reads into the I/O thread's buffer: a session holds
  // only the bytes of an incomplete frame header, not a read buffer of its own.
  void ReadFrames() {
    if (reading_ || done_ || peer_eof_) return;
    reading_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self = shared_from_this()](beast::error_code ec) {
                                  self->reading_ = false;
                                  if (self->done_) return;
                                  // An error here (reset) is an abrupt drop.
                                  if (ec)
                                    return self->closing_ ? self->Finish() : self->EndAbruptly();
                                  self->ReadAvailable();
                                });
  }

  void ReadAvailable() {
    if (closing_) return Drain();
    const asio::mutable_buffer buf = ReadBuffer();
    for (int round = 0; round < 4; ++round) {
      beast::error_code ec;
      const size_t n = stream_.socket().read_some(buf, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      // EOF or reset without a close frame: an abrupt drop.
      if (ec) return EndAbruptly();
      last_rx_ = SteadyClock::now();
      ProcessBytes(static_cast<const char*>(buf.data()), n);
      if (closing_ || read_paused_) break;
      if (n < buf.size()) break;
    }
    if (!read_paused_) ReadFrames();  // while closing: drains until the peer's EOF
  }

  // While closing: reads and discards what the peer still sends, until its EOF.
  void Drain() {
    for (int round = 0; round < 4; ++round) {
      beast::error_code ec;
      stream_.socket().read_some(ReadBuffer(), ec);
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
  void ProcessBytes(const char* data, size_t n) {
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

  // Parses bytes into messages and acts on them; `used` is how many it consumed. Every rule of
  // RFC 6455 about received frames is the reader's; a failure closes with the reader's code.
  void ProcessInput(std::string_view input, size_t& offset) {
    offset = 0;
    ws::Message m;  // reused: a burst of pings allocates once
    while (!closing_) {
      size_t used = 0;
      const auto r = reader_.Next(input.substr(offset), m, used);
      offset += used;
      if (r == ws::MessageReader::Result::kNeedMore) break;
      if (r == ws::MessageReader::Result::kError) {
        return CloseWith(reader_.close_code(), reader_.error(), kClean);
      }
      switch (m.opcode) {
        // A binary message is read as a request too (docs/protocol.md): the contract closes a
        // connection for no bad frame but an oversize one, and the JSON parser checks the UTF-8
        // of every string in it.
        case ws::Opcode::kBinary:
        case ws::Opcode::kText: {
          const size_t bytes = m.payload.size() + 64;  // + per-message overhead
          inflight_bytes_.fetch_add(bytes, std::memory_order_acq_rel);
          server_.service.OnMessage(id_, std::move(m.payload), SteadyClock::now(),
                                    [weak = weak_from_this(), bytes] {
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
          return CloseWith(m.ReplyCode(), "", kClean);  // §5.5.1: echo the peer's code
        default:
          break;
      }
    }
  }

  void MaybeResumeReading() {
    if (!read_paused_ || closing_ || done_) return;
    if (inflight_bytes_.load(std::memory_order_acquire) >= LowWater()) return;
    if (out_bytes_ > server_.options.max_outbound_bytes / 2) return;
    read_paused_ = false;
    ReadFrames();
  }

  // One timer per session: the heartbeat (pings, silence, the outbound drain deadline) while open,
  // the close deadline while closing.
  void ArmTimer() {
    const auto interval = std::chrono::milliseconds(server_.options.heartbeat_ms);
    SteadyClock::time_point next;
    if (closing_) {
      next = close_deadline_;
    } else {
      next = std::min(last_ping_ + interval, last_rx_ + 2 * interval);
      if (over_bound_since_) next = std::min(next, *over_bound_since_ + 2 * interval);
    }
    timer_.expires_at(next);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      self->OnTimer();
    });
  }

  void OnTimer() {
    const auto now = SteadyClock::now();
    if (closing_) {
      if (now >= close_deadline_) return Finish();  // the peer had its time to take the close
      return ArmTimer();
    }
    const auto interval = std::chrono::milliseconds(server_.options.heartbeat_ms);
    // Not reading (backpressure) is the server's doing, not the client's silence; and a client
    // whose output is stuck over the bound cannot answer pings it never got: the drain deadline
    // below judges it, and tells it why with a close frame.
    if (read_paused_ || over_bound_since_) last_rx_ = now;
    if (now - last_rx_ >= 2 * interval) return EndAbruptly();  // silent for two intervals
    if (over_bound_since_ && now - *over_bound_since_ >= 2 * interval) {
      return CloseSlowConsumer("outbound queue did not drain");
    }
    if (now - last_ping_ >= interval) {
      last_ping_ = now;
      QueuePing();
    }
    ArmTimer();
  }

  void Enqueue(std::shared_ptr<const std::string> message) {
    if (closing_ || done_) return;
    // One message is always accepted when no other is waiting (a large snapshot must not drop a
    // healthy client); a backlog over the bound is what marks a slow consumer.
    if (pending_messages_ > 0 &&
        out_bytes_ + message->size() > server_.options.max_outbound_bytes) {
      return CloseSlowConsumer("outbound queue full");
    }
    Outgoing o{ws::FrameHeader(ws::Opcode::kText, message->size()), std::move(message)};
    Push(std::move(o));
  }

  // A subscriber that cannot keep up is dropped as abrupt (its grace period applies, so it can
  // resume and catch up) instead of growing memory. What is not yet on the wire is dropped, so the
  // close frame follows at most the frame being written.
  void CloseSlowConsumer(std::string_view why) {
    server_.metrics.queue_drops_total.fetch_add(1, std::memory_order_relaxed);
    CloseWith(ws::kCloseSlowConsumer, why, kAbrupt, /*drop_unsent=*/true);
  }

  void Push(Outgoing o) {
    out_bytes_ += o.size();
    if (o.payload) ++pending_messages_;
    queue_.push_back(std::move(o));
    NoteOutbound();
    if (!writing_ && !batching_) Write();
  }

  // RFC 6455 §5.5.3: a pong may answer only the most recent ping, so at most one pong waits to be
  // written; a newer ping replaces its payload. A client that pings without reading cannot make
  // the server buffer more than that.
  void QueuePong(std::string_view payload) {
    if (closing_) return;
    out_bytes_ -= pong_.size();
    ws::EncodeFrameInto(ws::Opcode::kPong, payload, pong_);
    out_bytes_ += pong_.size();
    NoteOutbound();
    if (!writing_ && !batching_) Write();
  }

  void QueuePing() {
    if (ping_pending_ || closing_) return;
    ping_pending_ = true;
    out_bytes_ += kPingFrame.size();
    NoteOutbound();
    if (!writing_ && !batching_) Write();
  }

  // Tracks the outbound bound: over it, reading stops (so a client that does not read cannot make
  // the server buffer its requests' answers) and the drain deadline runs; below half, both end.
  void NoteOutbound() {
    const size_t bound = server_.options.max_outbound_bytes;
    if (out_bytes_ > bound) {
      if (!over_bound_since_ && !closing_) {
        over_bound_since_ = SteadyClock::now();
        ArmTimer();
      }
    } else if (out_bytes_ <= bound / 2 && over_bound_since_) {
      over_bound_since_.reset();
      MaybeResumeReading();
    } else if (read_paused_ && out_bytes_ <= bound / 2) {
      MaybeResumeReading();
    }
  }

  bool HasOutput() const {
    return !handshake_.empty() || !pong_.empty() || ping_pending_ || !queue_.empty();
  }

  // Writes what is queued in as few system calls as the kernel allows: the handshake first, then
  // control frames (they may go between any two frames), then up to 512 frames / 1 MiB.
  void Write() {
    if (writing_ || done_ || !HasOutput()) return;
    writing_ = true;
    batch_.clear();
    batch_pos_ = 0;
    batch_off_ = 0;
    if (!handshake_.empty()) {
      batch_.push_back(Outgoing{std::move(handshake_), nullptr, false});
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
    while (taken < queue_.size() && batch_.size() < 512 && bytes < (1 << 20)) {
      bytes += queue_[taken].size();
      batch_.push_back(std::move(queue_[taken++]));
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
    WriteSome();
  }

  void WriteSome() {
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
    stream_.socket().async_write_some(
        buffers_,
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWritten(ec, n); });
  }

  void OnWritten(beast::error_code ec, size_t n) {
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
        if (batch_[i].payload) --pending_messages_;
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
  void Advance(size_t n) {
    out_bytes_ -= std::min(out_bytes_, n);
    while (n > 0 && batch_pos_ < batch_.size()) {
      const Outgoing& o = batch_[batch_pos_];
      const size_t rest = o.size() - batch_off_;
      if (n < rest) {
        batch_off_ += n;
        return;
      }
      n -= rest;
      if (o.payload) --pending_messages_;
      ++batch_pos_;
      batch_off_ = 0;
    }
  }

  // Drops the written messages; an idle session keeps no queue capacity.
  void ReleaseWritten() {
    batch_.clear();
    buffers_.clear();
    if (queue_.empty()) {
      std::vector<Outgoing>().swap(batch_);
      std::vector<asio::const_buffer>().swap(buffers_);
      std::vector<Outgoing>().swap(queue_);
    }
  }

  // How long a closing session waits for its peer: to take the frame in flight and the close frame,
  // and to answer with its own close and end the connection (the closing handshake, §7.1.1).
  std::chrono::milliseconds CloseTimeout() const { return HttpTimeout(); }

  // Sends a close frame after what is queued (after the frame being written when `drop_unsent`),
  // then ends the session once the peer closed or the close deadline passed.
  void CloseWith(uint16_t code, std::string_view reason, Report report, bool drop_unsent = false) {
    if (closing_ || done_) return;
    closing_ = true;
    read_paused_ = false;
    over_bound_since_.reset();
    ReportClose(report);
    if (drop_unsent) {
      for (const Outgoing& o : queue_) {
        out_bytes_ -= o.size();
        if (o.payload) --pending_messages_;
      }
      queue_.clear();
      out_bytes_ -= pong_.size() + (ping_pending_ ? kPingFrame.size() : 0);
      pong_.clear();
      ping_pending_ = false;
      if (writing_) trim_batch_ = true;
    }
    close_deadline_ = SteadyClock::now() + CloseTimeout();
    ArmTimer();
    Push(Outgoing{ws::EncodeClose(code, reason), nullptr, false});
    ReadFrames();  // drain what the peer sends meanwhile
  }

  // The last frame or response is written: send FIN and wait (reading) for the peer's, at most
  // until the close deadline. Closing at once could reset the connection (unread bytes) and with
  // it the data still in the kernel's send buffer.
  void ShutdownAndLinger() {
    if (done_) return;
    if (!closing_) {  // an HTTP response that ends its connection
      closing_ = true;
      close_deadline_ = SteadyClock::now() + CloseTimeout();
      stream_.expires_never();
      ArmTimer();
    }
    lingering_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || peer_eof_) return Finish();
    stream_.socket().non_blocking(true, ec);
    ReadFrames();
  }

  void EndAbruptly() {
    ReportClose(kAbrupt);
    Finish();
  }

  void ReportClose(Report report) {
    if (!opened_ || reported_ || report == kNoReport) return;
    reported_ = true;
    server_.service.OnClose(id_, report == kClean);
  }

  void Finish() {
    if (done_) return;
    done_ = true;
    if (opened_) {
      if (!reported_) ReportClose(kAbrupt);
      server_.metrics.connections_open.fetch_sub(1, std::memory_order_relaxed);
    }
    timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    server_.Unregister(this);
  }

  beast::tcp_stream stream_;
  Server::Impl& server_;
  asio::steady_timer timer_;  // see ArmTimer
  // Only while the connection speaks HTTP: freed at the upgrade.
  struct HttpState {
    beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
  };
  std::unique_ptr<HttpState> http_;
  bool keep_alive_ = false;
  protocol::ConnectRequest connect_;

  bool websocket_ = false;
  bool opened_ = false;
  bool reported_ = false;
  bool closing_ = false;    // a close frame (or last response) is queued: nothing else is sent
  bool lingering_ = false;  // ... and written, FIN sent: waiting for the peer's end
  bool done_ = false;
  bool reading_ = false;   // a read wait is pending
  bool peer_eof_ = false;  // the peer shut down its sending side
  SessionId id_ = 0;
  ws::MessageReader reader_;
  std::string inbuf_;
  SteadyClock::time_point last_rx_;
  SteadyClock::time_point last_ping_;
  SteadyClock::time_point close_deadline_;
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
  size_t pending_messages_ = 0;  // text messages queued or being written
  std::optional<SteadyClock::time_point> over_bound_since_;  // out_bytes_ over the bound since
  bool writing_ = false;
  bool batching_ = false;  // queuing a batch: write once at its end
  // Bytes of messages handed to the service and not yet processed by the engine thread. Above
  // HighWater the session stops reading (TCP backpressure) until it falls below LowWater, so a
  // flooding client cannot grow the engine's inbox without bound.
  std::atomic<size_t> inflight_bytes_{0};
  bool read_paused_ = false;  // backpressure: inflight or outbound over its bound
  const bool over_cap_;       // accepted beyond max_connections: one request, healthz only
  size_t HighWater() const { return 16 * server_.options.max_frame_bytes; }
  size_t LowWater() const { return 8 * server_.options.max_frame_bytes; }
};

void Server::Impl::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu);
  sessions.insert(s.get());
}

void Server::Impl::Unregister(Session* s) {
  std::lock_guard lock(mu);
  sessions.erase(s);
  if (sessions.empty()) all_gone.notify_all();
}

void Server::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      // Out of file descriptors or similar: retry after a pause instead of spinning.
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    bool over_cap = false;
    if (open_sockets.load(std::memory_order_relaxed) >= options.max_connections) {
      // Over the limit. A few sockets may still send one request with a short deadline, so that
      // GET /v1/healthz reports the process and not the cap; they are counted apart and bounded.
      if (over_cap_sockets.load(std::memory_order_relaxed) < options.max_over_cap_sockets) {
        over_cap = true;
      } else {
        // Beyond that: a short 503 and close, without reading the request.
        metrics.connections_refused.fetch_add(1, std::memory_order_relaxed);
        static const std::string kBody =
            R"({"error":{"code":"limit_exceeded","message":"too many connections, retry"}})";
        static const std::string kBusy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: " +
            std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
        beast::error_code ignored;
        asio::write(socket, asio::buffer(kBusy), ignored);
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        return Accept();
      }
    }
    (over_cap ? over_cap_sockets : open_sockets).fetch_add(1, std::memory_order_relaxed);
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(std::move(socket), *this, over_cap);
    Register(session);
    session->Start();
    Accept();
  });
}

Server::Server(NetOptions options, Service& service, protocol::Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), service, metrics)) {}

Server::~Server() {
  Stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

Result<uint16_t> Server::Listen() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return MakeError(ErrorCode::kBadRequest, "bad listen address " + impl_->options.host);
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal, "cannot listen on " + impl_->options.host + ":" +
                                               std::to_string(impl_->options.port) + ": " +
                                               ec.message());
  }
  impl_->Accept();
  return a.local_endpoint().port();
}

void Server::OnSignal(std::function<void()> handler) {
  impl_->signals.add(SIGINT);
  impl_->signals.add(SIGTERM);
  impl_->signals.async_wait([handler = std::move(handler)](beast::error_code ec, int) {
    if (!ec) handler();
  });
}

void Server::Run() {
  int n = impl_->options.io_threads > 0
              ? impl_->options.io_threads
              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto guard = asio::make_work_guard(impl_->ioc);
  for (int i = 1; i < n; ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

void Server::StopAccepting() {
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
    impl_->signals.cancel(ec);
  });
  // Sockets still in their HTTP phase would otherwise finish an upgrade after the shutdown began.
  std::lock_guard lock(impl_->mu);
  for (Session* s : impl_->sessions) s->PostCutIfHttp();
}

bool Server::WaitForSessions(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->all_gone.wait_for(lock, timeout, [this] { return impl_->sessions.empty(); });
}

void Server::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    for (Session* s : impl_->sessions) {
      // Sessions hold themselves alive through their pending operations; cutting them from their
      // own strand is safe because the set entry is removed only in Finish on that strand.
      s->PostCut();
    }
  }
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
    impl_->signals.cancel(ec);
  });
  impl_->ioc.stop();
}

}  // namespace presenced::net
