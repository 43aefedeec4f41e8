#include "gateway/http_server.hpp"

#include "runtime/clock.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hub::gateway {

namespace {

constexpr size_t kMaxRequestLine = 8192;
constexpr size_t kMaxChunkLine = 1024;
constexpr int kWriteTimeoutMs = 10000;
constexpr int kSweepMs = 200;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool token_char(unsigned char c) { return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr; }

// The path of a request target exactly as httplib gives it to the routes (query cut, %XX
// decoded), so that a request is put on the lane of the route that will serve it.
std::string decoded_path(const std::string& target) {
  return httplib::detail::decode_url(target.substr(0, target.find('?')), false);
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

std::string address_of(const sockaddr_storage& addr, int& port) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  return text;
}

// Writes all of `data` to a non-blocking socket, waiting for room up to `timeout_ms`.
bool write_all(int fd, const char* data, size_t size, int timeout_ms) {
  size_t done = 0;
  auto deadline = now_ms() + timeout_ms;
  while (done < size) {
    auto n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = deadline - now_ms();
      if (left <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, int(std::min<int64_t>(left, 1000))) < 0 && errno != EINTR) return false;
      continue;
    }
    return false;
  }
  return true;
}

thread_local int current_fd = -1;

}  // namespace

// One client connection. Owned by the event loop; while one of its requests runs on a lane
// the loop does not touch it (it is out of the epoll set) until the lane hands it back.
struct Conn {
  int fd = -1;
  std::string peer_ip, local_ip;
  int peer_port = 0, local_port = 0;
  std::string in;            // bytes received and not yet handed to a lane
  int64_t first_byte_ms = 0;  // of the request being read; 0 between requests
  int64_t last_active_ms = 0;
  bool continue_sent = false;
  bool busy = false;           // a request of it runs on a lane
  int64_t linger_until_ms = 0;  // refused and closing: what it still sends is read and dropped until then
  // A chunked body as it arrives: where the next chunk line starts, and the body so far.
  size_t head_len = 0;
  size_t chunk_at = 0;
  std::string decoded;
};

namespace {

// A request read whole, handed to httplib's request processing; the response goes straight
// to the socket.
class BufferedStream final : public httplib::Stream {
 public:
  BufferedStream(const Conn& conn, std::string request) : conn_(conn), data_(std::move(request)) {}
  bool is_readable() const override { return pos_ < data_.size(); }
  bool is_writable() const override {
    pollfd p{conn_.fd, POLLOUT | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) < 0) return false;
    return (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) == 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    auto n = std::min(size, data_.size() - pos_);
    std::memcpy(ptr, data_.data() + pos_, n);
    pos_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    return write_all(conn_.fd, ptr, size, kWriteTimeoutMs) ? ssize_t(size) : -1;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = conn_.peer_ip;
    port = conn_.peer_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = conn_.local_ip;
    port = conn_.local_port;
  }
  // httplib asks only to refuse descriptors past select()'s FD_SETSIZE; this stream never
  // uses select(), so it answers with a number below it.
  socket_t socket() const override { return 0; }

 private:
  const Conn& conn_;
  std::string data_;
  size_t pos_ = 0;
};

struct Job {
  Conn* conn = nullptr;
  std::string request;
};

// Threads that run requests of one kind. `on_demand`: threads are started as needed up to
// `max_threads` and a request that finds all of them busy is refused (no queue); otherwise a
// fixed set of threads takes requests from a queue of at most `max_queue` (-1: unbounded).
class LanePool {
 public:
  LanePool(int max_threads, int max_queue, bool on_demand, std::function<void(Job&)> run)
      : max_threads_(max_threads), max_queue_(max_queue), on_demand_(on_demand), run_(std::move(run)) {
    if (!on_demand_)
      for (int i = 0; i < max_threads_; ++i) threads_.emplace_back([this] { work(); });
  }
  ~LanePool() { join(); }

