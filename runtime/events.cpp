#include "runtime/events.hpp"

#include "runtime/clock.hpp"
#include "runtime/json_text.hpp"

namespace hub::runtime {

void JsonText::append_string(std::string& out, std::string_view v) {
  static const char* const hex = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  while (i < v.size()) {
    auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out += '\\', out += char(c);
      } else if (c < 0x20) {
        out += "\\u00", out += hex[c >> 4], out += hex[c & 15];
      } else {
        out += char(c);
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: copied when it is well-formed UTF-8, else one U+FFFD per bad byte.
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    bool ok = len > 0 && i + len <= v.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(v[i + k]) & 0xc0) == 0x80;
    if (ok && len >= 3) {
      auto c1 = static_cast<unsigned char>(v[i + 1]);
      if (c == 0xe0) ok = c1 >= 0xa0;        // overlong
      else if (c == 0xed) ok = c1 < 0xa0;    // surrogates
      else if (c == 0xf0) ok = c1 >= 0x90;   // overlong
      else if (c == 0xf4) ok = c1 < 0x90;    // beyond U+10FFFF
    }
    if (ok) {
      out.append(v.data() + i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  out += '"';
}

EventFeed& EventFeed::global() {
  static EventFeed feed;
  return feed;
}

uint64_t EventFeed::publish(std::string type, const nlohmann::json& data) {
  return publish_text(std::move(type), data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

uint64_t EventFeed::publish_text(std::string type, std::string data) {
  uint64_t id;
  auto at = now_ms();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = ++last_id_;
    if (ring_.size() >= capacity_) {
      // Reuse the oldest slot's strings instead of freeing them under the lock.
      Event oldest = std::move(ring_.front());
      ring_.pop_front();
      oldest.id = id, oldest.at_ms = at, oldest.type = std::move(type), oldest.data = std::move(data);
      ring_.push_back(std::move(oldest));
    } else {
      ring_.push_back(Event{id, at, std::move(type), std::move(data)});
    }
  }
  if (waiters_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
  return id;
}

std::vector<Event> EventFeed::after(uint64_t after, size_t max, uint64_t* missed) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Event> out;
  if (missed) *missed = 0;
  if (ring_.empty() || after >= last_id_) return out;
  uint64_t oldest = ring_.front().id;
  if (after + 1 < oldest && missed) *missed = oldest - after - 1;
  size_t start = after + 1 <= oldest ? 0 : size_t(after + 1 - oldest);
  for (size_t i = start; i < ring_.size() && out.size() < max; ++i) out.push_back(ring_[i]);
  return out;
}

bool EventFeed::wait_after(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  waiters_.fetch_add(1);
  bool got = cv_.wait_for(lock, timeout, [&] { return last_id_ > after; });
  waiters_.fetch_sub(1);
  return got;
}

uint64_t EventFeed::last_id() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_id_;
}

}  // namespace hub::runtime
