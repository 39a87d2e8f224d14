#include "api/icalendar.hpp"

#include <cstdlib>
#include <iterator>
#include <vector>

#include <date/date.h>
#include <fmt/format.h>

#include "api/time_zones.hpp"

namespace slotd {
namespace {

constexpr TimeMs kDayMs = 86'400'000;
// The VTIMEZONE covers a year either side of the appointment, so a calendar that shows
// the zone's neighbouring changes (or checks the times) finds them.
constexpr TimeMs kZoneMarginMs = 366 * kDayMs;

// Appends one content line, folded (RFC 5545 3.1): at most 75 octets per physical line, a
// continuation starts with one space, and a UTF-8 sequence is never split.
void append_line(std::string& out, std::string_view line) {
  std::size_t limit = 75;
  while (line.size() > limit) {
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    out.append(line.substr(0, cut));
    out += "\r\n ";
    line.remove_prefix(cut);
    limit = 74;  // the leading space counts
  }
  out.append(line);
  out += "\r\n";
}

// A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newline escaped; other
// control characters, which TEXT may not hold, become spaces.
std::string text_value(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case ';': out += "\\;"; break;
      case ',': out += "\\,"; break;
      case '\n': out += "\\n"; break;
      default:
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    }
  }
  return out;
}

// DATE-TIME (RFC 5545 3.3.5) of an instant shifted by `offset_s` (local time when it is the
// zone's offset): 19970714T133000, with a trailing Z for UTC.
std::string date_time(TimeMs ms, int offset_s, bool utc) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  const auto t = date::floor<seconds>(date::sys_time<milliseconds>{milliseconds{ms}}) +
                 seconds{offset_s};
  const auto day = date::floor<date::days>(t);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<seconds> hms{t - day};
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}{}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     utc ? "Z" : "");
}

// UTC-OFFSET (RFC 5545 3.3.14): +0100, or +013502 when seconds are not zero.
std::string utc_offset(int offset_s) {
  const char sign = offset_s < 0 ? '-' : '+';
  const int a = std::abs(offset_s);
  if (a % 60 != 0) return fmt::format("{}{:02}{:02}{:02}", sign, a / 3600, a / 60 % 60, a % 60);
  return fmt::format("{}{:02}{:02}", sign, a / 3600, a / 60 % 60);
}

// One observance per period of the zone around the appointment: DTSTART is the local time
// at which the period begins, in the offset before it (TZOFFSETFROM), as RFC 5545 3.6.5
// requires; the zone's first period, which no transition starts, begins in 1601.
void append_time_zone(std::string& out, const std::vector<ZonePeriod>& periods,
                      std::string_view zone) {
  append_line(out, "BEGIN:VTIMEZONE");
  append_line(out, fmt::format("TZID:{}", zone));
  for (const ZonePeriod& p : periods) {
    const char* kind = p.daylight ? "DAYLIGHT" : "STANDARD";
    append_line(out, fmt::format("BEGIN:{}", kind));
    append_line(out, p.first ? std::string("DTSTART:16010101T000000")
                             : "DTSTART:" + date_time(p.begin_ms, p.offset_before_seconds, false));
    append_line(out, "TZOFFSETFROM:" + utc_offset(p.offset_before_seconds));
    append_line(out, "TZOFFSETTO:" + utc_offset(p.offset_seconds));
    if (!p.abbreviation.empty()) append_line(out, "TZNAME:" + text_value(p.abbreviation));
    append_line(out, fmt::format("END:{}", kind));
  }
  append_line(out, "END:VTIMEZONE");
}

// The offset of the period holding `ms`.
int offset_at(const std::vector<ZonePeriod>& periods, TimeMs ms) {
  for (const ZonePeriod& p : periods) {
    if (ms >= p.begin_ms && ms < p.end_ms) return p.offset_seconds;
  }
  return periods.empty() ? 0 : periods.back().offset_seconds;
}

}  // namespace

std::string render_icalendar(const CalendarEvent& e) {
  const std::vector<ZonePeriod> periods =
      zone_periods(e.time_zone, e.start_ms - kZoneMarginMs, e.end_ms + kZoneMarginMs);
  std::string out;
  out.reserve(2048);
  append_line(out, "BEGIN:VCALENDAR");
  append_line(out, "VERSION:2.0");
  append_line(out, "PRODID:-//slotd//clinic booking//EN");
  append_line(out, "CALSCALE:GREGORIAN");
  append_line(out, "METHOD:PUBLISH");
  if (!periods.empty()) append_time_zone(out, periods, e.time_zone);
  append_line(out, "BEGIN:VEVENT");
  append_line(out, "UID:" + e.uid);
  append_line(out, "DTSTAMP:" + date_time(e.stamp_ms, 0, true));
  append_line(out, "CREATED:" + date_time(e.created_ms, 0, true));
  if (periods.empty()) {
    append_line(out, "DTSTART:" + date_time(e.start_ms, 0, true));
    append_line(out, "DTEND:" + date_time(e.end_ms, 0, true));
  } else {
    append_line(out, fmt::format("DTSTART;TZID={}:{}", e.time_zone,
                                 date_time(e.start_ms, offset_at(periods, e.start_ms), false)));
    append_line(out, fmt::format("DTEND;TZID={}:{}", e.time_zone,
                                 date_time(e.end_ms, offset_at(periods, e.end_ms), false)));
  }
  append_line(out, fmt::format("SEQUENCE:{}", e.sequence));
  append_line(out, e.cancelled ? "STATUS:CANCELLED" : "STATUS:CONFIRMED");
  append_line(out, "SUMMARY:" + text_value(e.summary));
  if (!e.location.empty()) append_line(out, "LOCATION:" + text_value(e.location));
  if (!e.description.empty()) append_line(out, "DESCRIPTION:" + text_value(e.description));
  append_line(out, "TRANSP:OPAQUE");
  append_line(out, "END:VEVENT");
  append_line(out, "END:VCALENDAR");
  return out;
}

}  // namespace slotd
