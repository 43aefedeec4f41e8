// A JSON object written straight into a string, for the hot paths that publish small objects
// (task and agent events): no tree of nodes, one growing string. Strings are escaped and
// invalid UTF-8 is replaced by U+FFFD, so the text is always valid JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hub::runtime {

class JsonText {
 public:
  JsonText() { out_.reserve(192), out_ += '{'; }
  JsonText& str(std::string_view key, std::string_view value) {
    this->key(key);
    append_string(out_, value);
    return *this;
  }
  // null when the value is empty
  JsonText& str_or_null(std::string_view key, std::string_view value) {
    if (value.empty()) return raw(key, "null");
    return str(key, value);
  }
  JsonText& num(std::string_view key, int64_t value) {
    this->key(key);
    out_ += std::to_string(value);
    return *this;
  }
  // value must already be JSON text
  JsonText& raw(std::string_view key, std::string_view json) {
    this->key(key);
    out_ += json;
    return *this;
  }
  std::string done() {  // the object, closed; call once
    out_ += '}';
    return std::move(out_);
  }

  // Appends value as a quoted JSON string.
  static void append_string(std::string& out, std::string_view value);

 private:
  void key(std::string_view k) {
    if (out_.size() > 1) out_ += ',';
    append_string(out_, k);
    out_ += ':';
  }
  std::string out_;
};

// How deeply arrays and objects nest in JSON text (strings skipped), counted up to `stop_at`:
// a cheap guard before a recursive consumer (nlohmann's dump, its tree) sees untrusted text.
inline int json_nesting_depth(std::string_view text, int stop_at) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) >= stop_at) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace hub::runtime
