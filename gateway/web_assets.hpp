// The web dashboard's files, embedded in the binary at build time (gateway/web/embed.cmake
// from gateway/web/src and the npm packages of gateway/web/package-lock.json), so a node
// serves it with no files of its own on disk.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace hub::gateway {

struct WebAsset {
  const char* path;  // as served: "/ui/app.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

const std::vector<WebAsset>& web_assets();

}  // namespace hub::gateway
