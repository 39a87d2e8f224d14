// api/icalendar — one appointment as an RFC 5545 iCalendar object (the .ics a patient adds
// to a calendar): a VEVENT in the clinic's time zone with that zone's VTIMEZONE, built from
// the tz database. Pure text, no HTTP.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

struct CalendarEvent {
  std::string uid;             // stable for the booking across every change
  std::uint32_t sequence = 0;  // bumped by every revision a calendar must pick up
  bool cancelled = false;      // STATUS:CANCELLED, else CONFIRMED
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
  TimeMs created_ms = 0;
  TimeMs stamp_ms = 0;         // when this object was made (DTSTAMP)
  std::string time_zone;       // IANA name; times are written in it
  std::string summary;
  std::string location;
  std::string description;
};

// A whole VCALENDAR (METHOD:PUBLISH): CRLF line ends, lines folded at 75 octets without
// splitting a UTF-8 sequence, TEXT values escaped. An unknown zone falls back to UTC times.
std::string render_icalendar(const CalendarEvent& event);

}  // namespace slotd
