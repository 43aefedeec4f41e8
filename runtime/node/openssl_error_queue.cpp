// OpenSSL requires the calling thread's error queue to be empty before SSL_read, SSL_write,
// SSL_accept or SSL_connect, or SSL_get_error() misreads their result. CAF 0.17.6's OpenSSL
// module (Debian libcaf-openssl0.17) empties it only inside a log statement, and Debian
// compiles CAF's logging out: one failed TLS handshake (a stranger with a certificate from
// another CA) leaves an error behind on the middleman's thread, and the next SSL_read of a
// healthy member's connection is then taken for a failure and that connection dropped.
// These definitions, exported from the node binary (runtime/CMakeLists.txt), come first in
// symbol lookup: they empty the queue, then call OpenSSL's own function.
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int SSL_read(SSL* ssl, void* buf, int num) {
  static auto real = next<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

extern "C" int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto real = next<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

extern "C" int SSL_accept(SSL* ssl) {
  static auto real = next<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

extern "C" int SSL_connect(SSL* ssl) {
  static auto real = next<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}
