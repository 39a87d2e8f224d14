// The web UI over HTTP, without Beast: which page or file answers a GET/HEAD path, with
// its Content-Type, Cache-Control and strong ETag, and 304 when If-None-Match matches.
// Files come from the copy compiled into slotd (web/), or with --web-dir from a folder
// laid out like web/ (for UI work; what the folder lacks still comes from the copy).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http.hpp"

namespace slotd {

class WebAssets {
 public:
  explicit WebAssets(std::string web_dir = {});

  // The answer to GET/HEAD of `path` (decoded, without the query), or nothing when no
  // page or asset has that path. Pages: `/` (patient), `/admin`, `/admin/dashboard`,
  // `/b/<booking id>`. Assets: `/assets/…`, and `/assets/<version>/…` which browsers may
  // keep for a year because the version changes with every asset.
  std::optional<HttpResponse> lookup(std::string_view path, std::string_view if_none_match) const;

  // The version segment of asset URLs in the built-in pages.
  static std::string_view asset_version();

 private:
  struct File {
    std::shared_ptr<const std::string> bytes;
    std::string_view etag;
    std::string owned_etag;  // for files read from web_dir_
  };
  std::optional<File> find(std::string_view name) const;

  std::string web_dir_;  // empty: the built-in copy only
  // The built-in files, each copied once into a string that every response shares.
  std::vector<std::shared_ptr<const std::string>> embedded_;
};

// True when an If-None-Match header value names `etag` (or is "*"); weak comparison, as
// RFC 9110 asks for GET.
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}  // namespace slotd
