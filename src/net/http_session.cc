// The HTTP phase of a connection (see http_session.h). Runs on the session's strand.
//
// Ending: a session that sends a last response shuts down its sending side and keeps reading
// (discarding) until the peer closes or the close deadline passes. Reading on means the kernel
// never answers the peer's unread bytes with a reset, which would destroy the response still in
// the send buffer. Over TLS the shutdown is TLS's: the close_notify, then (discarding) until the
// peer's, or its end.
#include "net/http_session.h"

#include <boost/beast/websocket/rfc6455.hpp>

#include "net/tls.h"
#include "net/ws_codec.h"

namespace presenced::net {

namespace http = beast::http;

namespace {

// What an over-cap socket waits at most for its request.
constexpr std::chrono::milliseconds kOverCapReadTimeout{1000};

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

void StartHttpSession(tcp::socket socket, Server::Impl& server, SocketSlot slot, bool over_cap) {
  auto session = std::make_shared<HttpSession<beast::tcp_stream>>(
      beast::tcp_stream(std::move(socket)), server, std::move(slot), over_cap);
  server.Register(session.get());
  session->Start();
}

void StartTlsHttpSession(tcp::socket socket, std::shared_ptr<ssl::context> context,
                         Server::Impl& server, SocketSlot slot, bool over_cap) {
  auto session = std::make_shared<HttpSession<TlsStream>>(
      TlsStream(std::move(socket), std::move(context)), server, std::move(slot), over_cap);
  server.Register(session.get());
  session->Start();
}

template <class Stream>
HttpSession<Stream>::HttpSession(Stream stream, Server::Impl& server, SocketSlot slot,
                                 bool over_cap)
    : stream_(std::move(stream)),
      server_(server),
      slot_(std::move(slot)),
      timer_(stream_.get_executor()),
      over_cap_(over_cap) {}

// Normally unregistered by Finish or the hand-off; this covers a session whose last handler was
// dropped (a service that never called `done`).
template <class Stream>
HttpSession<Stream>::~HttpSession() {
  server_.Unregister(this);
}

template <class Stream>
void HttpSession<Stream>::Start() {
  asio::dispatch(executor(), [self = this->shared_from_this()] {
    if constexpr (kTls) {
      self->Handshake();
    } else {
      self->ReadRequest();
    }
  });
}

template <class Stream>
void HttpSession<Stream>::PostCut() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(executor(), [self = std::move(self)] { self->Finish(); });
  }
}

template <class Stream>
void HttpSession<Stream>::PostCutIfHttp() {
  PostCut();
}

template <class Stream>
void HttpSession<Stream>::PostCheckDeadlines() {
  if (auto self = this->weak_from_this().lock()) {
    asio::post(executor(), [self = std::move(self)] {
      if (self->lingering_ && !self->done_) self->OnTimer();
    });
  }
}

template <class Stream>
std::chrono::milliseconds HttpSession<Stream>::HttpTimeout() const {
  const std::chrono::milliseconds t(server_.options.handshake_timeout_ms);
  return over_cap_ ? std::min(t, kOverCapReadTimeout) : t;
}

// TLS: the handshake has the time a request has (a client that connects and sends nothing is
// closed after handshake_timeout_ms), then the first request has it again. A plain HTTP request
// fails here.
template <class Stream>
void HttpSession<Stream>::Handshake() {
  if constexpr (kTls) {
    Tcp().expires_after(HttpTimeout());
    stream_.async_handshake(ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (self->done_) return;
                              if (ec) return self->Finish();
                              self->ReadRequest();
                            });
  }
}

template <class Stream>
void HttpSession<Stream>::ReadRequest() {
  parser_.emplace();
  parser_->body_limit(server_.options.max_http_body_bytes);
  parser_->header_limit(16 * 1024);
  reading_request_ = true;
  if (over_cap_) {
    // The stream's own timeout would close the socket; this one only stops the read, so the
    // socket can still be told why it waited.
    Tcp().expires_never();
    timer_.expires_after(HttpTimeout());
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec && !self->done_ && self->reading_request_) self->Tcp().socket().cancel(ec);
    });
  } else {
    Tcp().expires_after(HttpTimeout());
  }
  http::async_read(
      stream_, buffer_, *parser_,
      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
}

