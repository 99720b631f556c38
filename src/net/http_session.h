// Private to src/net. HttpSession: one accepted socket while it speaks HTTP/1.1 — it reads
// requests (Beast's parser, bounded header and body), answers the errors the network layer owns,
// passes other requests to Service::HandleHttp, checks the WebSocket opening handshake, and at a
// successful upgrade hands its socket to a WebSocketSession (websocket_session.h) and ends.
//
// Stream is a beast::tcp_stream (plain TCP), or a TlsStream (tls.h): then the TLS handshake comes
// first, under the same deadline as a request, and the last response is followed by TLS's
// close_notify. Both are compiled in http_session.cc; the plain one has no TLS code in it.
//
// Threading: everything runs on the session's strand (the executor of its stream); the
// Connection methods and the `done` callback given to the service post to it.
#pragma once

#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "net/server_impl.h"

namespace presenced::net {

template <class Stream>
class HttpSession final : public Connection,
                          public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  // What the WebSocket phase reads and writes through: the socket itself, or the TLS stream.
  using UpgradedStream = std::conditional_t<kTls, Stream, tcp::socket>;

  HttpSession(Stream stream, Server::Impl& server, SocketSlot slot, bool over_cap);
  ~HttpSession() override;

  void Start();

  void PostCut() override;
  void PostCutIfHttp() override;
  void PostCheckDeadlines() override;

 private:
  using Request = beast::http::request<beast::http::string_body>;
  using HeaderList = std::vector<std::pair<beast::http::field, std::string_view>>;

  // The TCP layer: the stream itself, or the one under TLS.
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }
  // The strand (the stream's executor; also valid once the stream was handed over).
  asio::any_io_executor executor() { return timer_.get_executor(); }
  std::chrono::milliseconds HttpTimeout() const;
  void Handshake();  // TLS
  void ReadRequest();
  void OnRequest(beast::error_code ec);
  void OnBadRequest(beast::error_code ec);
  void RefuseOverCap();
  // An error response from the service (Service::ErrorResponse); the connection closes.
  void WriteError(unsigned status, ErrorCode code, std::string message,
                  const HeaderList& extra = {});
  void WriteHttp(unsigned status, std::string body, std::string_view content_type, bool keep_alive,
                 const HeaderList& extra = {},
                 const std::vector<std::pair<std::string, std::string>>& more = {});
  void Upgrade(const Request& req, const HttpRequest& r);
  void ShutdownAndLinger();
  void WaitReadable();  // plain TCP: TLS lingers in its shutdown
  void Drain();
  void ArmCloseTimer();
  void OnTimer();
  void Finish();

  Stream stream_;
  Server::Impl& server_;
  SocketSlot slot_;
  asio::steady_timer timer_;  // the over-cap read timeout, then the close deadline
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  bool keep_alive_ = false;
  bool reading_request_ = false;
  bool lingering_ = false;  // the last response is written, FIN sent: waiting for the peer's end
  bool waiting_ = false;    // a readability wait is pending (lingering)
  bool done_ = false;       // finished, or the socket was handed to a WebSocketSession
  TimeMs close_deadline_ = 0;
  const bool over_cap_;  // accepted beyond max_connections: one request, healthz only
};

}  // namespace presenced::net
