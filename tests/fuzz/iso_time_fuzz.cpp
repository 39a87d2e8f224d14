// ISO-8601 instants (api/iso_time.hpp) on arbitrary text: parse must refuse or accept
// without reading out of bounds; whatever it accepts formats to the canonical form, which
// parses back to the same instant; text already in canonical form formats back to itself.
// The first 8 bytes, read as milliseconds in the years 0000-9999, must survive format →
// parse too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "api/iso_time.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace slotd;

namespace {

constexpr TimeMs kFirstMs = -62'167'219'200'000;  // 0000-01-01T00:00:00.000Z
constexpr TimeMs kLastMs = 253'402'300'799'999;   // 9999-12-31T23:59:59.999Z

// YYYY-MM-DDTHH:MM:SS.mmmZ, the only form format_iso8601 writes.
bool canonical_shape(std::string_view s) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (kShape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != kShape[i]) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ms = parse_iso8601(text)) {
    const std::string formatted = format_iso8601(*ms);
    auto again = parse_iso8601(formatted);
    FUZZ_CHECK(again && *again == *ms, "%s does not parse back to %lld", formatted.c_str(),
               static_cast<long long>(*ms));
    if (canonical_shape(text)) {
      FUZZ_CHECK(formatted == text, "canonical %.*s formats as %s", static_cast<int>(size),
                 text.data(), formatted.c_str());
    }
  }
  if (size >= 8) {
    std::uint64_t raw = 0;
    std::memcpy(&raw, data, 8);
    const TimeMs ms = kFirstMs + static_cast<TimeMs>(raw % static_cast<std::uint64_t>(kLastMs - kFirstMs + 1));
    const std::string formatted = format_iso8601(ms);
    FUZZ_CHECK(canonical_shape(formatted), "%lld formats as %s", static_cast<long long>(ms), formatted.c_str());
    auto back = parse_iso8601(formatted);
    FUZZ_CHECK(back && *back == ms, "%s does not parse back to %lld", formatted.c_str(),
               static_cast<long long>(ms));
  }
  return 0;
}
