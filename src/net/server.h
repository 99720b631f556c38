// The network layer: an HTTP/1.1 + WebSocket server on Boost.Asio/Beast that adapts sockets to the
// Service interface. A self-contained facade: it links only presenced_common (and Boost, OpenSSL),
// knows nothing of presence, and reaches the logic only through Service. It owns sockets,
// per-session strands, timeouts and bounded outbound queues, and enforces RFC 6455 (handshake,
// framing, UTF-8, closing handshake; see ws_codec.h and docs/architecture.md, "The network layer").
// With NetOptions::tls_cert the listen port speaks TLS (OpenSSL through Asio) and nothing else;
// the Service sees the same requests and sessions either way.
//
// Threading: Run() drives `io_threads` threads. Each session runs on its own strand. Service
// methods are called from I/O threads; the Peer handed to OnOpen is thread-safe. Asio and Beast
// headers are included only in src/net/*.cc and src/net's private headers.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "common/http_client.h"
#include "common/reactor.h"
#include "common/task_loop.h"
#include "common/transport.h"

namespace presenced::net {

struct NetOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7070;                 // 0 = any free port
  int io_threads = 0;                   // 0 = one per usable CPU (common/cpu.h)
  size_t max_frame_bytes = 65536;       // largest client WebSocket message
  TimeMs heartbeat_ms = 15000;          // default ping interval; silent for 2 = abrupt drop
  TimeMs handshake_timeout_ms = 10000;  // to receive a complete HTTP request
  size_t max_http_body_bytes = 65536;
  size_t max_connections = 10000;       // open sockets (HTTP and WebSocket)
  size_t max_outbound_bytes = 4 << 20;  // queued to one WebSocket before it is dropped
  // Sockets accepted beyond max_connections that may still send one request (answered 200 for
  // GET /v1/healthz, 503 otherwise), each for at most min(handshake_timeout_ms, 1 s); any more
  // are answered 503 without being read.
  size_t max_over_cap_sockets = 32;
  // Tuning of the I/O path (not settings of the server; they are here so they are defined once):
  size_t read_buffer_bytes = 64 * 1024;  // each I/O thread's read buffer, shared by its sessions
  size_t write_batch_frames = 512;       // frames taken into one gather write, at most
  size_t write_batch_bytes = 1 << 20;    // bytes taken into one gather write (a frame may pass it)
  // Reading stops while this many max_frame_bytes of input wait for the service (backpressure).
  size_t input_high_water_frames = 16;
  // TLS on the listen port (https and wss only; plain HTTP fails the handshake): PEM files of the
  // certificate chain (the server's certificate first, then its intermediates) and of its
  // unencrypted private key. Both set, or both empty (plain TCP). Read by Listen, and again by
  // each ReloadTls.
  std::string tls_cert;
  std::string tls_key;
};

// Why a WebSocket session ended, as the network layer saw it.
enum class CloseCause : uint8_t {
  kClientClosed,      // the client's close frame
  kConnectionLost,    // the TCP connection ended (or failed) without a close frame
  kHeartbeatTimeout,  // silent for two heartbeat intervals
  kSlowConsumer,      // 4008: the output did not drain (or grew past twice the bound)
  kProtocolError,     // 1002: a frame RFC 6455 forbids
  kInvalidUtf8,       // 1007
  kMessageTooLarge,   // 1009: over max_frame_bytes
  kServiceClosed,     // the service closed it (Peer::Close; the code says why)
  kServerStopped,     // the server stopped (Stop, or a cut after StopAccepting)
};
inline constexpr size_t kCloseCauseCount = 9;
// The cause's name, as in `presenced_disconnects_total{reason=...}` and the logs.
std::string_view CloseCauseName(CloseCause cause);

struct CloseInfo {
  CloseCause cause = CloseCause::kConnectionLost;
  uint16_t code = 0;   // the close code sent (0: none)
  std::string reason;  // the close frame's reason text, if any
};

// What the network layer counts. Updated by I/O threads; read (relaxed) from any thread.
struct Counters {
  std::atomic<uint64_t> connections_open{0};     // WebSocket sessions now
  std::atomic<uint64_t> connections_total{0};    // accepted WebSocket sessions
  std::atomic<uint64_t> connections_refused{0};  // over max connections, refused upgrades
  std::atomic<uint64_t> queue_drops_total{0};    // sessions dropped for a full outbound queue
  std::array<std::atomic<uint64_t>, kCloseCauseCount> disconnects{};  // ended sessions, by cause
};

