// api/time_zones — IANA time zones (the system tz database, through Howard Hinnant's date
// library): validating a clinic's zone and turning a clinic's local wall time into UTC.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// A stretch of time in which a zone keeps one offset and abbreviation (a tz database
// sys_info). begin_ms is the zone's earliest known instant for the first period ever.
struct ZonePeriod {
  TimeMs begin_ms = 0;
  TimeMs end_ms = 0;
  int offset_seconds = 0;         // east of UTC
  int offset_before_seconds = 0;  // in the period before (equal to offset_seconds if none)
  bool daylight = false;          // summer time (save != 0)
  bool first = false;             // no transition starts it (the zone's first period)
  std::string abbreviation;
};

// The periods of `zone` that overlap [from_ms, to_ms), in order; empty for an unknown zone.
std::vector<ZonePeriod> zone_periods(std::string_view zone, TimeMs from_ms, TimeMs to_ms);

}  // namespace slotd
