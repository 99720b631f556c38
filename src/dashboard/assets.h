// Dashboard assets: the files of the live web dashboard (dashboard/web), embedded into the binary
// at build time (embed_assets.cmake), so the server serves them without reading the disk.
//
// Everything returned is static, immutable data that lives as long as the process: callers own
// nothing and free nothing. Thread-safe: FindAsset may be called from any thread.
#pragma once

#include <string_view>

namespace presenced::dashboard {

struct Asset {
  std::string_view body;
  std::string_view content_type;  // e.g. "text/html; charset=utf-8"
};

// The asset at `path`, the file's name under dashboard/web with a leading slash ("/index.html",
// "/app.js", ...), or nullptr when there is none.
const Asset* FindAsset(std::string_view path);

// docs/openapi.yaml as JSON (GET /v1/openapi.json), embedded the same way.
const Asset& OpenApiDocument();

}  // namespace presenced::dashboard