  // false: the lane is full (the caller refuses the request).
  bool push(Job job) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    if (on_demand_) {
      if (idle_ > 0) --idle_;  // that thread is now promised to this job
      else if (int(threads_.size()) < max_threads_) threads_.emplace_back([this] { work(); });
      else return false;
    } else if (max_queue_ >= 0 && int(queue_.size()) >= max_queue_) {
      return false;
    }
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }

  int busy() {
    std::lock_guard<std::mutex> lock(mutex_);
    return busy_ + int(queue_.size());
  }

  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      cv_.notify_all();
      threads.swap(threads_);
    }
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;
      auto job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      lock.unlock();
      run_(job);
      lock.lock();
      --busy_;
      if (on_demand_) ++idle_;
    }
  }

  int max_threads_, max_queue_;
  bool on_demand_;
  std::function<void(Job&)> run_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<std::thread> threads_;
  int idle_ = 0, busy_ = 0;
  bool stopping_ = false;
};

}  // namespace

struct HttpServer::Impl {
  HttpServer* server = nullptr;
  HttpLimits limits;
  LaneOf lane_of;
  RefusalBody refusal_body;

  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;   // lanes hand connections back; stop wakes the loop
  int dummy_fd = -1;  // what httplib's own accept loop waits on (see serve())
  std::thread loop_thread, httplib_thread;
  std::atomic<bool> stopping{false};
  bool listening_paused = false;
  int64_t resume_listening_ms = 0;

  std::unordered_map<int, std::unique_ptr<Conn>> conns;
  std::unordered_map<std::string, int> per_client;
  std::atomic<int> dispatched{0};

  std::mutex returned_mutex;
  std::vector<std::pair<Conn*, bool>> returned;  // (connection, keep it open)

  std::unique_ptr<LanePool> probe, api, stream, login;

  // --- the loop ---------------------------------------------------------------------
  void run_loop();
  void accept_all();
  void on_readable(Conn& c);
  void handle_buffer(Conn& c);
  void take_back();
  void sweep();
  void close_conn(Conn& c);
  void refuse(Conn& c, const Refusal& r, bool close, const std::string& request_id = "");
  void watch(Conn& c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = c.fd;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c.fd, &ev);
  }
  void unwatch(Conn& c) { epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr); }

  // --- the lanes ---------------------------------------------------------------------
  void run_job(Job& job);
  void give_back(Conn* c, bool keep) {
    {
      std::lock_guard<std::mutex> lock(returned_mutex);
      returned.emplace_back(c, keep);
    }
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }
};

