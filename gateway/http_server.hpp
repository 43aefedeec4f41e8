// The HTTP server in front of the routes. One thread (epoll) accepts connections and reads
// each request whole — head and body, within the limits of [server] — before any other
// thread is given to it: a slow or idle client, a flood of headers, an oversized or endlessly
// chunked body, or a compressed body (415) costs a buffer, never a thread, and is answered by
// that thread itself. A complete request then runs on one of four lanes of threads, so that
// no kind of request can take the threads of another: probes (/health, /livez, /readyz,
// /metrics), the API, long-lived requests (event streams, long-polls) and logins (password
// hashing). Requests are parsed and answered by cpp-httplib's own request processing, so the
// routes see ordinary httplib::Request/Response objects.
// Thread-safe: handlers run on the lanes' threads; stop() may be called from any thread once.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace hub::gateway {

enum class Lane { probe, api, stream, login };

struct HttpLimits {
  size_t max_body_bytes = 1 << 20;
  int max_header_count = 100;
  int max_header_bytes = 64 * 1024;
  int request_timeout_ms = 10000;  // a request must arrive whole within this of its first byte
  int idle_timeout_ms = 60000;     // a keep-alive connection with no request is closed after this
  int max_connections = 4096;
  int max_connections_per_client = 512;
  int api_threads = 16;
  int probe_threads = 2;
  int stream_threads = 64;  // at most this many long-lived requests at once (503 beyond)
  int login_threads = 2;
  int login_queue = 64;     // logins waiting for a login thread (503 beyond)
};

// Why the server itself refused a request (the routes never saw it), for the error body.
struct Refusal {
  int status = 400;
  std::string code;
  std::string message;
  int retry_after_s = 0;
};

class HttpServer : public httplib::Server {
 public:
  using LaneOf = std::function<Lane(const std::string& method, const std::string& path)>;
  // The JSON body of a refusal (the gateway's envelope).
  using RefusalBody = std::function<std::string(const Refusal&, const std::string& request_id)>;

  HttpServer(HttpLimits limits, LaneOf lane_of, RefusalBody refusal_body);
  ~HttpServer() override;

  // Binds host:port; returns "" or a one-line reason.
  std::string bind(const std::string& host, int port);
  // Starts the event loop and the lanes.
  void serve();
  // Stops accepting and reading; requests already running finish (long-lived ones are told
  // to end). Returns false if some were still running when `deadline_ms` passed.
  bool shutdown(int deadline_ms);

  // Requests refused by the server itself, by status, for /metrics.
  std::function<void(int status)> on_refused;

  // For a handler that waits (long-polls): whether the client of the request this thread is
  // running has gone away (closed or reset its connection).
  static bool client_gone();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend struct HttpServerAccess;
};

}  // namespace hub::gateway
