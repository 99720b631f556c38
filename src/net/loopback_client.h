// A blocking loopback WebSocket/HTTP client for net_test: raw sockets (or OpenSSL over them), an
// HTTP response reader, a masked frame writer and a server frame reader. Reads time out after 10 s
// (only a failing test gets there); nothing sleeps. Test-only; one Client per thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace presenced::net::loopback {

constexpr char kKey[] = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455's sample Sec-WebSocket-Key

struct Response {
  unsigned status = 0;
  std::string head;
  std::string body;
  // The value of header `name` (case-insensitive), or "" when absent.
  std::string Header(std::string_view name) const {
    std::string lower_head = head;
    std::string lower_name(name);
    for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const size_t at = lower_head.find("\r\n" + lower_name + ":");
    if (at == std::string::npos) return "";
    size_t begin = at + 3 + name.size();
    while (begin < head.size() && head[begin] == ' ') ++begin;
    return head.substr(begin, head.find("\r\n", begin) - begin);
  }
};

struct Frame {
  uint8_t opcode = 0;
  std::string payload;
  uint16_t CloseCode() const {
    if (payload.size() < 2) return 0;
    return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                 static_cast<uint8_t>(payload[1]));
  }
  std::string CloseReason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

constexpr uint8_t kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;  // opcodes

class Client {
 public:
  // `receive_buffer` > 0 fixes the socket's receive buffer (no autotuning): the kernel then holds
  // little of what the server sends to a client that does not read. With `tls` (the test's client
  // context, not owned) the connection speaks TLS to "localhost"; the handshake is done here, and
  // connected() says whether it succeeded.
  explicit Client(uint16_t port, int receive_buffer = 0, SSL_CTX* tls = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{10, 0};  // the read timeout: only a failing test reaches it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connected_ && tls != nullptr) {
      ssl_ = ::SSL_new(tls);
      ::SSL_set_fd(ssl_, fd_);
      ::SSL_set_tlsext_host_name(ssl_, "localhost");
      ::SSL_set1_host(ssl_, "localhost");
      connected_ = ::SSL_connect(ssl_) == 1;
    }
  }
  ~Client() {
    if (ssl_ != nullptr) ::SSL_free(ssl_);  // no close_notify: the socket just closes
    ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  // TLS: the end the server's last read was: its close_notify (not only the TCP connection's).
  bool got_close_notify() const { return close_notify_; }
  // TLS: the subject of the server's certificate, e.g. "/CN=localhost/O=first" ("" when none).
  std::string PeerSubject() const {
    if (ssl_ == nullptr) return "";
    X509* cert = ::SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char name[256];
    ::X509_NAME_oneline(::X509_get_subject_name(cert), name, sizeof name);
    ::X509_free(cert);
    return name;
  }

  void Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ssl_ != nullptr
                            ? ::SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                            : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  void ShutdownWrite() {
    if (ssl_ != nullptr) ::SSL_shutdown(ssl_);  // the close_notify
    ::shutdown(fd_, SHUT_WR);
  }

  std::optional<Response> ReadResponse() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    Response r;
    r.head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    r.status = static_cast<unsigned>(std::atoi(r.head.c_str() + 9));
    const std::string length = r.Header("Content-Length");
    const size_t n = length.empty() ? 0 : std::stoul(length);
    while (buf_.size() < n) {
      if (!Fill()) return std::nullopt;
    }
    r.body = buf_.substr(0, n);
    buf_.erase(0, n);
    return r;
  }

  std::optional<Response> Request(std::string_view method, std::string_view target,
                                  std::string_view headers = "", std::string_view body = "") {
    std::string req = std::string(method) + " " + std::string(target) +
                      " HTTP/1.1\r\nHost: localhost\r\n" + std::string(headers);
    if (!body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    Send(req);
    return ReadResponse();
  }

  std::optional<Response> Upgrade(std::string_view target = "/v1/ws?token=ok",
                                  std::string_view key = kKey, std::string_view version = "13",
                                  std::string_view method = "GET") {
    return Request(
        method, target,
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(key) +
            "\r\nSec-WebSocket-Version: " + std::string(version) + "\r\n");
  }

  // A masked client frame (RFC 6455 §5.3).
  void WriteFrame(uint8_t opcode, std::string_view payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    const size_t n = payload.size();
    if (n < 126) {
      f.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xffff) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(n >> 8));
      f.push_back(static_cast<char>(n & 0xff));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    const char mask[4] = {0x1a, 0x2b, 0x3c, 0x4d};
    f.append(mask, 4);
    for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
    Send(f);
  }
  void WriteClose(uint16_t code) {
    WriteFrame(kClose, std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)});
  }

  // The next server frame, or nullopt at EOF or the read timeout.
  std::optional<Frame> ReadFrame() {
    while (true) {
      if (buf_.size() >= 2) {
        const auto b1 = static_cast<uint8_t>(buf_[1]);
        size_t len = b1 & 0x7f;
        size_t header = 2;
        if (len == 126 && buf_.size() >= 4) {
          len = (static_cast<uint8_t>(buf_[2]) << 8) | static_cast<uint8_t>(buf_[3]);
          header = 4;
        } else if (len == 127 && buf_.size() >= 10) {
          len = 0;
          for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(buf_[2 + i]);
          header = 10;
        }
        const bool header_complete = (b1 & 0x7f) < 126 || header > 2;
        if (header_complete && buf_.size() >= header + len) {
          Frame f{static_cast<uint8_t>(buf_[0] & 0x0f), buf_.substr(header, len)};
          buf_.erase(0, header + len);
          return f;
        }
      }
      if (!Fill()) return std::nullopt;
    }
  }
  // Reads frames until one with `opcode` arrives.
  std::optional<Frame> ReadFrameOf(uint8_t opcode) {
    while (auto f = ReadFrame()) {
      if (f->opcode == opcode) return f;
    }
    return std::nullopt;
  }
  // Reads (discarding) until the server ends the connection; false at the read timeout.
  bool ReadUntilEof() {
    buf_.clear();
    while (Fill()) buf_.clear();
    return eof_;
  }

 private:
  bool Fill() {
    char chunk[65536];
    if (ssl_ != nullptr) return FillTls(chunk, sizeof chunk);
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }
  bool FillTls(char* chunk, int size) {
    errno = 0;
    ::ERR_clear_error();
    const int n = ::SSL_read(ssl_, chunk, size);
    if (n > 0) {
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    // The server's close_notify, or the TCP connection's end (or reset) without one; the read
    // timeout is neither.
    const int error = ::SSL_get_error(ssl_, n);
    close_notify_ = error == SSL_ERROR_ZERO_RETURN;
    eof_ = close_notify_ || (error == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET)) ||
           (error == SSL_ERROR_SSL &&
            ERR_GET_REASON(::ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
    return false;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
  bool eof_ = false;
  bool close_notify_ = false;
  std::string buf_;
};

}  // namespace presenced::net::loopback
