// `presencectl watch` over one WebSocket (watch.h); on the calling thread.
#include "ctl/watch.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <exception>
#include <map>
#include <set>

#include "ctl/api_client.h"
#include "ctl/format.h"

namespace presenced::ctl {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

// The string at `key`, or "" when there is none.
std::string_view StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// One watch connection. Everything runs on the io_context's single thread: the coroutine Run()
// and the signal handler take turns, so no state needs a lock.
class WatchSession {
 public:
  WatchSession(asio::io_context& io, const Endpoint& endpoint, const WatchSpec& spec,
               const WatchHandlers& handlers)
      : endpoint_(endpoint),
        spec_(spec),
        handlers_(handlers),
        ws_(io),
        signals_(io, SIGINT, SIGTERM),
        channels_(spec.channels.begin(), spec.channels.end()),
        users_(spec.users.begin(), spec.users.end()) {}

  asio::awaitable<Outcome> Run() {
    WaitForSignal();
    Outcome outcome = co_await Connect();
    if (outcome.ok() && !stopping_) outcome = co_await Subscribe();
    if (outcome.ok() && !stopping_) outcome = co_await Tail();
    // Also after a refused subscription: a clean close, so the server does not keep the watcher
    // present for a grace period.
    if (ws_.is_open()) co_await Close();
    signals_.cancel();
    co_return stopping_ ? Outcome::Ok() : outcome;
  }

