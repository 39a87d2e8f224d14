// web/ — the browser UI of slotd (patient booking, admin, live dashboard) as plain ES
// modules, compiled into the binary: embed.cmake turns every file into a string literal
// with a strong ETag. api/web_assets.cpp serves them; this header is all it sees of them.
#pragma once

#include <cstddef>
#include <string_view>

namespace slotd::web {

struct EmbeddedFile {
  std::string_view name;   // path under web/: "pages/index.html", "assets/js/patient.js"
  std::string_view etag;   // strong ETag, quotes included: "\"3879a5d9…\""
  std::string_view bytes;  // the file (HTML pages already point at /assets/<version>/)
};

extern const EmbeddedFile kEmbeddedFiles[];  // sorted by name
extern const std::size_t kEmbeddedFileCount;
// Hash of every asset: HTML pages load assets from /assets/<kAssetVersion>/….
extern const std::string_view kAssetVersion;

}  // namespace slotd::web
