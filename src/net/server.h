// The network layer: an HTTP/1.1 + WebSocket server on Boost.Asio/Beast that adapts sockets to the
// Service interface. It knows nothing of presence; it owns sockets, per-session strands, timeouts
// and bounded outbound queues, and enforces RFC 6455 (handshake, framing, UTF-8, closing
// handshake; see ws_codec.h and docs/architecture.md, "The network layer").
//
// Threading: Run() drives `io_threads` threads. Each session runs on its own strand. Service
// methods are called from I/O threads; the Peer handed to OnOpen is thread-safe. Asio and Beast
// headers are included only in src/net/*.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "protocol/metrics.h"
#include "protocol/peer.h"

namespace presenced::net {

struct NetOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7070;                 // 0 = any free port
  int io_threads = 0;                   // 0 = one per core
  size_t max_frame_bytes = 65536;       // largest client WebSocket message
  TimeMs heartbeat_ms = 15000;          // ping interval; silent for 2 intervals = abrupt drop
  TimeMs handshake_timeout_ms = 10000;  // to receive a complete HTTP request
  size_t max_http_body_bytes = 65536;
  size_t max_connections = 10000;       // open sockets (HTTP and WebSocket)
  size_t max_outbound_bytes = 4 << 20;  // queued to one WebSocket before it is dropped
  // Sockets accepted beyond max_connections that may still send one request (answered 200 for
  // GET /v1/healthz, 503 otherwise), each for at most min(handshake_timeout_ms, 1 s); any more
  // are answered 503 without being read.
  size_t max_over_cap_sockets = 32;
};

// What the network layer calls. Implemented by the server.
class Service {
 public:
  virtual ~Service() = default;
  // A WebSocket upgrade request (GET /v1/ws): the connect request, or why it is refused.
  // Called synchronously on an I/O thread.
  virtual Result<protocol::ConnectRequest> AuthorizeUpgrade(const HttpRequest& req) = 0;
  // Any other HTTP request. `done` must be called once, from any thread.
  virtual void HandleHttp(HttpRequest req,
                          std::function<void(HttpResponse)> done) = 0;
  virtual void OnOpen(SessionId session, protocol::ConnectRequest request,
                      std::shared_ptr<Peer> peer) = 0;
  // A text message. `processed` must be called (from any thread) once the message has been
  // handled; until then its bytes count against the session's in-flight bound.
  virtual void OnMessage(SessionId session, std::string text,
                         std::chrono::steady_clock::time_point received,
                         std::function<void()> processed) = 0;
  // The session ended; `clean` after a close frame (either side), false for an abrupt drop.
  // Reported exactly once per opened session.
  virtual void OnClose(SessionId session, bool clean) = 0;
};

class Server {
 public:
  Server(NetOptions options, Service& service, protocol::Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; returns the bound port.
  Result<uint16_t> Listen();
  // Calls `handler` (on an I/O thread) when SIGINT or SIGTERM arrives.
  void OnSignal(std::function<void()> handler);
  // Runs the I/O threads until Stop(). Blocks.
  void Run();
  // Stops accepting new connections.
  void StopAccepting();
  // Waits until every session has ended, at most `timeout`; true when all did.
  bool WaitForSessions(std::chrono::milliseconds timeout);
  // Stops the I/O threads (Run returns). Sessions still open are cut.
  void Stop();

  class Impl;  // opaque: keeps Asio out of this header

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace presenced::net