namespace {

// What parsing a connection's buffer found.
struct Parsed {
  enum class Kind { need_more, complete, refuse } kind = Kind::need_more;
  Refusal refusal;
  bool close_after = true;  // for refusals: the stream can't be trusted any further
  std::string request;      // complete: the request as httplib will read it
  size_t consumed = 0;      // complete: bytes of the buffer it took
  std::string method, target, request_id;
  bool send_continue = false;
};

Parsed refusal(int status, std::string code, std::string message, bool close = true, int retry_after = 0) {
  Parsed p;
  p.kind = Parsed::Kind::refuse;
  p.refusal = Refusal{status, std::move(code), std::move(message), retry_after};
  p.close_after = close;
  return p;
}

// Reads one request out of `c.in` (head, then body), checking every limit as bytes arrive.
Parsed parse(Conn& c, const HttpLimits& limits) {
  auto& in = c.in;
  // Empty lines before a request line are allowed (RFC 9112 §2.2).
  size_t start = 0;
  while (start + 1 < in.size() && in[start] == '\r' && in[start + 1] == '\n') start += 2;
  if (start) {
    in.erase(0, start);
    c.head_len = 0;
  }
  if (in.empty()) return {};
  if (c.head_len == 0) {
    auto end = in.find("\r\n\r\n");
    auto first_line = in.find("\r\n");
    if ((first_line == std::string::npos && in.size() > kMaxRequestLine) ||
        (first_line != std::string::npos && first_line > kMaxRequestLine))
      return refusal(414, "uri_too_long", "the request line is longer than " + std::to_string(kMaxRequestLine) + " bytes");
    size_t head_size = end == std::string::npos ? in.size() : end + 4;
    if (head_size > size_t(limits.max_header_bytes))
      return refusal(431, "headers_too_large",
                     "the request head is larger than [server] max_header_bytes (" + std::to_string(limits.max_header_bytes) + ")");
    auto lines = std::count(in.begin(), in.begin() + long(std::min(head_size, in.size())), '\n');
    if (lines > limits.max_header_count + 2)
      return refusal(431, "headers_too_large",
                     "the request has more than [server] max_header_count (" + std::to_string(limits.max_header_count) + ") headers");
    if (end == std::string::npos) return {};
    c.head_len = end + 4;
    c.chunk_at = c.head_len;
    c.decoded.clear();
  }

  // The head is complete: parse it (again, when more of the body arrived; it is small).
  Parsed out;
  const std::string head = in.substr(0, c.head_len - 2);
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < head.size();) {
    auto eol = head.find("\r\n", pos);
    lines.push_back(head.substr(pos, eol - pos));
    pos = eol + 2;
  }
  const auto& request_line = lines.front();
  auto sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
  if (sp1 == std::string::npos || sp1 == sp2) return refusal(400, "bad_request", "the request line is malformed");
  out.method = request_line.substr(0, sp1);
  out.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto version = request_line.substr(sp2 + 1);
  if (out.method.empty() || out.method.size() > 32 ||
      !std::all_of(out.method.begin(), out.method.end(), [](unsigned char ch) { return token_char(ch); }))
    return refusal(400, "bad_request", "the request method is malformed");
  if (out.target.empty() || std::any_of(out.target.begin(), out.target.end(), [](unsigned char ch) { return ch <= 0x20 || ch == 0x7f; }))
    return refusal(400, "bad_request", "the request target is malformed");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    if (version.rfind("HTTP/", 0) == 0) return refusal(505, "http_version_not_supported", "this server speaks HTTP/1.1 and HTTP/1.0");
    return refusal(400, "bad_request", "the request line is malformed");
  }
  std::vector<std::string> kept{request_line};
  std::string content_length, transfer_encoding, content_encoding, expect;
  int headers = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.empty() || line[0] == ' ' || line[0] == '\t')
      return refusal(400, "bad_request", "folded or empty header lines are not accepted");
    auto colon = line.find(':');
    if (colon == 0 || colon == std::string::npos ||
        !std::all_of(line.begin(), line.begin() + long(colon), [](unsigned char ch) { return token_char(ch); }))
      return refusal(400, "bad_request", "a header line is malformed");
    if (std::any_of(line.begin() + long(colon), line.end(), [](unsigned char ch) { return (ch < 0x20 && ch != '\t') || ch == 0x7f; }))
      return refusal(400, "bad_request", "a header value holds control characters");
    if (++headers > limits.max_header_count)
      return refusal(431, "headers_too_large",
                     "the request has more than [server] max_header_count (" + std::to_string(limits.max_header_count) + ") headers");
    auto name = lower(line.substr(0, colon));
    auto value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), ::isdigit) ||
          (!content_length.empty() && content_length != value))
        return refusal(400, "bad_request", "Content-Length is malformed");
      content_length = value;
    } else if (name == "transfer-encoding") {
      transfer_encoding += (transfer_encoding.empty() ? "" : ",") + lower(value);
      continue;  // a chunked body is handed on decoded, with a Content-Length
    } else if (name == "content-encoding") {
      content_encoding = lower(value);
    } else if (name == "expect") {
      expect = lower(value);
      continue;  // answered here
    } else if (name == "x-request-id") {
      out.request_id = value;
    }
    kept.push_back(line);
  }
  if (!content_encoding.empty() && content_encoding != "identity")
    return refusal(415, "unsupported_media_type",
                   "request bodies must not be compressed (Content-Encoding: " + content_encoding + "); send them as they are");
  if (!expect.empty() && expect != "100-continue")
    return refusal(417, "expectation_failed", "only \"Expect: 100-continue\" is understood");
  bool chunked = !transfer_encoding.empty();
  if (chunked) {
    if (transfer_encoding != "chunked")
      return refusal(501, "not_implemented", "the only transfer coding accepted is \"chunked\"");
    if (!content_length.empty()) return refusal(400, "bad_request", "a request may not carry both Content-Length and Transfer-Encoding");
    if (version == "HTTP/1.0") return refusal(400, "bad_request", "HTTP/1.0 has no chunked transfer coding");
  }
  const size_t max_body = limits.max_body_bytes;
  auto too_large = [&] {
    return refusal(413, "payload_too_large", "the request body is larger than [server] max_body_bytes (" + std::to_string(max_body) + ")");
  };
  std::string body;
  size_t end = c.head_len;
  if (chunked) {
    // Raw framing may be larger than the body it carries, but not without bound.
    if (in.size() - c.head_len > 2 * max_body + 65536) return too_large();
    while (true) {
      auto eol = in.find("\r\n", c.chunk_at);
      if (eol == std::string::npos) {
        if (in.size() - c.chunk_at > kMaxChunkLine) return refusal(400, "bad_request", "a chunk size line is malformed");
        out.send_continue = !c.continue_sent && expect == "100-continue";
        return out.kind = Parsed::Kind::need_more, out;
      }
      auto size_text = in.substr(c.chunk_at, eol - c.chunk_at);
      auto semi = size_text.find(';');
      size_text = trim(size_text.substr(0, semi));
      if (size_text.empty() || size_text.size() > 15 ||
          !std::all_of(size_text.begin(), size_text.end(), [](unsigned char ch) { return std::isxdigit(ch); }))
        return refusal(400, "bad_request", "a chunk size line is malformed");
      size_t size = std::stoull(size_text, nullptr, 16);
      if (size == 0) {
        // Trailers (dropped), then the empty line that ends the body.
        auto trailers_end = in.find("\r\n\r\n", eol);
        if (in.compare(eol, 4, "\r\n\r\n") != 0 && trailers_end == std::string::npos) {
          if (in.size() - eol > size_t(limits.max_header_bytes)) return too_large();
          return out.kind = Parsed::Kind::need_more, out;
        }
        end = (in.compare(eol, 4, "\r\n\r\n") == 0 ? eol : trailers_end) + 4;
        break;
      }
      if (c.decoded.size() + size > max_body) return too_large();
      if (in.size() < eol + 2 + size + 2) {
        out.send_continue = !c.continue_sent && expect == "100-continue";
        return out.kind = Parsed::Kind::need_more, out;
      }
      if (in.compare(eol + 2 + size, 2, "\r\n") != 0) return refusal(400, "bad_request", "a chunk is not followed by CRLF");
      c.decoded.append(in, eol + 2, size);
      c.chunk_at = eol + 2 + size + 2;
    }
    body = std::move(c.decoded);
    kept.push_back("Content-Length: " + std::to_string(body.size()));
  } else if (!content_length.empty()) {
    auto length = std::stoull(content_length);
    if (length > max_body) return too_large();
    if (in.size() < c.head_len + length) {
      out.send_continue = !c.continue_sent && expect == "100-continue";
      return out.kind = Parsed::Kind::need_more, out;
    }
    body = in.substr(c.head_len, length);
    end = c.head_len + length;
  }
  out.kind = Parsed::Kind::complete;
  for (const auto& line : kept) out.request += line + "\r\n";
  out.request += "\r\n";
  out.request += body;
  out.consumed = end;
  return out;
}

}  // namespace

