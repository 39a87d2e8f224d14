// api/icalendar: the text of an appointment's .ics — line folding, escaping, the VEVENT's
// local times and the VTIMEZONE built from the tz database. (tests/booking_changes_test.py also
// parses the served file with Python's icalendar.)
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "api/icalendar.hpp"

using namespace slotd;

namespace {

constexpr TimeMs kJan6_2031_08Z = 1'925'452'800'000;  // 2031-01-06T08:00:00Z, a Monday

std::vector<std::string> physical_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find("\r\n", at);
    REQUIRE(end != std::string::npos);  // every line ends in CRLF, the last one too
    lines.push_back(text.substr(at, end - at));
    at = end + 2;
  }
  return lines;
}

// Undoes folding: a line that starts with a space continues the one before.
std::vector<std::string> content_lines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& line : physical_lines(text)) {
    if (!line.empty() && line[0] == ' ') {
      REQUIRE(!out.empty());
      out.back() += line.substr(1);
    } else {
      out.push_back(line);
    }
  }
  return out;
}

bool has_line(const std::vector<std::string>& lines, const std::string& want) {
  for (const std::string& l : lines) {
    if (l == want) return true;
  }
  return false;
}

CalendarEvent berlin_event() {
  CalendarEvent e;
  e.uid = "booking-7-1925000000000@slotd";
  e.sequence = 2;
  e.start_ms = kJan6_2031_08Z;
  e.end_ms = kJan6_2031_08Z + 30 * 60'000;
  e.created_ms = kJan6_2031_08Z - 86'400'000;
  e.stamp_ms = kJan6_2031_08Z - 3'600'000;
  e.time_zone = "Europe/Berlin";
  e.summary = "Appointment with Dr. Ada Osei (GP)";
  e.location = "Main Clinic";
  return e;
}

}  // namespace

TEST_CASE("an .ics has CRLF line ends and no physical line over 75 octets, even with long UTF-8 text") {
  CalendarEvent e = berlin_event();
  // 3-byte characters: a naive cut at 75 octets would split one.
  e.description = "Booking #7 for " + std::string(60, 'x') + std::string(40 * 1, ' ');
  for (int i = 0; i < 40; ++i) e.description += "\xe2\x82\xac";  // €
  const std::string text = render_icalendar(e);
  CHECK(text.find('\n') == text.find("\r\n") + 1);
  for (const std::string& line : physical_lines(text)) {
    INFO(line);
    CHECK(line.size() <= 75);
    CHECK(line.find('\r') == std::string::npos);
    // No line starts inside a UTF-8 sequence (after its folding space).
    const std::size_t first = !line.empty() && line[0] == ' ' ? 1 : 0;
    if (line.size() > first) CHECK((static_cast<unsigned char>(line[first]) & 0xC0) != 0x80);
  }
  std::string want = "DESCRIPTION:" + e.description;
  CHECK(has_line(content_lines(text), want));
}

TEST_CASE("TEXT values escape backslash, semicolon, comma and newline") {
  CalendarEvent e = berlin_event();
  e.summary = "a\\b;c,d\ne";
  e.location = "tab\there";
  const auto lines = content_lines(render_icalendar(e));
  CHECK(has_line(lines, "SUMMARY:a\\\\b\\;c\\,d\\ne"));
  CHECK(has_line(lines, "LOCATION:tab here"));
}

TEST_CASE("the VEVENT is at the clinic's local time with its zone, and the VTIMEZONE says how Berlin changes") {
  const auto lines = content_lines(render_icalendar(berlin_event()));
  CHECK(lines.front() == "BEGIN:VCALENDAR");
  CHECK(lines.back() == "END:VCALENDAR");
  CHECK(has_line(lines, "VERSION:2.0"));
  CHECK(has_line(lines, "UID:booking-7-1925000000000@slotd"));
  CHECK(has_line(lines, "SEQUENCE:2"));
  CHECK(has_line(lines, "STATUS:CONFIRMED"));
  CHECK(has_line(lines, "DTSTAMP:20310106T070000Z"));
  CHECK(has_line(lines, "CREATED:20310105T080000Z"));
  // 08:00 UTC in January is 09:00 in Berlin (CET, +01:00).
  CHECK(has_line(lines, "DTSTART;TZID=Europe/Berlin:20310106T090000"));
  CHECK(has_line(lines, "DTEND;TZID=Europe/Berlin:20310106T093000"));
  CHECK(has_line(lines, "TZID:Europe/Berlin"));
  // Summer time 2031 starts on 30 March at 02:00 local (01:00 UTC) and ends on 26 October
  // at 03:00 local summer time; each observance starts in the offset before it.
  const std::string dst_2031 = "DTSTART:20310330T020000";
  const std::string std_2031 = "DTSTART:20311026T030000";
  bool dst = false, std_time = false;
  for (std::size_t i = 0; i + 3 < lines.size(); ++i) {
    if (lines[i] == "BEGIN:DAYLIGHT" && lines[i + 1] == dst_2031) {
      dst = lines[i + 2] == "TZOFFSETFROM:+0100" && lines[i + 3] == "TZOFFSETTO:+0200";
    }
    if (lines[i] == "BEGIN:STANDARD" && lines[i + 1] == std_2031) {
      std_time = lines[i + 2] == "TZOFFSETFROM:+0200" && lines[i + 3] == "TZOFFSETTO:+0100";
    }
  }
  CHECK(dst);
  CHECK(std_time);
}

TEST_CASE("a cancelled booking is STATUS:CANCELLED, a UTC clinic gets a one-observance zone") {
  CalendarEvent e = berlin_event();
  e.cancelled = true;
  e.time_zone = "UTC";
  const auto lines = content_lines(render_icalendar(e));
  CHECK(has_line(lines, "STATUS:CANCELLED"));
  CHECK(has_line(lines, "DTSTART;TZID=UTC:20310106T080000"));
  CHECK(has_line(lines, "TZOFFSETTO:+0000"));
  int observances = 0;
  for (const std::string& l : lines) observances += l == "BEGIN:STANDARD" || l == "BEGIN:DAYLIGHT";
  CHECK(observances == 1);
}