// An accepted WebSocket upgrade.
struct Upgrade {
  // The service's own state for the session, handed back untouched to OnOpen.
  std::shared_ptr<void> attachment;
  // The session's ping interval; 0 = NetOptions::heartbeat_ms. Silent for two intervals = dropped.
  TimeMs heartbeat_ms = 0;
  // The service sends a frame as soon as the session opens (presenced: `connected`): the 101
  // response then waits for it and both leave in one write. Otherwise the 101 is written at once.
  bool sends_on_open = false;
};

// What the network layer calls. Implemented by the code behind it (src/server, or a test).
class Service {
 public:
  virtual ~Service() = default;
  // A WebSocket upgrade request (GET /v1/ws) that passed the handshake checks: accepted, or why it
  // is refused (kUnauthorized = 401, kTooLarge = 413, anything else 400). Called synchronously on
  // an I/O thread.
  virtual Result<Upgrade> AuthorizeUpgrade(const HttpRequest& req) = 0;
  // Any other HTTP request. `done` must be called once, from any thread (inline is fine).
  virtual void HandleHttp(HttpRequest req, std::function<void(HttpResponse)> done) = 0;
  // The upgrade is complete: `attachment` is the one AuthorizeUpgrade returned.
  virtual void OnOpen(SessionId session, std::shared_ptr<void> attachment,
                      std::shared_ptr<Peer> peer) = 0;
  // A text (or binary) message. `processed` must be called (from any thread) once the message has
  // been handled; until then its bytes count against the session's in-flight bound.
  virtual void OnMessage(SessionId session, std::string text,
                         std::chrono::steady_clock::time_point received,
                         std::function<void()> processed) = 0;
  // The session ended; `clean` after a close frame (either side), false for an abrupt drop;
  // `info` says why. Reported exactly once per opened session.
  virtual void OnClose(SessionId session, bool clean, const CloseInfo& info) = 0;
  // The session's unsent output fell to at most half the outbound bound after its peer's
  // NotifyWhenDrained. Called on the session's I/O thread; not after OnClose.
  virtual void OnDrained(SessionId session) = 0;
  // The response for an error the network layer answers itself (400, 405, 413, 426, 431, 503 and
  // refused upgrades), so every error body has the service's shape. `status` is the status to
  // send. Called on any I/O thread (and once in Listen); must be thread-safe.
  virtual HttpResponse ErrorResponse(unsigned status, const Error& error) const = 0;
};

class Server {
 public:
  // `service` and `clock` must outlive the Server. `clock` (monotonic in production: SteadyClock)
  // decides every heartbeat, silence, outbound-drain and close deadline.
  Server(NetOptions options, Service& service, const Clock& clock);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the TLS certificate and key when configured, binds and listens; returns the bound port.
  Result<uint16_t> Listen();
  // Calls `handler` (on an I/O thread) when SIGINT or SIGTERM arrives.
  void OnSignal(std::function<void()> handler);
  // Calls `handler` (on an I/O thread) each time SIGHUP arrives, until StopAccepting or Stop.
  void OnHangup(std::function<void()> handler);
  // Whether the listen port speaks TLS (NetOptions::tls_cert).
  bool tls() const;
  // Reads NetOptions::tls_cert and tls_key again: connections accepted from now on (once this
  // returned) are served with them, open ones keep the certificate they began with. An error
  // (a file unreadable, not PEM, a key that is not the certificate's; the message names the file)
  // leaves the certificate in use. Thread-safe; reads the files on the calling thread.
  Status ReloadTls();
  // Runs the I/O threads until Stop(). Blocks.
  void Run();
  // Stops accepting new connections.
  void StopAccepting();
  // Waits until every session has ended, at most `timeout`; true when all did.
  bool WaitForSessions(std::chrono::milliseconds timeout);
  // Stops the I/O threads (Run returns). Sessions still open are cut.
  void Stop();
  // Thread-safe: makes every session re-check its deadlines against the clock now (tests that
  // move a ManualClock call it instead of waiting for the sessions' timers).
  void CheckDeadlines();
  // Thread-safe; lives as long as the Server.
  const Counters& counters() const;
  // The loop the code behind the service may run its own work on (the presence engine): with one
  // I/O thread that thread, with several a strand over them. Lives as long as the Server; tasks
  // still queued when it stops are destroyed unrun.
  TaskLoop& WorkLoop();
  // Descriptors and timers on that same loop (the Redis client's sockets); lives as long as the
  // Server.
  Reactor& WorkReactor();
  // The number of I/O threads Run drives (NetOptions::io_threads, or one per usable CPU).
  int io_threads() const;

  class Impl;  // opaque: keeps Asio out of this header

 private:
  friend std::unique_ptr<HttpClient> MakeHttpClient(Server& server, const std::string& ca_file);
  std::unique_ptr<Impl> impl_;
};

}  // namespace presenced::net
