// api/time_zones — IANA time zones (the system tz database, through Howard Hinnant's date
// library): validating a clinic's zone and turning a clinic's local wall time into UTC.
#pragma once

#include <optional>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

bool valid_time_zone(std::string_view name);

// The UTC instant of a local wall time in `zone`. A time that occurs twice (clocks go
// back) is the earlier one; a time that does not exist (clocks go forward) is moved
// forward by the gap. nullopt for an unknown zone or an invalid date.
std::optional<TimeMs> local_to_utc(std::string_view zone, int year, unsigned month, unsigned day,
                                   unsigned minute_of_day);

// The UTC offset of `zone` at instant `at_ms`, in minutes east of UTC.
std::optional<int> utc_offset_minutes(std::string_view zone, TimeMs at_ms);

}  // namespace slotd
