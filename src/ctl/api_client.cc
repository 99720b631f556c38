// presencectl's REST client (api_client.h); blocking, on the calling thread.
#include "ctl/api_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <exception>
#include <optional>

#include "ctl/format.h"

namespace presenced::ctl {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

// What came back over the wire, before it is judged: an error and the step it happened in, or a
// response.
struct Exchange {
  beast::error_code ec;
  const char* step = "";
  http::response<http::string_body> response;
};

asio::awaitable<Exchange> Send(const Endpoint& endpoint, http::request<http::string_body> req) {
  Exchange x;
  auto failed = [&x](beast::error_code ec, const char* step) {
    x.ec = ec;
    x.step = step;
    return std::move(x);
  };
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_ec, addresses] =
      co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), kAwait);
  if (resolve_ec) co_return failed(resolve_ec, "cannot resolve");
  beast::tcp_stream stream(executor);
  stream.expires_after(kRequestTimeout);
  auto [connect_ec, connected] = co_await stream.async_connect(addresses, kAwait);
  if (connect_ec) co_return failed(connect_ec, "cannot connect to");
  stream.expires_after(kRequestTimeout);
  auto [write_ec, written] = co_await http::async_write(stream, req, kAwait);
  if (write_ec) co_return failed(write_ec, "cannot send to");
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  stream.expires_after(kRequestTimeout);
  auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, kAwait);
  if (read_ec) co_return failed(read_ec, "no reply from");
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  x.response = parser.release();
  co_return x;
}

}  // namespace

std::string DescribeErrorBody(unsigned status, const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const json::value* error = v.as_object().if_contains("error");
        error != nullptr && error->is_object()) {
      const auto& e = error->as_object();
      return Field(e, "code") + ": " + Field(e, "message");
    }
  }
  std::string text = "HTTP " + std::to_string(status);
  if (!body.empty()) text += ": " + Printable(body.substr(0, 200));
  return text;
}

Reply ApiClient::Call(Method method, const std::string& target, const json::value* body) const {
  const http::verb verb = method == Method::kGet      ? http::verb::get
                          : method == Method::kPost   ? http::verb::post
                          : method == Method::kDelete ? http::verb::delete_
                                                      : http::verb::put;
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, endpoint_.host_header);
  req.set(http::field::user_agent, "presencectl");
  req.set(http::field::accept, "application/json");
  if (!api_key_.empty()) req.set(http::field::authorization, "Bearer " + api_key_);
  if (body != nullptr) {
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(*body);
  }
  req.keep_alive(false);
  req.prepare_payload();

  asio::io_context io;
  std::optional<Exchange> exchange;
  asio::co_spawn(io, Send(endpoint_, std::move(req)), [&](std::exception_ptr e, Exchange x) {
    if (e) std::rethrow_exception(e);  // only bad_alloc and the like: not recoverable here
    exchange = std::move(x);
  });
  io.run();

  Reply reply;
  if (exchange->ec) {
    std::string why = exchange->ec == beast::error::timeout
                          ? "timed out after " + std::to_string(kRequestTimeout.count()) + "s"
                          : exchange->ec.message();
    reply.outcome = Outcome::Fail(ExitCode::kNetwork,
                                  std::string(exchange->step) + " " + endpoint_.url + ": " + why);
    return reply;
  }
  const unsigned status = exchange->response.result_int();
  std::string& text = exchange->response.body();
  if (status == 401) {
    std::string message = DescribeErrorBody(status, text);
    if (api_key_.empty())
      message += " (no API key: use --api-key, --api-key-file or PRESENCED_API_KEY)";
    reply.outcome = Outcome::Fail(ExitCode::kUnauthorized, std::move(message));
    return reply;
  }
  if (status < 200 || status > 299) {
    reply.outcome = Outcome::Fail(ExitCode::kServerError, DescribeErrorBody(status, text));
    return reply;
  }
  if (status == 204) return reply;  // no content: ok, a null body
  boost::system::error_code ec;
  reply.json = json::parse(text, ec);
  if (ec) {
    reply.outcome = Outcome::Fail(ExitCode::kServerError, "reply is not JSON: " + ec.message());
    return reply;
  }
  reply.raw = std::move(text);
  return reply;
}

}  // namespace presenced::ctl
