// The web dashboard: GET / (the page) and GET /ui/{file} (its scripts and styles), served
// from the assets embedded in the binary. Open to everyone: the page asks for credentials
// itself and sends them with every API call, like any other client.
#include "gateway/context.hpp"
#include "gateway/web_assets.hpp"

#include <httplib.h>

namespace hub::gateway {

namespace {

const WebAsset* find_asset(std::string_view path) {
  for (const auto& a : web_assets())
    if (path == a.path) return &a;
  return nullptr;
}

void serve(Call& call, const WebAsset& asset) {
  call.res.status = 200;
  call.res.set_header("Content-Security-Policy",
                      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
  call.res.headers.erase("Cache-Control");
  call.res.set_header("Cache-Control", "no-cache");
  call.res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
}

}  // namespace

void add_web_routes(Router& router) {
  router.add("GET", "/", [](Call& call) {
    const auto* page = find_asset("/ui/index.html");
    if (!page) return send_error(call, ApiError::not_found("this build has no dashboard"));
    serve(call, *page);
  });
  router.add("GET", "/ui/{file}", [](Call& call) {
    const auto* asset = find_asset("/ui/" + call.path_params.at("file"));
    if (!asset) return send_error(call, ApiError::not_found("no dashboard file " + call.path_params.at("file")));
    serve(call, *asset);
  });
}

}  // namespace hub::gateway
