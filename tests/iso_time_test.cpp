// ISO-8601 instants (api/iso_time): what parse accepts, and that format writes it back.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "api/iso_time.hpp"

using namespace slotd;

TEST_CASE("an instant parses with Z, an offset or a fraction, and formats back in the one canonical form") {
  CHECK(format_iso8601(*parse_iso8601("2031-01-06T08:00:00Z")) == "2031-01-06T08:00:00.000Z");
  CHECK(format_iso8601(*parse_iso8601("2031-01-06T09:30:00.1234+01:30")) == "2031-01-06T08:00:00.123Z");
  CHECK(format_iso8601(*parse_iso8601("0000-01-01T00:00:00.000Z")) == "0000-01-01T00:00:00.000Z");
  CHECK(format_iso8601(*parse_iso8601("9999-12-31T23:59:59.999Z")) == "9999-12-31T23:59:59.999Z");
  CHECK_FALSE(parse_iso8601("2031-01-06T08:00:00"));  // no zone: ambiguous
  CHECK_FALSE(parse_iso8601("2031-02-29T08:00:00Z"));
}

TEST_CASE("an offset that moves an instant out of the years 0000-9999 is refused, since it could not be written back (found by the iso_time fuzz target)") {
  CHECK_FALSE(parse_iso8601("0000-01-01t00:00:00+01:00"));  // would be -0001-12-31T23:00Z
  CHECK_FALSE(parse_iso8601("9999-12-31T23:30:00-01:00"));  // would be 10000-01-01T00:30Z
  CHECK(parse_iso8601("0000-01-01T01:00:00+01:00"));
}

TEST_CASE("format writes every instant of the years 0000-9999 as the reference formatting does, and parse reads it back") {
  // The reference: the civil date from the standard library, printed with snprintf.
  const auto reference = [](TimeMs ms) {
    using namespace std::chrono;
    sys_time<milliseconds> tp{milliseconds{ms}};
    auto day_point = floor<days>(tp);
    year_month_day ymd{day_point};
    long long in_day = (tp - day_point).count();
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                          static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                          static_cast<unsigned>(ymd.day()), in_day / 3'600'000,
                          in_day / 60'000 % 60, in_day / 1000 % 60, in_day % 1000);
    return std::string(buf, static_cast<std::size_t>(n));
  };
  const TimeMs first = *parse_iso8601("0000-01-01T00:00:00.000Z");
  const TimeMs last = *parse_iso8601("9999-12-31T23:59:59.999Z");
  std::mt19937_64 rng(20261204);
  std::uniform_int_distribution<TimeMs> any(first, last);
  std::vector<TimeMs> samples = {first, last, 0, -1, 1, 86'399'999, 86'400'000};
  for (int i = 0; i < 200'000; ++i) samples.push_back(any(rng));
  for (TimeMs ms : samples) {
    const std::string text = format_iso8601(ms);
    REQUIRE_MESSAGE(text == reference(ms), ms);
    REQUIRE(parse_iso8601(text) == ms);
  }
}
