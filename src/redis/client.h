// redis::Client: one connection to Redis, driven by the server's event loop (common/reactor.h):
// hiredis 0.14's asynchronous context, its socket watched by the loop, no thread of its own.
//
// - Commands are pipelined: each is written at once, replies come back in order.
// - The connection is kept: after a loss (or a failed connect) it reconnects with exponential
//   backoff and jitter; `on_state` says when it is up (AUTH and SELECT done) and when it is down.
//   A command given while down, or lost with the connection, is answered `kUnavailable`: the
//   caller decides whether to retry (nothing is queued behind its back).
// - Scripts are run by SHA1 (EVALSHA); a script Redis does not hold (NOSCRIPT: Redis restarted,
//   or SCRIPT FLUSH) is sent whole once (EVAL, which caches it again).
// - Subscribe mode: a client that subscribes (Subscribe) is a dedicated subscriber connection; it
//   re-subscribes to every channel after a reconnect and then reports `on_state(true)` again, so
//   its owner resyncs (a message published while it was down is lost: Redis PUB/SUB is
//   at-most-once).
//
// Threading: everything on the reactor's loop; callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/reactor.h"

struct redisAsyncContext;  // hiredis

namespace presenced::redis {

// `redis://[[user]:password@]host[:port][/db]` (PRESENCED_REDIS_URL).
struct Url {
  std::string host;
  uint16_t port = 6379;
  std::string user;      // ACL user (Redis 6+); empty: the default user
  std::string password;  // empty: no AUTH
  int db = 0;
};
Result<Url> ParseUrl(std::string_view text);

struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError, kUnavailable };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError (the message, e.g. "ERR ..."), kUnavailable (why)
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray

  bool ok() const { return type != Type::kError && type != Type::kUnavailable; }
  static Reply Unavailable(std::string why) {
    Reply r;
    r.type = Type::kUnavailable;
    r.str = std::move(why);
    return r;
  }
};

// A Lua script, known by its SHA1.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;  // lower-case hex, as Redis names it
};

struct ClientOptions {
  Url url;
  std::string name;  // CLIENT SETNAME, for `CLIENT LIST` (letters, digits, '-', '_')
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds backoff_min{50};
  std::chrono::milliseconds backoff_max{2000};
  // A command without its reply for this long means Redis is not answering (paused, or gone
  // without a reset: a half-open connection looks up forever): the connection is dropped and
  // retried. 0: never.
  std::chrono::milliseconds reply_timeout{2000};
};

class Client {
 public:
  using Callback = std::function<void(const Reply&)>;
  using MessageCallback = std::function<void(std::string_view channel, std::string_view payload)>;

  Client(Reactor& reactor, ClientOptions options);
  ~Client();  // disconnects at once; pending callbacks are dropped unrun
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Up: connected and ready for commands (or subscribed again). Down: lost, reconnecting.
  void OnState(std::function<void(bool up)> on_state) { on_state_ = std::move(on_state); }
  void Start();  // connects (and keeps reconnecting until destroyed)
  bool up() const { return state_ == State::kReady; }
  // Connections made so far (a test sees a reconnect by it).
  uint64_t connects() const { return connects_; }

  // `allowance`: how much longer than reply_timeout this command may take by design (a blocking
  // read's own timeout).
  void Command(std::vector<std::string> args, Callback callback,
               std::chrono::milliseconds allowance = std::chrono::milliseconds(0));
  void Eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
            Callback callback);

  // Subscriber mode (no Command on this client then). Messages of every subscribed channel go to
  // `on_message`; the set survives reconnects.
  void OnMessage(MessageCallback on_message) { on_message_ = std::move(on_message); }
  // `on_subscribed` runs once Redis confirmed the subscription (a snapshot read after it misses
  // no message published after it).
  void Subscribe(const std::string& channel, std::function<void()> on_subscribed = nullptr);
  void Unsubscribe(const std::string& channel);
  // Why the client is down (the last error), for logs and health reports.
  std::string DownReason() const;

 private:
  enum class State { kIdle, kConnecting, kHandshake, kReady };
  struct Hooks;  // hiredis's C callbacks
  struct Call;   // one command's callback

  void Connect();
  void OnBytes(std::string_view bytes);
  void OnReadEnd();
  void WantWrite();
  void WriteNow();
  void Handshake();
  void Ready();
  void Subscribed(const std::string& channel);
  void Abort(std::string why);
  void Lost(std::string why);
  void Send(std::vector<std::string> args, Callback callback,
            std::chrono::milliseconds allowance = std::chrono::milliseconds(0));
  void CheckReplies();
  void SendSubscribe(const std::string& channel);

  Reactor& reactor_;
  const ClientOptions options_;
  ::redisAsyncContext* ac_ = nullptr;
  std::unique_ptr<Reactor::FdWatch> watch_;
  std::unique_ptr<Reactor::Timer> reconnect_timer_;
  std::unique_ptr<Reactor::Timer> connect_timer_;
  std::unique_ptr<Reactor::Timer> reply_timer_;
  // When each pending command's reply is due at the latest, in sending order (replies come in
  // that order).
  std::deque<std::chrono::steady_clock::time_point> due_;
  State state_ = State::kIdle;
  std::function<void(bool)> on_state_;
  MessageCallback on_message_;
  std::set<std::string> channels_;  // subscribed, or to subscribe on connect
  std::set<std::string> awaiting_;  // SUBSCRIBE sent, not yet confirmed
  std::map<std::string, std::function<void()>> on_subscribed_;
  bool reported_up_ = false;
  std::string last_error_;
  uint32_t attempts_ = 0;  // failed connects since the last success (the backoff's exponent)
  uint64_t connects_ = 0;
  uint64_t generation_ = 0;  // per connection: a write posted for an older one does nothing
  bool write_posted_ = false;
  bool in_write_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presenced::redis
