// api/web_assets: which page or file answers a path, with which caching headers, and
// that nothing outside web/ (or the --web-dir folder) can be reached.
#include <doctest/doctest.h>

#include <fstream>

#include "api/web_assets.hpp"
#include "test_support.hpp"

using slotd::WebAssets;
using slotd::etag_matches;

namespace {

std::string header_of(const std::optional<slotd::HttpResponse>& r) {
  return r ? std::string(r->content_type) + " | " + std::string(r->cache_control) : "none";
}

void write(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("the four browser paths answer with their pages, revalidated on every visit") {
  WebAssets web;
  for (const char* path : {"/", "/admin", "/admin/dashboard", "/b/17"}) {
    CAPTURE(path);
    auto r = web.lookup(path, "");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(header_of(r) == "text/html; charset=utf-8 | no-cache");
    CHECK(r->etag.size() == 34);
    CHECK(r->body_view().starts_with("<!doctype html>"));
  }
  CHECK(web.lookup("/", "")->body_view().find("patient.js") != std::string::npos);
  CHECK(web.lookup("/b/17", "")->body_view().find("booking.js") != std::string::npos);
  CHECK(web.lookup("/admin/dashboard", "")->body_view().find("dashboard.js") != std::string::npos);
}

TEST_CASE("paths that are no page or asset are left to the API's 404") {
  WebAssets web;
  for (const char* path : {"/b/", "/b/x1", "/b/1/2", "/admin/stats", "/doctors", "/assets/", "/assets/js/nope.js",
                           "/assets/../pages/index.html", "/assets/js/../../pages/admin.html", "/assets/.secret",
                           "/assets/js//patient.js", "/pages/index.html", "/b/123456789012345678901"}) {
    CAPTURE(path);
    CHECK_FALSE(web.lookup(path, ""));
  }
}

TEST_CASE("assets under the current version may be cached for a year, others are revalidated") {
  WebAssets web;
  const std::string version(WebAssets::asset_version());
  REQUIRE(version.size() == 12);
  auto versioned = web.lookup("/assets/" + version + "/js/patient.js", "");
  auto plain = web.lookup("/assets/js/patient.js", "");
  auto old = web.lookup("/assets/0123456789ab/js/patient.js", "");
  REQUIRE(versioned);
  REQUIRE(plain);
  REQUIRE(old);
  CHECK(header_of(versioned) == "text/javascript; charset=utf-8 | public, max-age=31536000, immutable");
  CHECK(header_of(plain) == "text/javascript; charset=utf-8 | no-cache");
  CHECK(header_of(old) == "text/javascript; charset=utf-8 | no-cache");
  CHECK(versioned->body_view() == plain->body_view());
  CHECK(versioned->etag == plain->etag);
  CHECK(versioned->shared_body == plain->shared_body);  // one copy, shared by every answer
  CHECK(web.lookup("/", "")->body_view().find("/assets/" + version + "/css/app.css") != std::string::npos);
  CHECK(header_of(web.lookup("/assets/css/app.css", "")) == "text/css; charset=utf-8 | no-cache");
  CHECK(header_of(web.lookup("/assets/icons/logo.svg", "")) == "image/svg+xml | no-cache");
  auto chart = web.lookup("/assets/vendor/chart.min.js", "");
  REQUIRE(chart);
  CHECK(chart->body_view().find("Chart.js v3") != std::string::npos);
}

TEST_CASE("If-None-Match with the current ETag gets 304 with headers and no body") {
  WebAssets web;
  auto first = web.lookup("/admin", "");
  REQUIRE(first);
  auto again = web.lookup("/admin", first->etag);
  REQUIRE(again);
  CHECK(again->status == 304);
  CHECK(again->body_view().empty());
  CHECK_FALSE(again->shared_body);
  CHECK(again->etag == first->etag);
  CHECK(again->cache_control == "no-cache");
  CHECK(web.lookup("/admin", "\"stale\"")->status == 200);
}

TEST_CASE("If-None-Match matches a listed, weak or * validator and nothing else") {
  const std::string etag = "\"abc\"";
  CHECK(etag_matches("\"abc\"", etag));
  CHECK(etag_matches("W/\"abc\"", etag));
  CHECK(etag_matches("\"x\", \"abc\"", etag));
  CHECK(etag_matches(" \"x\" ,W/\"abc\" ", etag));
  CHECK(etag_matches("*", etag));
  CHECK_FALSE(etag_matches("", etag));
  CHECK_FALSE(etag_matches("\"ab\"", etag));
  CHECK_FALSE(etag_matches("abc", etag));
  CHECK_FALSE(etag_matches("\"abc\"x", etag));
}

TEST_CASE("--web-dir serves the folder's files first and the built-in copy for what it lacks") {
  slotd::testing::TempDir dir("slotd_web_dir");
  write(dir.path() / "pages" / "admin.html", "<!doctype html><title>wip</title>");
  write(dir.path() / "assets" / "js" / "admin.js", "export {};");
  write(dir.path() / "secret.txt", "outside assets");
  WebAssets web(dir.path().string());
  auto page = web.lookup("/admin", "");
  REQUIRE(page);
  CHECK(page->body_view() == "<!doctype html><title>wip</title>");
  CHECK(page->cache_control == "no-cache");
  const std::string version(WebAssets::asset_version());
  auto js = web.lookup("/assets/" + version + "/js/admin.js", "");
  REQUIRE(js);
  CHECK(js->body_view() == "export {};");
  CHECK(js->cache_control == "no-cache");  // a folder's files change at any time
  CHECK(web.lookup("/", "")->body_view().find("patient.js") != std::string::npos);
  CHECK_FALSE(web.lookup("/assets/../secret.txt", ""));
  auto etag = page->etag;
  CHECK(web.lookup("/admin", etag)->status == 304);
  write(dir.path() / "pages" / "admin.html", "<!doctype html><title>edited</title>");
  auto edited = web.lookup("/admin", etag);
  CHECK(edited->status == 200);
  CHECK(edited->etag != etag);
}
