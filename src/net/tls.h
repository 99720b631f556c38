// Private to src/net: TLS on the listen port (NetOptions::tls_cert). The server's context (loaded
// by Listen, replaced by Server::ReloadTls) and the stream a TLS connection reads and writes
// through, in both its phases (HttpSession<TlsStream>, then WebSocketSession<TlsStream>).
//
// Threading: a context is immutable once loaded and shared by the connections made from it (any
// I/O thread); a TlsStream belongs to its connection's strand.
#pragma once

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <string>

#include "common/error.h"
#include "net/server_impl.h"

namespace presenced::net {

namespace ssl = asio::ssl;

// A TLS server context with the certificate chain and key of these PEM files (TLS 1.2 or newer).
// The error names the file that could not be used, and why.
Result<std::shared_ptr<ssl::context>> LoadTlsContext(const std::string& cert_file,
                                                     const std::string& key_file);

// Holds the context a TlsStream was made from; a base class of it (declared first), so the
// context outlives the stream's OpenSSL state.
struct TlsContextHolder {
  std::shared_ptr<ssl::context> context;
};

// TLS over a beast::tcp_stream, whose timeouts bound the handshake and the HTTP phase. It keeps
// its context: a reload replaces the server's context, never the one of an open connection.
class TlsStream : private TlsContextHolder, public beast::ssl_stream<beast::tcp_stream> {
 public:
  TlsStream(tcp::socket socket, std::shared_ptr<ssl::context> context)
      : TlsContextHolder{std::move(context)},
        beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)),
                                             *TlsContextHolder::context) {}
};

// Whether a read on a TLS stream ended because the peer did: its close_notify (eof), or the TCP
// connection's end without one (stream_truncated).
inline bool IsTlsEnd(const beast::error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated;
}

}  // namespace presenced::net
