// The route table (api/router.cpp) and the OpenAPI document (api/openapi.json, embedded)
// list the same operations: a route added to one and not the other fails here.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <set>
#include <string>

#include "api/call.hpp"
#include "api/openapi.hpp"

using namespace slotd;

namespace {

// "booking/:id/confirm" → "/booking/{id}/confirm"
std::string openapi_path(std::string_view route_path) {
  std::string out = "/";
  out += route_path;
  for (std::size_t at = out.find(":id"); at != std::string::npos; at = out.find(":id")) {
    out.replace(at, 3, "{id}");
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

TEST_CASE("the OpenAPI document lists exactly the routes of the route table, and GET /ws") {
  std::set<std::string> table;
  for (const Route& r : routes()) {
    CHECK_MESSAGE(!r.summary.empty(), r.method, " /", r.path, " has no summary");
    table.insert(lower(r.method) + " " + openapi_path(r.path));
  }
  table.insert("get /ws");  // the WebSocket upgrade, served by server.cpp outside the table

  simdjson::dom::parser parser;
  const std::string_view text = openapi_document();
  simdjson::dom::element doc;
  REQUIRE(parser.parse(text.data(), text.size()).get(doc) == simdjson::SUCCESS);
  std::string_view version;
  REQUIRE(doc["openapi"].get_string().get(version) == simdjson::SUCCESS);
  CHECK(version.starts_with("3.1"));
  simdjson::dom::object paths;
  REQUIRE(doc["paths"].get_object().get(paths) == simdjson::SUCCESS);
  std::set<std::string> documented;
  for (auto [path, item] : paths) {
    simdjson::dom::object operations;
    REQUIRE(item.get_object().get(operations) == simdjson::SUCCESS);
    for (auto [method, operation] : operations) {
      if (method == "get" || method == "post" || method == "put" || method == "patch" ||
          method == "delete") {
        documented.insert(std::string(method) + " " + std::string(path));
      }
    }
  }
  for (const std::string& op : table) CHECK_MESSAGE(documented.count(op), op, " is routed but not documented");
  for (const std::string& op : documented) CHECK_MESSAGE(table.count(op), op, " is documented but not routed");
}
