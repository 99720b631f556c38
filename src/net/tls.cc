// The server's TLS context (tls.h): loaded from PEM files by Listen and Server::ReloadTls, on the
// calling thread.
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace presenced::net {

namespace {

// An unreadable file is told apart from one OpenSSL cannot parse: its message is the system's.
Status CheckReadable(const std::string& what, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return MakeError(ErrorCode::kBadRequest,
                     "cannot read " + what + " " + path + ": " + std::strerror(errno));
  }
  std::fclose(f);
  return Status::Ok();
}

// The reason of OpenSSL's most recent error (its queue is cleared).
std::string LastOpenSslError() {
  const unsigned long code = ::ERR_peek_last_error();
  const char* reason = code != 0 ? ::ERR_reason_error_string(code) : nullptr;
  ::ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

}  // namespace

Result<std::shared_ptr<ssl::context>> LoadTlsContext(const std::string& cert_file,
                                                     const std::string& key_file) {
  if (Status st = CheckReadable("TLS certificate", cert_file); !st) return st.error();
  if (Status st = CheckReadable("TLS key", key_file); !st) return st.error();
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use);
  ::SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  // The chain: the server's certificate, then the intermediates a client needs to reach its CA.
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    ::ERR_clear_error();  // the thread's queue: its next TLS operation starts clean
    return MakeError(
        ErrorCode::kBadRequest,
        "TLS certificate " + cert_file + ": not a PEM certificate chain (" + ec.message() + ")");
  }
  // The key is parsed apart, so a file that is not a key is told from another certificate's key.
  // An encrypted key is refused rather than asked for: OpenSSL's default would prompt on the
  // terminal and block the server.
  std::FILE* f = std::fopen(key_file.c_str(), "r");
  if (f == nullptr) return MakeError(ErrorCode::kBadRequest, "cannot read TLS key " + key_file);
  ::ERR_clear_error();
  EVP_PKEY* key = ::PEM_read_PrivateKey(
      f, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  std::fclose(f);
  if (key == nullptr) {
    return MakeError(ErrorCode::kBadRequest, "TLS key " + key_file +
                                                 ": not an unencrypted PEM private key (" +
                                                 LastOpenSslError() + ")");
  }
  const int used = ::SSL_CTX_use_PrivateKey(context->native_handle(), key);
  ::EVP_PKEY_free(key);
  if (used != 1 || ::SSL_CTX_check_private_key(context->native_handle()) != 1) {
    ::ERR_clear_error();
    return MakeError(ErrorCode::kBadRequest,
                     "TLS key " + key_file + " is not the key of the certificate " + cert_file);
  }
  return context;
}

}  // namespace presenced::net
