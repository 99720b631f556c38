// Outbound HTTP(S) POSTs (http_client.h): resolve, connect, TLS (https), write, read, under one
// deadline for the whole exchange. Runs on the work loop's executor.
#include "net/http_client.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <optional>

#include "net/server.h"
#include "net/server_impl.h"

namespace presenced::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Target {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;  // with the query
};

std::optional<Target> ParseTarget(const std::string& url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) return std::nullopt;
  Target t;
  if (u->scheme() == "https") {
    t.tls = true;
  } else if (u->scheme() != "http") {
    return std::nullopt;
  }
  t.host = std::string(u->host_address());
  if (t.host.empty()) return std::nullopt;
  t.port = u->has_port() ? std::string(u->port()) : (t.tls ? "443" : "80");
  t.path = u->encoded_path().empty() ? "/" : std::string(u->encoded_path());
  if (u->has_query()) t.path += "?" + std::string(u->encoded_query());
  return t;
}

// One exchange. Stream is beast::tcp_stream or beast::ssl_stream<beast::tcp_stream>.
template <typename Stream>
class Exchange : public std::enable_shared_from_this<Exchange<Stream>> {
 public:
  template <typename... StreamArgs>
  Exchange(asio::any_io_executor ex, Target target, HttpCall call,
           std::function<void(HttpOutcome)> done, StreamArgs&&... args)
      : ex_(ex),
        resolver_(ex),
        stream_(ex, std::forward<StreamArgs>(args)...),
        deadline_(ex),
        target_(std::move(target)),
        done_(std::move(done)) {
    req_.method(http::verb::post);
    req_.target(target_.path);
    req_.version(11);
    req_.set(http::field::host, target_.host);
    req_.set(http::field::user_agent, "presenced-webhooks");
    req_.set(http::field::content_type, "application/json");
    for (auto& [k, v] : call.headers) req_.set(k, v);
    req_.body() = std::move(call.body);
    req_.prepare_payload();
    timeout_ = call.timeout;
  }

  void Start() {
    auto self = this->shared_from_this();
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self](beast::error_code ec) {
      if (!ec) self->Finish(0, "no answer in time");
    });
    resolver_.async_resolve(target_.host, target_.port,
                            [self](beast::error_code ec, tcp::resolver::results_type results) {
                              if (ec) return self->Finish(0, "resolve: " + ec.message());
                              self->Connect(results);
                            });
  }

 private:
  beast::tcp_stream& Tcp() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      return stream_;
    } else {
      return beast::get_lowest_layer(stream_);
    }
  }

  void Connect(const tcp::resolver::results_type& results) {
    auto self = this->shared_from_this();
    Tcp().async_connect(results, [self](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->Finish(0, "connect: " + ec.message());
      if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
        self->Write();
      } else {
        self->Handshake();
      }
    });
  }

  void Handshake() {
    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
      auto self = this->shared_from_this();
      if (!SSL_set_tlsext_host_name(stream_.native_handle(), target_.host.c_str())) {
        return Finish(0, "tls: cannot set the server name");
      }
      stream_.set_verify_callback(ssl::host_name_verification(target_.host));
      stream_.async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
        if (ec) return self->Finish(0, "tls: " + ec.message());
        self->Write();
      });
    }
  }

  void Write() {
    auto self = this->shared_from_this();
    http::async_write(stream_, req_, [self](beast::error_code ec, size_t) {
      if (ec) return self->Finish(0, "write: " + ec.message());
      self->Read();
    });
  }

  void Read() {
    auto self = this->shared_from_this();
    res_.body_limit(64 * 1024);  // the answer's body is not used
    http::async_read(stream_, buffer_, res_, [self](beast::error_code ec, size_t) {
      // A large answer body is not an error: its status line is the answer.
      if (ec == http::error::body_limit && self->res_.is_header_done()) {
        return self->Finish(self->res_.get().result_int(), "");
      }
      if (ec) return self->Finish(0, "read: " + ec.message());
      self->Finish(self->res_.get().result_int(), "");
    });
  }

  void Finish(unsigned status, std::string error) {
    if (!done_) return;  // once: the deadline and the exchange race
    auto done = std::move(done_);
    done_ = nullptr;
    deadline_.cancel();
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().socket().close(ignored);
    resolver_.cancel();
    asio::post(ex_, [done = std::move(done), status, error = std::move(error)] {
      done(HttpOutcome{status, error});
    });
  }

  asio::any_io_executor ex_;
  tcp::resolver resolver_;
  Stream stream_;
  asio::steady_timer deadline_;
  Target target_;
  std::function<void(HttpOutcome)> done_;
  std::chrono::milliseconds timeout_{5000};
  http::request<http::string_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> res_;
};

class BeastHttpClient final : public HttpClient {
 public:
  BeastHttpClient(asio::any_io_executor ex, const std::string& ca_file)
      : ex_(std::move(ex)), tls_(ssl::context::tls_client) {
    tls_.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    tls_.set_default_verify_paths(ec);
    // A CA file that cannot be read was refused at start (server/config.cc); a failure here
    // shows as failed TLS handshakes.
    if (!ca_file.empty()) tls_.load_verify_file(ca_file, ec);
  }

  void Post(HttpCall call, std::function<void(HttpOutcome)> done) override {
    auto target = ParseTarget(call.url);
    if (!target) {
      return asio::post(ex_, [done = std::move(done)] {
        done(HttpOutcome{0, "not an http(s) URL"});
      });
    }
    if (target->tls) {
      std::make_shared<Exchange<beast::ssl_stream<beast::tcp_stream>>>(
          ex_, std::move(*target), std::move(call), std::move(done), tls_)
          ->Start();
    } else {
      std::make_shared<Exchange<beast::tcp_stream>>(ex_, std::move(*target), std::move(call),
                                                    std::move(done))
          ->Start();
    }
  }

 private:
  asio::any_io_executor ex_;
  ssl::context tls_;
};

}  // namespace

std::unique_ptr<HttpClient> MakeHttpClient(Server& server, const std::string& ca_file) {
  return std::make_unique<BeastHttpClient>(server.impl_->task_loop.executor(), ca_file);
}

}  // namespace presenced::net
