#include "api/time_zones.hpp"

#include <chrono>
#include <string>

#include <date/tz.h>

namespace slotd {
namespace {

const date::time_zone* find_zone(std::string_view name) {
  if (name.empty() || name.size() > 64) return nullptr;
  try {
    return date::locate_zone(std::string(name));
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

bool valid_time_zone(std::string_view name) { return find_zone(name) != nullptr; }

std::optional<TimeMs> local_to_utc(std::string_view zone, int year, unsigned month, unsigned day,
                                   unsigned minute_of_day) {
  const date::time_zone* tz = find_zone(zone);
  if (!tz) return std::nullopt;
  const date::year_month_day ymd{date::year{year}, date::month{month}, date::day{day}};
  if (!ymd.ok()) return std::nullopt;
  const auto local = date::local_days{ymd} + std::chrono::minutes{minute_of_day};
  try {
    const auto info = tz->get_info(local);
    std::chrono::seconds offset = info.first.offset;
    if (info.result == date::local_info::nonexistent) {
      // In the gap: the wall clock jumps forward, so does the appointment.
      const auto sys = date::sys_seconds{local.time_since_epoch()} - info.first.offset;
      return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
    }
    const auto sys = date::sys_seconds{local.time_since_epoch()} - offset;
    return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<int> utc_offset_minutes(std::string_view zone, TimeMs at_ms) {
  const date::time_zone* tz = find_zone(zone);
  if (!tz) return std::nullopt;
  const date::sys_seconds t{std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::milliseconds{at_ms})};
  return static_cast<int>(tz->get_info(t).offset.count() / 60);
}

std::vector<ZonePeriod> zone_periods(std::string_view zone, TimeMs from_ms, TimeMs to_ms) {
  std::vector<ZonePeriod> out;
  const date::time_zone* tz = find_zone(zone);
  if (!tz) return out;
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  auto ms_of = [](date::sys_seconds t) {
    return duration_cast<milliseconds>(t.time_since_epoch()).count();
  };
  date::sys_seconds t{duration_cast<seconds>(milliseconds{from_ms})};
  const date::sys_seconds end{duration_cast<seconds>(milliseconds{to_ms})};
  // Bounded: a zone changes a few times a year, and a caller asks about a few years.
  for (int guard = 0; guard < 1000; ++guard) {
    const date::sys_info info = tz->get_info(t);
    ZonePeriod p;
    p.offset_seconds = static_cast<int>(info.offset.count());
    p.daylight = info.save != std::chrono::minutes{0};
    p.abbreviation = info.abbrev;
    // The library marks "no earlier transition" with its minimum instant.
    p.first = info.begin <= date::sys_seconds{date::sys_days{date::year{1800} / 1 / 1}};
    p.begin_ms = p.first ? ms_of(date::sys_days{date::year{1800} / 1 / 1}) : ms_of(info.begin);
    p.offset_before_seconds =
        p.first ? p.offset_seconds
                : static_cast<int>(tz->get_info(info.begin - seconds{1}).offset.count());
    const bool last = info.end >= end || info.end <= info.begin;
    p.end_ms = last && info.end > date::sys_seconds{date::sys_days{date::year{9999} / 1 / 1}}
                   ? kMaxInstantMs
                   : ms_of(info.end);
    out.push_back(std::move(p));
    if (last) break;
    t = info.end;
  }
  return out;
}

}  // namespace slotd