HttpServer::HttpServer(HttpLimits limits, LaneOf lane_of, RefusalBody refusal_body) : impl_(std::make_unique<Impl>()) {
  impl_->server = this;
  impl_->limits = limits;
  impl_->lane_of = std::move(lane_of);
  impl_->refusal_body = std::move(refusal_body);
  set_keep_alive_timeout(std::max(1, limits.idle_timeout_ms / 1000));
  set_keep_alive_max_count(100000);
  set_payload_max_length(limits.max_body_bytes);
}

HttpServer::~HttpServer() { shutdown(0); }

std::string HttpServer::bind(const std::string& host, int port) {
  // Enough descriptors for max_connections.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  auto port_text = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &found); rc != 0)
    return "cannot listen on " + host + ":" + port_text + ": " + gai_strerror(rc);
  std::string why;
  for (auto* ai = found; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    // SO_REUSEADDR (not SO_REUSEPORT: a second node must not share the port).
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      impl_->listen_fd = fd;
      break;
    }
    why = std::strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(found);
  if (impl_->listen_fd < 0)
    return "cannot listen on " + host + ":" + port_text + ": " + (why.empty() ? "no usable address" : why) +
           " (is another process using the port?)";
  return {};
}

void HttpServer::serve() {
  auto& d = *impl_;
  // httplib writes streamed responses only while its server "is running", a state only its
  // own accept loop sets. That loop is run on a descriptor that never becomes readable (an
  // eventfd nobody writes), so it never accepts anything; shutdown() ends it, which also
  // tells streamed responses to end.
  d.dummy_fd = eventfd(0, EFD_CLOEXEC);
  svr_sock_ = d.dummy_fd;
  set_idle_interval(0, 100000);
  new_task_queue = [] { return new httplib::ThreadPool(0); };
  d.httplib_thread = std::thread([this] { listen_after_bind(); });
  while (!is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  auto run = [&d](Job& job) { d.run_job(job); };
  const auto& l = d.limits;
  d.probe = std::make_unique<LanePool>(l.probe_threads, -1, false, run);
  d.api = std::make_unique<LanePool>(l.api_threads, -1, false, run);
  d.stream = std::make_unique<LanePool>(l.stream_threads, 0, true, run);
  d.login = std::make_unique<LanePool>(l.login_threads, l.login_queue, false, run);

  d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  d.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d.listen_fd;
  epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, d.listen_fd, &ev);
  ev.data.fd = d.wake_fd;
  epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, d.wake_fd, &ev);
  d.loop_thread = std::thread([&d] { d.run_loop(); });
}

