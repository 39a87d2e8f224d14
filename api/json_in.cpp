#include "api/json_in.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "api/iso_time.hpp"
#include "api/partition.hpp"

namespace slotd {
namespace {

ApiError missing(std::string_view field) {
  return {400, "missing_field", fmt::format("field '{}' is required", field)};
}
ApiError mistyped(std::string_view field, std::string_view expected) {
  return {400, "invalid_field", fmt::format("field '{}' must be {}", field, expected)};
}

simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// Objects may not repeat a key: which one would win is not something a client should
// have to guess (and proxies may guess differently).
bool has_duplicate_keys(simdjson::dom::element e, std::vector<std::string_view>& scratch) {
  simdjson::dom::array array;
  if (!e.get_array().get(array)) {
    for (simdjson::dom::element item : array) {
      if (has_duplicate_keys(item, scratch)) return true;
    }
    return false;
  }
  simdjson::dom::object object;
  if (e.get_object().get(object)) return false;
  const std::size_t first = scratch.size();
  for (auto field : object) scratch.push_back(field.key);
  std::sort(scratch.begin() + static_cast<long>(first), scratch.end());
  const bool duplicate =
      std::adjacent_find(scratch.begin() + static_cast<long>(first), scratch.end()) != scratch.end();
  scratch.resize(first);
  if (duplicate) return true;
  for (auto field : object) {
    if (has_duplicate_keys(field.value, scratch)) return true;
  }
  return false;
}

}  // namespace

Result<JsonObject> parse_body(std::string_view body) {
  simdjson::dom::element root;
  if (auto err = thread_parser().parse(body.data(), body.size()).get(root)) {
    if (err == simdjson::NUMBER_OUT_OF_RANGE) {
      return ApiError{400, "invalid_field", "a number in the body is out of range"};
    }
    return ApiError{400, "invalid_json",
                    fmt::format("the body is not valid JSON: {}", simdjson::error_message(err))};
  }
  JsonObject object;
  if (root.get_object().get(object)) {
    return ApiError{400, "invalid_json", "the body must be a JSON object"};
  }
  std::vector<std::string_view> scratch;
  if (has_duplicate_keys(root, scratch)) {
    return ApiError{400, "invalid_json", "the body repeats a key in one object"};
  }
  return object;
}

bool has_field(JsonObject object, std::string_view field) {
  simdjson::dom::element e;
  return !object[field].get(e);
}

std::optional<Id> id_from_text(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  Id id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
  return id;
}

std::optional<TimeMs> instant_from_text(std::string_view text) {
  auto ms = parse_iso8601(text);
  if (!ms || *ms < kMinInstantMs || *ms > kMaxInstantMs) return std::nullopt;
  return ms;
}

Result<Id> id_field(JsonObject object, std::string_view field) {
  simdjson::dom::element e;
  if (object[field].get(e)) return missing(field);
  std::uint64_t u;
  if (e.is_uint64() && !e.get_uint64().get(u)) return Id{u};
  std::string_view s;
  if (e.is_string() && !e.get_string().get(s)) {
    if (auto id = id_from_text(s)) return *id;
  }
  return mistyped(field, "a positive integer id");
}

Result<Id> entity_id_field(JsonObject object, std::string_view field) {
  auto id = id_field(object, field);
  if (!id) return id;
  return local_id(*id);
}

Result<std::string_view> string_field(JsonObject object, std::string_view field) {
  simdjson::dom::element e;
  if (object[field].get(e)) return missing(field);
  std::string_view s;
  if (e.get_string().get(s)) return mistyped(field, "a string");
  return s;
}

Result<std::string> name_field(JsonObject object, std::string_view field, bool allow_empty) {
  auto s = string_field(object, field);
  if (!s) return s.error();
  std::string_view v = *s;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
  if (v.empty() && !allow_empty) return mistyped(field, "a non-empty name");
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto u = static_cast<unsigned char>(v[i]);
    // C0, DEL, and C1 (U+0080..U+009F, encoded C2 80..C2 9F).
    const bool c1 = u == 0xC2 && i + 1 < v.size() && static_cast<unsigned char>(v[i + 1]) <= 0x9F;
    if (u < 0x20 || u == 0x7f || c1) return mistyped(field, "a name without control characters");
  }
  return std::string(v);
}

Result<TimeMs> instant_field(JsonObject object, std::string_view field) {
  auto s = string_field(object, field);
  if (!s) return s.error();
  auto ms = instant_from_text(*s);
  if (!ms) {
    return mistyped(field,
                    "an ISO-8601 instant with a zone, like 2031-01-06T08:00:00.000Z, between "
                    "2000-01-01 and 9999-12-31");
  }
  return *ms;
}

}  // namespace slotd
