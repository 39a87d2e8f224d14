#include "api/iso_time.hpp"

#include <chrono>
#include <cstdio>

namespace slotd {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& value) {
  if (pos + n > s.size()) return false;
  value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

constexpr TimeMs kFirstMs = -62'167'219'200'000;  // 0000-01-01T00:00:00.000Z
constexpr TimeMs kLastMs = 253'402'300'799'999;   // 9999-12-31T23:59:59.999Z

}  // namespace

std::optional<TimeMs> parse_iso8601(std::string_view s) {
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) ||
      s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  std::size_t pos = 19;
  TimeMs millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t first = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first || pos - first > 9) return std::nullopt;
  }
  TimeMs offset_ms = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_ms = (oh * 60 + om) * 60'000LL * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;  // an instant without a zone is ambiguous
  }
  if (pos != s.size()) return std::nullopt;
  TimeMs day_ms = sys_days{ymd}.time_since_epoch().count() * 86'400'000LL;
  const TimeMs ms = day_ms + ((h * 60LL + mi) * 60LL + sec) * 1000LL + millis - offset_ms;
  if (ms < kFirstMs || ms > kLastMs) return std::nullopt;
  return ms;
}

void append_iso8601(std::string& out, TimeMs ms) {
  using namespace std::chrono;
  sys_time<milliseconds> tp{milliseconds{ms}};
  auto day_point = floor<days>(tp);
  year_month_day ymd{day_point};
  const long long total_ms = (tp - day_point).count();
  const int year = static_cast<int>(ymd.year());
  if (year < 0 || year > 9999) {  // not a time the API accepts; printed as snprintf would
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", year,
                          static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                          total_ms / 3'600'000, total_ms / 60'000 % 60, total_ms / 1000 % 60,
                          total_ms % 1000);
    out.append(buf, static_cast<std::size_t>(n));
    return;
  }
  // Digit by digit: every booking reply prints two of these; in a perf profile under
  // booking load snprintf's formatting was about 1 % of slotd's samples.
  char buf[] = "0000-00-00T00:00:00.000Z";
  const auto put = [&buf](int at, long long value, int digits) {
    for (int i = at + digits - 1; i >= at; --i) {
      buf[i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, year, 4);
  put(5, static_cast<unsigned>(ymd.month()), 2);
  put(8, static_cast<unsigned>(ymd.day()), 2);
  put(11, total_ms / 3'600'000, 2);
  put(14, total_ms / 60'000 % 60, 2);
  put(17, total_ms / 1000 % 60, 2);
  put(20, total_ms % 1000, 3);
  out.append(buf, sizeof buf - 1);
}

std::string format_iso8601(TimeMs ms) {
  std::string out;
  append_iso8601(out, ms);
  return out;
}

void append_iso8601_or_null(std::string& out, TimeMs ms) {
  if (ms == 0) {
    out += "null";
    return;
  }
  out += '"';
  append_iso8601(out, ms);
  out += '"';
}

}  // namespace slotd