template <class Stream>
void HttpSession<Stream>::OnRequest(beast::error_code ec) {
  reading_request_ = false;
  if (done_) return;
  if (over_cap_) {
    timer_.cancel();
    if (ec == asio::error::operation_aborted) ec = beast::error::timeout;
  }
  if (ec) return OnBadRequest(ec);
  auto& req = parser_->get();
  HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  r.authorization = std::string(req[http::field::authorization]);
  r.origin = std::string(req[http::field::origin]);
  r.host = std::string(req[http::field::host]);
  r.body = req.body();
  {
    beast::error_code rec;
    const auto peer = Tcp().socket().remote_endpoint(rec);
    if (!rec) r.remote = peer.address().to_string() + ":" + std::to_string(peer.port());
  }
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
  Tcp().expires_never();
  server_.service.HandleHttp(std::move(r), [self = this->shared_from_this()](HttpResponse resp) {
    asio::post(self->executor(), [self, resp = std::move(resp)]() mutable {
      self->WriteHttp(resp.status, std::move(resp.body), resp.content_type, self->keep_alive_, {},
                      resp.headers);
    });
  });
}

// A request that could not be read: answered when the peer may still be listening for why.
template <class Stream>
void HttpSession<Stream>::OnBadRequest(beast::error_code ec) {
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

template <class Stream>
void HttpSession<Stream>::RefuseOverCap() {
  server_.counters.connections_refused.fetch_add(1, std::memory_order_relaxed);
  WriteError(503, ErrorCode::kLimitExceeded, "too many connections, retry");
}

template <class Stream>
void HttpSession<Stream>::WriteError(unsigned status, ErrorCode code, std::string message,
                                     const HeaderList& extra) {
  HttpResponse resp = server_.service.ErrorResponse(status, MakeError(code, std::move(message)));
  WriteHttp(resp.status, std::move(resp.body), resp.content_type, false, extra);
}

template <class Stream>
void HttpSession<Stream>::WriteHttp(unsigned status, std::string body,
                                    std::string_view content_type, bool keep_alive,
                                    const HeaderList& extra,
                                    const std::vector<std::pair<std::string, std::string>>& more) {
  if (done_) return;
  auto res =
      std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
  res->set(http::field::server, "presenced");
  if (!content_type.empty()) res->set(http::field::content_type, content_type);  // not on 204
  for (const auto& [field, value] : extra) res->set(field, value);
  for (const auto& [field, value] : more) res->set(field, value);
  res->keep_alive(keep_alive);  // keeps a Connection token set in `extra` (e.g. Upgrade)
  res->body() = std::move(body);
  res->prepare_payload();
  Tcp().expires_after(HttpTimeout());
  http::async_write(stream_, *res,
                    [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                      if (ec) return self->Finish();
                      if (!res->keep_alive()) return self->ShutdownAndLinger();
                      self->ReadRequest();
                    });
}

// GET /v1/ws: the opening handshake (RFC 6455 §4.2), then the service's decision.
template <class Stream>
void HttpSession<Stream>::Upgrade(const Request& req, const HttpRequest& r) {
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
                      "bad WebSocket handshake: Sec-WebSocket-Version must be 13", kUpgradeHeaders);
  }
  const std::string_view key = req[http::field::sec_websocket_key];
  if (req.count(http::field::sec_websocket_key) != 1 || !ws::IsValidClientKey(key)) {
    return WriteError(
        400, ErrorCode::kBadRequest,
        "bad WebSocket handshake: Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
  }
  auto accepted = server_.service.AuthorizeUpgrade(r);
  if (!accepted.ok()) {
    server_.counters.connections_refused.fetch_add(1, std::memory_order_relaxed);
    const ErrorCode code = accepted.error().code;
    const unsigned status = code == ErrorCode::kUnauthorized ? 401
                            : code == ErrorCode::kForbidden  ? 403
                            : code == ErrorCode::kTooLarge   ? 413
                                                             : 400;
    HttpResponse resp = server_.service.ErrorResponse(status, accepted.error());
    return WriteHttp(resp.status, std::move(resp.body), resp.content_type, false);
  }
  auto release = [this]() -> UpgradedStream {
    if constexpr (kTls) {
      Tcp().expires_never();
      return std::move(stream_);  // nothing of this session touches it any more (done_)
    } else {
      return stream_.release_socket();
    }
  };
  UpgradedSocket<UpgradedStream> upgraded{
      release(), std::move(slot_), {}, {}, std::move(*accepted)};
  // With Upgrade::sends_on_open the 101 response waits for the first write and leaves in it with
  // the service's first frame (and, when the client pipelined requests, their replies): one
  // system call per connection instead of three.
  upgraded.handshake =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      ws::AcceptKey(key) + "\r\nServer: presenced\r\n\r\n";
  // Bytes that arrived with the upgrade request belong to the WebSocket stream.
  upgraded.early_bytes.assign(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  done_ = true;
  timer_.cancel();
  // Registered before this session leaves the registry, so WaitForSessions never sees a gap.
  StartWebSocketSession(std::move(upgraded), server_);
  server_.Unregister(this);
}

// The last response is written: send FIN and wait (reading) for the peer's, at most until the
// close deadline. Closing at once could reset the connection (unread bytes) and with it the data
// still in the kernel's send buffer. Over TLS: the close_notify, and TLS's shutdown discards what
// arrives until the peer's close_notify or its end.
template <class Stream>
void HttpSession<Stream>::ShutdownAndLinger() {
  if (done_) return;
  lingering_ = true;
  Tcp().expires_never();
  close_deadline_ = server_.clock.NowMs() + HttpTimeout().count();
  ArmCloseTimer();
  if constexpr (kTls) {
    stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
      if (!self->done_) self->Finish();
    });
  } else {
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Finish();
    Tcp().socket().non_blocking(true, ec);
    WaitReadable();
  }
}

