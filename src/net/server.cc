#include "net/server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <condition_variable>
#include <deque>
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
  std::vector<std::thread> threads;

  // Sessions are created on many strands; the set is only touched on creation, end and shutdown,
  // so a mutex is simpler than routing those through a strand of their own.
  std::mutex mu;
  std::condition_variable all_gone;
  std::unordered_set<Session*> sessions;
};

// One TCP connection: HTTP requests until it upgrades, then WebSocket messages. Everything runs on
// the session's strand (the executor of its stream).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server)
      : stream_(std::move(socket)),
        server_(server),
        heartbeat_(stream_.get_executor()),
        reader_(server.options.max_frame_bytes) {}

  ~Session() { server_.open_sockets.fetch_sub(1, std::memory_order_relaxed); }

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
        asio::post(stream_.get_executor(), [self] {
          if (self->paused_ && !self->closing_ && !self->done_ &&
              self->inflight_bytes_.load(std::memory_order_acquire) < self->LowWater()) {
            self->paused_ = false;
            self->ReadFrames();
          }
        });
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
    size_t size() const { return header.size() + (payload ? payload->size() : 0); }
  };

  // ----- HTTP ---------------------------------------------------------------------------------
  void ReadRequest() {
    if (!http_) http_ = std::make_unique<HttpState>();
    auto& parser = http_->parser;
    parser.emplace();
    parser->body_limit(server_.options.max_http_body_bytes);
    parser->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::milliseconds(server_.options.handshake_timeout_ms));
    http::async_read(
        stream_, http_->buffer, *parser,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return WriteHttp(
          413, protocol::ErrorBody(MakeError(ErrorCode::kTooLarge, "request body too large")),
          "application/json", false);
    }
    if (ec) return Finish();  // timeout, EOF, malformed: nothing to answer
    auto& req = http_->parser->get();
    protocol::HttpRequest r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.authorization = std::string(req[http::field::authorization]);
    r.body = req.body();
    keep_alive_ = req.keep_alive();

    std::string_view path = r.target;
    path = path.substr(0, path.find('?'));
    if (path == "/v1/ws") {
      if (!beast::websocket::is_upgrade(req)) {
        return WriteHttp(426,
                         protocol::ErrorBody(MakeError(ErrorCode::kBadRequest,
                                                       "this endpoint needs a WebSocket upgrade")),
                         "application/json", false);
      }
      return Upgrade(r, std::string(req[http::field::sec_websocket_key]),
                     std::string(req[http::field::sec_websocket_version]));
    }
    stream_.expires_never();
    server_.service.HandleHttp(std::move(r), [self =
                                                  shared_from_this()](protocol::HttpResponse resp) {
      asio::post(self->stream_.get_executor(), [self, resp = std::move(resp)]() mutable {
        self->WriteHttp(resp.status, std::move(resp.body), resp.content_type, self->keep_alive_);
      });
    });
  }

  void WriteHttp(unsigned status, std::string body, std::string_view content_type,
                 bool keep_alive) {
    auto res =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "presenced");
    res->set(http::field::content_type, content_type);
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(server_.options.handshake_timeout_ms));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) return self->Finish();
                        self->ReadRequest();
                      });
  }

  void Upgrade(const protocol::HttpRequest& r, std::string key, std::string version) {
    if (key.empty() || version != "13") {
      return WriteHttp(
          400, protocol::ErrorBody(MakeError(ErrorCode::kBadRequest, "bad WebSocket handshake")),
          "application/json", false);
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
    // The 101 response waits in the write queue and leaves in one write with the `connected` frame
    // (and, when the client pipelined requests, their replies): one system call per connection
    // instead of three.
    std::string handshake =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::AcceptKey(key) + "\r\nServer: presenced\r\n\r\n";
    out_bytes_ += handshake.size();
    queue_.push_back(Outgoing{std::move(handshake), nullptr});
    OpenWebSocket();
  }

  // ----- WebSocket ----------------------------------------------------------------------------
  class PeerImpl final : public protocol::Peer {
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
    ArmHeartbeat();
    if (!ProcessBytes(early.data(), early.size())) return;
    ReadFrames();
  }

  // Waits until the socket is readable, then reads into the I/O thread's buffer: a session holds
  // only the bytes of an incomplete frame, not a read buffer of its own.
  void ReadFrames() {
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self = shared_from_this()](beast::error_code ec) {
                                  // An error here (reset) is an abrupt drop.
                                  if (ec) return self->EndAbruptly();
                                  self->ReadAvailable();
                                });
  }

  void ReadAvailable() {
    thread_local std::vector<char> buf(64 * 1024);
    for (int round = 0; round < 4; ++round) {
      beast::error_code ec;
      const size_t n = stream_.socket().read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      // EOF or reset without a close frame: an abrupt drop.
      if (ec) return EndAbruptly();
      last_rx_ = SteadyClock::now();
      if (!ProcessBytes(buf.data(), n)) return;
      if (inflight_bytes_.load(std::memory_order_acquire) >= HighWater()) {
        paused_ = true;  // resumed by OnProcessed
        return;
      }
      if (n < buf.size()) break;
    }
    ReadFrames();
  }

  // Parses what arrived together with what was left of an incomplete frame; false when the
  // session is closing.
  bool ProcessBytes(const char* data, size_t n) {
    size_t used = 0;
    bool more;
    if (inbuf_.empty()) {
      more = ProcessInput(std::string_view(data, n), used);
      if (more) inbuf_.assign(data + used, n - used);
    } else {
      inbuf_.append(data, n);
      more = ProcessInput(inbuf_, used);
      inbuf_.erase(0, used);
    }
    if (inbuf_.empty()) std::string().swap(inbuf_);
    return more;
  }

  // Parses bytes into messages; `used` is how many it consumed.
  bool ProcessInput(std::string_view input, size_t& offset) {
    offset = 0;
    bool keep_reading = true;
    while (keep_reading && !closing_) {
      ws::Message m;
      size_t used = 0;
      auto r = reader_.Next(input.substr(offset), m, used);
      offset += used;
      if (r == ws::MessageReader::Result::kNeedMore) break;
      if (r == ws::MessageReader::Result::kError) {
        CloseWith(reader_.close_code(), reader_.error(), kClean);
        keep_reading = false;
        break;
      }
      switch (m.opcode) {
        case ws::Opcode::kText:
        case ws::Opcode::kBinary: {
          const size_t bytes = m.payload.size() + 64;  // + per-message overhead
          inflight_bytes_.fetch_add(bytes, std::memory_order_acq_rel);
          server_.service.OnMessage(id_, std::move(m.payload), SteadyClock::now(),
                                    [weak = weak_from_this(), bytes] {
                                      if (auto self = weak.lock()) self->OnProcessed(bytes);
                                    });
          break;
        }
        case ws::Opcode::kPing:
          Push(Outgoing{ws::EncodeFrame(ws::Opcode::kPong, m.payload), nullptr});
          break;
        case ws::Opcode::kPong:
          break;
        case ws::Opcode::kClose: {
          uint16_t code = ws::kCloseNormal;
          if (m.payload.size() == 1) {
            code = ws::kCloseProtocolError;
          } else if (m.payload.size() >= 2) {
            code = static_cast<uint16_t>((static_cast<uint8_t>(m.payload[0]) << 8) |
                                         static_cast<uint8_t>(m.payload[1]));
            // Echo only codes a peer may send (RFC 6455 7.4); anything else is a protocol error.
            const bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                               (code >= 3000 && code <= 4999);
            if (!valid) code = ws::kCloseProtocolError;
          }
          CloseWith(code, "", kClean);
          keep_reading = false;
          break;
        }
        default:
          break;
      }
    }
    return keep_reading && !closing_;
  }

  void ArmHeartbeat() {
    const auto interval = std::chrono::milliseconds(server_.options.heartbeat_ms);
    // While closing no pings are sent, so only the silence deadline matters.
    const auto next = closing_ ? last_rx_ + 2 * interval
                               : std::min(last_ping_ + interval, last_rx_ + 2 * interval);
    heartbeat_.expires_at(next);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->done_) return;
      self->OnHeartbeat();
    });
  }

  void OnHeartbeat() {
    const auto now = SteadyClock::now();
    const auto interval = std::chrono::milliseconds(server_.options.heartbeat_ms);
    // Not reading (backpressure) is the server's doing, not the client's silence.
    if (paused_) last_rx_ = now;
    if (now - last_rx_ >= 2 * interval) return EndAbruptly();  // silent for two intervals
    if (now - last_ping_ >= interval && !closing_) {
      last_ping_ = now;
      Push(Outgoing{ws::EncodeFrame(ws::Opcode::kPing, ""), nullptr});
    }
    ArmHeartbeat();
  }

  void Enqueue(std::shared_ptr<const std::string> message) {
    if (closing_ || done_) return;
    // One message is always accepted into an empty queue (a large snapshot must not drop a healthy
    // client); a backlog over the bound is what marks a slow consumer.
    if (out_bytes_ > 0 && out_bytes_ + message->size() > server_.options.max_outbound_bytes) {
      // A subscriber that cannot keep up is dropped as abrupt (its grace period applies, so it can
      // resume and catch up) instead of growing memory.
      server_.metrics.queue_drops_total.fetch_add(1, std::memory_order_relaxed);
      queue_.clear();
      out_bytes_ = 0;
      return CloseWith(ws::kCloseSlowConsumer, "outbound queue full", kAbrupt);
    }
    Outgoing o{ws::FrameHeader(ws::Opcode::kText, message->size()), std::move(message)};
    Push(std::move(o));
  }

  void Push(Outgoing o) {
    out_bytes_ += o.size();
    queue_.push_back(std::move(o));
    if (!writing_ && !batching_) Write();
  }

  // Writes everything queued in one gather write (coalescing frames into as few syscalls as the
  // kernel allows).
  void Write() {
    if (queue_.empty() || done_) return;
    writing_ = true;
    batch_.clear();
    buffers_.clear();
    size_t bytes = 0;
    size_t taken = 0;
    while (taken < queue_.size() && batch_.size() < 512 && bytes < (1 << 20)) {
      bytes += queue_[taken].size();
      batch_.push_back(std::move(queue_[taken++]));
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
    for (const Outgoing& o : batch_) {
      buffers_.emplace_back(asio::buffer(o.header));
      if (o.payload) buffers_.emplace_back(asio::buffer(*o.payload));
    }
    asio::async_write(stream_.socket(), buffers_,
                      [self = shared_from_this(), bytes](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->out_bytes_ -= std::min(self->out_bytes_, bytes);
                        self->ReleaseWritten();
                        if (ec) return self->EndAbruptly();
                        if (!self->queue_.empty()) return self->Write();
                        if (self->closing_) self->Finish();
                      });
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

  // Sends a close frame after what is queued, then ends the session.
  void CloseWith(uint16_t code, std::string_view reason, Report report) {
    if (closing_ || done_) return;
    closing_ = true;
    ReportClose(report);
    Push(Outgoing{ws::EncodeClose(code, reason), nullptr});
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
    heartbeat_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    server_.Unregister(this);
  }

  beast::tcp_stream stream_;
  Server::Impl& server_;
  asio::steady_timer heartbeat_;
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
  bool closing_ = false;
  bool done_ = false;
  protocol::SessionId id_ = 0;
  ws::MessageReader reader_;
  std::string inbuf_;
  SteadyClock::time_point last_rx_;
  SteadyClock::time_point last_ping_;
  std::vector<Outgoing> queue_;  // a deque would allocate even while empty
  std::vector<Outgoing> batch_;
  std::vector<asio::const_buffer> buffers_;
  size_t out_bytes_ = 0;
  bool writing_ = false;
  bool batching_ = false;  // queuing a batch: write once at its end
  // Bytes of messages handed to the service and not yet processed by the engine thread. Above
  // HighWater the session stops reading (TCP backpressure) until it falls below LowWater, so a
  // flooding client cannot grow the engine's inbox without bound.
  std::atomic<size_t> inflight_bytes_{0};
  bool paused_ = false;
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
    if (open_sockets.load(std::memory_order_relaxed) >= options.max_connections) {
      // Over the limit: a short 503 and close, without reading the request.
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
    open_sockets.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(std::move(socket), *this);
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
