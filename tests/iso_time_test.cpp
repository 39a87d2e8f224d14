// ISO-8601 instants (api/iso_time): what parse accepts, and that format writes it back.
#include <doctest/doctest.h>

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