bool HttpServer::shutdown(int deadline_ms) {
  auto& d = *impl_;
  if (!d.loop_thread.joinable()) return true;
  if (!d.stopping.exchange(true)) {
    uint64_t one = 1;
    (void)!::write(d.wake_fd, &one, sizeof one);
  }
  // Long-lived responses end once httplib's server no longer "runs".
  stop();
  auto deadline = now_ms() + deadline_ms;
  while (d.dispatched.load() > 0 && now_ms() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool finished = d.dispatched.load() == 0;
  if (!finished) return false;  // the caller decides; the threads stay as they are
  for (auto* lane : {d.probe.get(), d.api.get(), d.stream.get(), d.login.get()})
    if (lane) lane->join();
  {
    uint64_t one = 1;
    (void)!::write(d.wake_fd, &one, sizeof one);
  }
  d.loop_thread.join();
  if (d.httplib_thread.joinable()) d.httplib_thread.join();
  for (auto& [fd, conn] : d.conns) ::close(fd);
  d.conns.clear();
  for (int* fd : {&d.listen_fd, &d.epoll_fd, &d.wake_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  return true;
}

bool HttpServer::client_gone() {
  if (current_fd < 0) return false;
  pollfd p{current_fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) < 0) return false;
  return (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) != 0;
}

void HttpServer::Impl::run_loop() {
  std::vector<epoll_event> events(256);
  int64_t next_sweep = now_ms() + kSweepMs;
  while (true) {
    int n = epoll_wait(epoll_fd, events.data(), int(events.size()), kSweepMs);
    if (stopping.load()) {
      // No more requests are read: idle connections and half-read requests close now; a
      // connection whose request runs closes when it comes back.
      if (listen_fd >= 0) {
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
        ::close(listen_fd);
        listen_fd = -1;
      }
      take_back();
      std::vector<Conn*> idle;
      for (auto& [fd, c] : conns)
        if (!c->busy) idle.push_back(c.get());
      for (auto* c : idle) close_conn(*c);
      if (dispatched.load() == 0) {
        bool lanes_done = true;
        for (auto* lane : {probe.get(), api.get(), stream.get(), login.get()}) lanes_done &= lane->busy() == 0;
        if (lanes_done) return;
      }
      continue;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[size_t(i)].data.fd;
      if (fd == listen_fd) {
        accept_all();
      } else if (fd == wake_fd) {
        uint64_t count = 0;
        (void)!::read(wake_fd, &count, sizeof count);
        take_back();
      } else if (auto it = conns.find(fd); it != conns.end()) {
        on_readable(*it->second);
      }
    }
    if (now_ms() >= next_sweep) {
      sweep();
      next_sweep = now_ms() + kSweepMs;
    }
  }
}

void HttpServer::Impl::accept_all() {
  while (true) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: stop accepting for a moment instead of spinning on the listener.
        spdlog::warn("http: out of file descriptors with {} connections open; not accepting for 100 ms", conns.size());
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
        listening_paused = true;
        resume_listening_ms = now_ms() + 100;
      }
      return;
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->peer_ip = address_of(peer, c->peer_port);
    sockaddr_storage local{};
    len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    c->local_ip = address_of(local, c->local_port);
    c->last_active_ms = now_ms();
    int yes = 1;
    // httplib writes the head and the body separately: without this Nagle and delayed ACKs
    // would hold every response ~40 ms.
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto& mine = per_client[c->peer_ip];
    ++mine;
    auto* raw = c.get();
    conns.emplace(fd, std::move(c));
    if (int(conns.size()) > limits.max_connections) {
      refuse(*raw, {503, "too_many_connections", "the node has " + std::to_string(limits.max_connections) +
                                                      " connections open ([server] max_connections); try again later", 5},
             true);
      continue;
    }
    if (mine > limits.max_connections_per_client) {
      refuse(*raw, {503, "too_many_connections", "this address has " + std::to_string(limits.max_connections_per_client) +
                                                      " connections open ([server] max_connections_per_client)", 5},
             true);
      continue;
    }
    watch(*raw);
  }
}

