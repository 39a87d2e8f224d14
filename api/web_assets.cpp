#include "api/web_assets.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "web/embedded.hpp"

namespace slotd {
namespace {

// HTML is asked for again on every visit (a 304 when unchanged), so an upgrade shows at once.
constexpr std::string_view kRevalidate = "no-cache";
// Versioned assets never change under their URL.
constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";

std::string_view content_type_of(std::string_view name) {
  struct Type {
    std::string_view extension, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".webmanifest", "application/manifest+json"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const Type& t : kTypes) {
    if (name.ends_with(t.extension)) return t.type;
  }
  return "application/octet-stream";
}

// The page a browser path shows, as a name under web/; empty when it is no page.
std::string_view page_of(std::string_view path) {
  if (path == "/" || path == "/index.html") return "pages/index.html";
  if (path == "/admin" || path == "/admin/") return "pages/admin.html";
  if (path == "/admin/dashboard" || path == "/admin/dashboard/") return "pages/dashboard.html";
  if (path.starts_with("/b/")) {
    std::string_view id = path.substr(3);
    if (!id.empty() && id.size() <= 20 &&
        std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return "pages/booking.html";
    }
  }
  return {};
}

// A file name under web/ must not leave it: no empty, dot or dot-dot segments, no
// backslashes or NULs (this also keeps hidden files out).
bool safe_name(std::string_view name) {
  if (name.empty() || name.find('\\') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return false;
  }
  while (!name.empty()) {
    auto slash = name.find('/');
    std::string_view segment = name.substr(0, slash);
    if (segment.empty() || segment.front() == '.') return false;
    if (slash == std::string_view::npos) break;
    name.remove_prefix(slash + 1);
  }
  return true;
}

bool is_version_segment(std::string_view s) {
  return s.size() == 12 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// FNV-1a 64 of a file read from --web-dir: a strong validator of its exact bytes.
std::string etag_of(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return fmt::format("\"{:016x}{:08x}\"", h, bytes.size());
}

// The index of the built-in file `name`, or kEmbeddedFileCount.
std::size_t embedded_index(std::string_view name) {
  const web::EmbeddedFile* begin = web::kEmbeddedFiles;
  const web::EmbeddedFile* end = begin + web::kEmbeddedFileCount;
  auto it = std::lower_bound(begin, end, name, [](const web::EmbeddedFile& f, std::string_view n) {
    return f.name < n;
  });
  return it != end && it->name == name ? static_cast<std::size_t>(it - begin) : web::kEmbeddedFileCount;
}

}  // namespace

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  if (trim(if_none_match) == "*") return true;
  while (!if_none_match.empty()) {
    auto comma = if_none_match.find(',');
    std::string_view candidate = trim(if_none_match.substr(0, comma));
    if (candidate.starts_with("W/")) candidate.remove_prefix(2);
    if (!candidate.empty() && candidate == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

WebAssets::WebAssets(std::string web_dir) : web_dir_(std::move(web_dir)) {
  embedded_.reserve(web::kEmbeddedFileCount);
  for (std::size_t i = 0; i < web::kEmbeddedFileCount; ++i) {
    embedded_.push_back(std::make_shared<const std::string>(web::kEmbeddedFiles[i].bytes));
  }
}

std::string_view WebAssets::asset_version() { return web::kAssetVersion; }

std::optional<WebAssets::File> WebAssets::find(std::string_view name) const {
  if (!web_dir_.empty()) {
    std::ifstream in(web_dir_ + "/" + std::string(name), std::ios::binary);
    if (in) {
      std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      if (!in.bad()) {
        std::string etag = etag_of(bytes);
        return File{std::make_shared<const std::string>(std::move(bytes)), {}, std::move(etag)};
      }
    }
  }
  if (std::size_t i = embedded_index(name); i < web::kEmbeddedFileCount) {
    return File{embedded_[i], web::kEmbeddedFiles[i].etag, {}};
  }
  return std::nullopt;
}

std::optional<HttpResponse> WebAssets::lookup(std::string_view path,
                                              std::string_view if_none_match) const {
  std::string name;
  std::string_view cache_control = kRevalidate;
  if (std::string_view page = page_of(path); !page.empty()) {
    name = page;
  } else if (path.starts_with("/assets/")) {
    std::string_view rest = path.substr(8);
    auto slash = rest.find('/');
    std::string_view first = rest.substr(0, slash);
    if (slash != std::string_view::npos && is_version_segment(first)) {
      rest.remove_prefix(slash + 1);
      // An older version's URL still gets today's file, but only for this one visit.
      if (first == web::kAssetVersion && web_dir_.empty()) cache_control = kImmutable;
    }
    if (!safe_name(rest)) return std::nullopt;
    name = fmt::format("assets/{}", rest);
  } else {
    return std::nullopt;
  }
  std::optional<File> file = find(name);
  if (!file) return std::nullopt;
  HttpResponse response;
  response.content_type = content_type_of(name);
  response.cache_control = cache_control;
  response.etag = file->owned_etag.empty() ? std::string(file->etag) : std::move(file->owned_etag);
  if (etag_matches(if_none_match, response.etag)) {
    response.status = 304;
  } else {
    response.shared_body = std::move(file->bytes);
  }
  return response;
}

}  // namespace slotd
