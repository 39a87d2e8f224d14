// ISO-8601 UTC instants <-> milliseconds since the epoch. The JSON and journal name for
// an instant is always this format: 2031-01-06T08:00:00.000Z.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

// Accepts YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM); fractions beyond ms are truncated.
// Refuses an instant that an offset moves out of the years 0000-9999, which
// format_iso8601 could not write back in this form.
std::optional<TimeMs> parse_iso8601(std::string_view text);

// Always YYYY-MM-DDTHH:MM:SS.mmmZ.
std::string format_iso8601(TimeMs ms);
void append_iso8601(std::string& out, TimeMs ms);
// The instant in quotes, or null for 0 ("never" / "not yet").
void append_iso8601_or_null(std::string& out, TimeMs ms);

}  // namespace slotd