template <class Stream>
void HttpSession<Stream>::WaitReadable() {
  if (waiting_ || done_) return;
  waiting_ = true;
  Tcp().socket().async_wait(tcp::socket::wait_read,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              self->waiting_ = false;
                              if (self->done_) return;
                              if (ec) return self->Finish();
                              self->Drain();
                            });
}

// Reads and discards what the peer still sends, until its EOF.
template <class Stream>
void HttpSession<Stream>::Drain() {
  for (int round = 0; round < 4; ++round) {
    beast::error_code ec;
    Tcp().socket().read_some(ReadBuffer(server_.options.read_buffer_bytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) return Finish();
  }
  WaitReadable();
}

template <class Stream>
void HttpSession<Stream>::ArmCloseTimer() {
  const TimeMs wait = std::max<TimeMs>(0, close_deadline_ - server_.clock.NowMs());
  timer_.expires_after(std::chrono::milliseconds(wait));
  timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec || self->done_) return;
    self->OnTimer();
  });
}

template <class Stream>
void HttpSession<Stream>::OnTimer() {
  // The peer had its time to take the response.
  if (server_.clock.NowMs() >= close_deadline_) return Finish();
  ArmCloseTimer();
}

template <class Stream>
void HttpSession<Stream>::Finish() {
  if (done_) return;
  done_ = true;
  timer_.cancel();
  beast::error_code ec;
  Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
  Tcp().socket().close(ec);
  server_.Unregister(this);
}

template class HttpSession<beast::tcp_stream>;
template class HttpSession<TlsStream>;

}  // namespace presenced::net
