// api/json_in — request bodies and query values, parsed strictly (simdjson DOM).
//
// A body must be one JSON object without duplicate keys (at any depth). Fields: ids are
// JSON integers or digit strings; names are trimmed, must not be empty and must not hold
// control characters; instants are ISO-8601 with a zone, between 2000-01-01 and
// 9999-12-31. Every problem is an ApiError (400 with a code naming what is wrong).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "api/errors.hpp"
#include "engine/engine.hpp"

namespace slotd {

using JsonObject = simdjson::dom::object;

// The body as an object. Uses a per-thread parser: the result lives until the next call
// on the same thread.
Result<JsonObject> parse_body(std::string_view body);

bool has_field(JsonObject object, std::string_view field);
Result<Id> id_field(JsonObject object, std::string_view field);
// An id of a clinic, doctor, slot, booking, …: id_field, then the engine id (local_id in
// api/partition.hpp; 421 wrong_node when another node owns its partition).
Result<Id> entity_id_field(JsonObject object, std::string_view field);
// A required string, as sent (UTF-8 is already checked by the parser).
Result<std::string_view> string_field(JsonObject object, std::string_view field);
// A name: trimmed of spaces; empty or holding control characters → 400.
Result<std::string> name_field(JsonObject object, std::string_view field, bool allow_empty = false);
Result<TimeMs> instant_field(JsonObject object, std::string_view field);

// Ids in paths and queries: 1 to 20 digits.
std::optional<Id> id_from_text(std::string_view text);
// An instant in a query or a body: ISO-8601 with a zone, within the accepted range.
std::optional<TimeMs> instant_from_text(std::string_view text);

}  // namespace slotd