void HttpServer::Impl::on_readable(Conn& c) {
  char buffer[65536];
  if (c.linger_until_ms) {
    // Refused: drop what it still sends until it closes or the linger time is over.
    while (true) {
      auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close_conn(c);
      return;
    }
  }
  while (true) {
    auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      if (c.first_byte_ms == 0) c.first_byte_ms = now_ms();
      c.last_active_ms = now_ms();
      c.in.append(buffer, size_t(n));
      // Never hold more than one request's worth: what parse() refuses is found at once.
      if (c.in.size() > limits.max_body_bytes * 2 + size_t(limits.max_header_bytes) + 65536) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // Closed by the client (or reset): whatever it sent half is dropped.
    close_conn(c);
    return;
  }
  handle_buffer(c);
}

void HttpServer::Impl::handle_buffer(Conn& c) {
  auto parsed = parse(c, limits);
  if (parsed.kind == Parsed::Kind::need_more) {
    if (parsed.send_continue) {
      c.continue_sent = true;
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      if (!write_all(c.fd, kContinue, sizeof kContinue - 1, 1000)) close_conn(c);
    }
    return;
  }
  if (parsed.kind == Parsed::Kind::refuse) {
    refuse(c, parsed.refusal, parsed.close_after, parsed.request_id);
    return;
  }
  c.in.erase(0, parsed.consumed);
  c.head_len = 0;
  c.first_byte_ms = c.in.empty() ? 0 : now_ms();
  c.continue_sent = false;
  auto lane = lane_of(parsed.method, decoded_path(parsed.target));
  LanePool* pool = lane == Lane::probe ? probe.get() : lane == Lane::stream ? stream.get() : lane == Lane::login ? login.get() : api.get();
  unwatch(c);
  c.busy = true;
  dispatched.fetch_add(1);
  if (!pool->push(Job{&c, std::move(parsed.request)})) {
    dispatched.fetch_sub(1);
    c.busy = false;
    watch(c);
    if (lane == Lane::stream)
      refuse(c, {503, "too_many_streams", "this node already serves " + std::to_string(limits.stream_threads) +
                                               " event streams and long-polls ([server] max_streams); close one or try later", 5},
             false, parsed.request_id);
    else
      refuse(c, {503, "busy", "too many logins are waiting to be checked; try again in a moment", 1}, false, parsed.request_id);
  }
}