 private:
  // The first SIGINT/SIGTERM closes the WebSocket cleanly (the pending read then ends); a second
  // one drops the socket at once.
  void WaitForSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      if (stopping_) {
        beast::error_code ignored;
        beast::get_lowest_layer(ws_).socket().close(ignored);
        return;
      }
      stopping_ = true;
      if (!ws_.is_open()) {
        beast::get_lowest_layer(ws_).cancel();  // still connecting
      } else if (!closing_) {
        closing_ = true;
        ws_.async_close(websocket::close_code::normal, [](beast::error_code) {});
      }
      WaitForSignal();
    });
  }

  Outcome NetworkFailure(std::string_view step, const beast::error_code& ec) const {
    return Outcome::Fail(ExitCode::kNetwork,
                         std::string(step) + " " + endpoint_.url + ": " + ec.message());
  }

  asio::awaitable<Outcome> Connect() {
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    auto [resolve_ec, addresses] =
        co_await resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port), kAwait);
    if (resolve_ec) co_return NetworkFailure("cannot resolve", resolve_ec);
    auto& stream = beast::get_lowest_layer(ws_);
    stream.expires_after(kRequestTimeout);
    auto [connect_ec, connected] = co_await stream.async_connect(addresses, kAwait);
    if (connect_ec) co_return NetworkFailure("cannot connect to", connect_ec);

    stream.expires_after(kRequestTimeout);
    websocket::response_type response;
    std::vector<std::pair<std::string, std::string>> query = {{"device", spec_.device}};
    if (spec_.api_key.empty()) query.emplace_back("token", spec_.token);
    const std::string target = endpoint_.Target({"v1", "ws"}, query);
    if (!spec_.api_key.empty()) {
      ws_.set_option(
          websocket::stream_base::decorator([key = spec_.api_key](websocket::request_type& req) {
            req.set(beast::http::field::authorization, "Bearer " + key);
          }));
    }
    auto [handshake_ec] =
        co_await ws_.async_handshake(response, endpoint_.host_header, target, kAwait);
    if (handshake_ec) {
      const unsigned status = response.result_int();
      if (status == 401) {
        co_return Outcome::Fail(ExitCode::kUnauthorized,
                                DescribeErrorBody(status, response.body()));
      }
      if (handshake_ec == websocket::error::upgrade_declined && status != 0) {
        co_return Outcome::Fail(ExitCode::kServerError, DescribeErrorBody(status, response.body()));
      }
      co_return NetworkFailure("cannot open a WebSocket to", handshake_ec);
    }
    stream.expires_never();
    ws_.read_message_max(kMaxReplyBytes);

    json::object connected_frame;
    if (Outcome r = co_await Read(connected_frame); !r.ok()) co_return r;
    // The server pings every heartbeatMs; if nothing at all arrives for three of those, Beast
    // pings once more and then gives up, so a vanished server ends the watch.
    const auto heartbeat = std::chrono::milliseconds(
        std::max<int64_t>(IntField(connected_frame, "heartbeatMs").value_or(15000), 1000));
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::client);
    timeouts.idle_timeout = 3 * heartbeat;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    co_return Outcome::Ok();
  }

  // Sends every subscribe and the status.watch; Tail() collects their replies.
  asio::awaitable<Outcome> Subscribe() {
    // Each request is a named object: GCC 12 cannot keep an initializer list alive across a
    // co_await in the same expression.
    int64_t id = 0;
    for (const auto& channel : spec_.channels) {
      pending_[++id] = "subscribe " + Printable(channel);
      const json::object subscribe{{"op", "subscribe"}, {"id", id}, {"channel", channel}};
      if (Outcome r = co_await Write(subscribe); !r.ok()) co_return r;
    }
    if (!spec_.users.empty()) {
      pending_[++id] = "status.watch";
      const json::object watch{{"op", "status.watch"},
                               {"id", id},
                               {"clientIds", json::array(spec_.users.begin(), spec_.users.end())}};
      if (Outcome r = co_await Write(watch); !r.ok()) co_return r;
    }
    co_return Outcome::Ok();
  }

  asio::awaitable<Outcome> Tail() {
    uint64_t seen = 0;
    while (true) {
      json::object frame;
      if (Outcome r = co_await Read(frame); !r.ok()) co_return r;
      const std::string_view type = StringField(frame, "type");
      if (type == "reply") {
        auto it = pending_.find(IntField(frame, "id").value_or(-1));
        if (it == pending_.end()) continue;
        const json::value* ok = frame.if_contains("ok");
        if (ok == nullptr || !ok->is_bool() || !ok->get_bool()) {
          const json::object& error = ObjectField(frame, "error");
          co_return Outcome::Fail(
              ExitCode::kServerError,
              Field(error, "code") + ": " + Field(error, "message") + " (" + it->second + ")");
        }
        pending_.erase(it);
        if (pending_.empty() && handlers_.on_ready) handlers_.on_ready();
        continue;
      }
      const bool wanted =
          (type == "presence" && channels_.contains(std::string(StringField(frame, "channel")))) ||
          (type == "status" && users_.contains(std::string(StringField(frame, "clientId"))));
      if (!wanted) continue;
      handlers_.on_event(frame);
      if (spec_.max_events != 0 && ++seen >= spec_.max_events) {
        co_await Close();
        co_return Outcome::Ok();
      }
    }
  }

  asio::awaitable<Outcome> Read(json::object& frame) {
    buffer_.clear();
    auto [ec, bytes] = co_await ws_.async_read(buffer_, kAwait);
    // A close frame from the server (e.g. 1001 at shutdown) may be followed by an error while
    // answering it, when the server has already dropped the TCP connection: report the close.
    const websocket::close_reason& reason = ws_.reason();
    if (ec && (ec == websocket::error::closed || reason.code != websocket::close_code::none)) {
      std::string why = std::to_string(static_cast<int>(reason.code));
      if (!reason.reason.empty()) {
        why += " " + Printable(std::string_view(reason.reason.data(), reason.reason.size()));
      }
      co_return Outcome::Fail(ExitCode::kNetwork, "the server closed the connection (" + why + ")");
    }
    if (ec) co_return NetworkFailure("connection to", ec);
    boost::system::error_code parse_ec;
    json::value v = json::parse(beast::buffers_to_string(buffer_.data()), parse_ec);
    if (parse_ec || !v.is_object()) {
      co_return Outcome::Fail(ExitCode::kServerError,
                              "the server sent a frame that is not a "
                              "JSON object");
    }
    frame = std::move(v.get_object());
    co_return Outcome::Ok();
  }

  asio::awaitable<Outcome> Write(const json::object& request) {
    const std::string text = json::serialize(request);
    ws_.text(true);
    auto [ec, bytes] = co_await ws_.async_write(asio::buffer(text), kAwait);
    if (ec) co_return NetworkFailure("connection to", ec);
    co_return Outcome::Ok();
  }

  // A clean close (the server then treats the watcher's connection as closed, not dropped).
  asio::awaitable<void> Close() {
    if (closing_) co_return;
    closing_ = true;
    auto [ec] = co_await ws_.async_close(websocket::close_code::normal, kAwait);
    (void)ec;  // closing anyway
  }

  const Endpoint& endpoint_;
  const WatchSpec& spec_;
  const WatchHandlers& handlers_;
  websocket::stream<beast::tcp_stream> ws_;
  asio::signal_set signals_;
  beast::flat_buffer buffer_;
  const std::set<std::string> channels_;
  const std::set<std::string> users_;
  std::map<int64_t, std::string> pending_;  // request id -> what it asked, until its reply
  bool stopping_ = false;                   // a signal arrived
  bool closing_ = false;                    // a close handshake was started
};

}  // namespace

Outcome RunWatch(const Endpoint& endpoint, const WatchSpec& spec, const WatchHandlers& handlers) {
  asio::io_context io;
  WatchSession session(io, endpoint, spec, handlers);
  Outcome outcome;
  asio::co_spawn(io, session.Run(), [&](std::exception_ptr e, Outcome o) {
    if (e) std::rethrow_exception(e);  // only bad_alloc and the like: not recoverable here
    outcome = std::move(o);
    io.stop();  // whatever is left (e.g. the stream's idle timer) does not matter any more
  });
  io.run();
  return outcome;
}

}  // namespace presenced::ctl