void HttpServer::Impl::run_job(Job& job) {
  auto* c = job.conn;
  current_fd = c->fd;
  bool connection_closed = false;
  bool ok = false;
  try {
    BufferedStream stream(*c, std::move(job.request));
    ok = server->process_request(stream, stopping.load(), connection_closed, std::function<void(httplib::Request&)>());
  } catch (const std::exception& e) {
    spdlog::error("http: a request failed outside its handler: {}", e.what());
  }
  current_fd = -1;
  give_back(c, ok && !connection_closed && !stopping.load());
  dispatched.fetch_sub(1);
}

void HttpServer::Impl::take_back() {
  std::vector<std::pair<Conn*, bool>> back;
  {
    std::lock_guard<std::mutex> lock(returned_mutex);
    back.swap(returned);
  }
  for (auto [c, keep] : back) {
    c->busy = false;
    if (!keep || stopping.load()) {
      close_conn(*c);
      continue;
    }
    c->last_active_ms = now_ms();
    watch(*c);
    if (!c->in.empty()) handle_buffer(*c);  // pipelined: the next request may be here already
  }
}

void HttpServer::Impl::sweep() {
  auto now = now_ms();
  if (listening_paused && now >= resume_listening_ms && listen_fd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
    listening_paused = false;
  }
  std::vector<Conn*> late, idle;
  for (auto& [fd, c] : conns) {
    if (c->busy) continue;  // its request runs; the lane hands it back
    if (c->linger_until_ms) {
      if (now >= c->linger_until_ms) idle.push_back(c.get());
    } else if (c->first_byte_ms && now - c->first_byte_ms > limits.request_timeout_ms) {
      late.push_back(c.get());
    } else if (!c->first_byte_ms && now - c->last_active_ms > limits.idle_timeout_ms) {
      idle.push_back(c.get());
    }
  }
  for (auto* c : late)
    refuse(*c, {408, "request_timeout",
                "the request did not arrive within [server] request_timeout_ms (" + std::to_string(limits.request_timeout_ms) + " ms)", 0},
           true);
  for (auto* c : idle) close_conn(*c);
}

void HttpServer::Impl::close_conn(Conn& c) {
  int fd = c.fd;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
  if (auto it = per_client.find(c.peer_ip); it != per_client.end() && --it->second <= 0) per_client.erase(it);
  ::close(fd);
  conns.erase(fd);
}

void HttpServer::Impl::refuse(Conn& c, const Refusal& r, bool close, const std::string& given_id) {
  bool sane = !given_id.empty() && given_id.size() <= 128 && std::all_of(given_id.begin(), given_id.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
  });
  auto request_id = sane ? given_id : runtime::new_uuid();
  auto body = refusal_body(r, request_id);
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  head += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  head += "X-Request-Id: " + request_id + "\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n";
  if (r.retry_after_s > 0) head += "Retry-After: " + std::to_string(r.retry_after_s) + "\r\n";
  head += close ? "Connection: close\r\n\r\n" : "\r\n";
  auto response = head + body;
  if (server->on_refused) server->on_refused(r.status);
  bool written = write_all(c.fd, response.data(), response.size(), close ? 200 : 1000);
  if (!written) {
    close_conn(c);
    return;
  }
  if (close) {
    // A client still sending (a body too large) would get a reset, and lose the answer, if
    // the socket closed with unread data: say we are done, then drop its bytes for a while.
    ::shutdown(c.fd, SHUT_WR);
    c.linger_until_ms = now_ms() + 2000;
    c.in.clear();
    c.in.shrink_to_fit();
    c.first_byte_ms = 0;
    return;
  }
  // The request was read whole (it was only refused a lane): the connection goes on.
  if (!c.in.empty()) handle_buffer(c);
}

}  // namespace hub::gateway
