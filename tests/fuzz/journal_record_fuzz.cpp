// The journal's record decoder (journal/codec.hpp) on arbitrary bytes: it must refuse or
// decode without reading out of bounds, and what it decodes must be a fixed point of
// decode → encode → decode. A format-2 value has exactly one encoding, so re-encoding it
// gives back the very bytes; a format-1 value re-encodes as format 2.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "journal/codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace slotd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  constexpr std::uint64_t kSeq = 42;
  JournalRecord first;
  if (!decode_record(kSeq, bytes, first)) return 0;
  FUZZ_CHECK(first.seq == kSeq, "decode did not take the seq from the key");

  std::string encoded;
  encode_record(first, encoded);
  if (static_cast<std::uint8_t>(bytes[0]) == kJournalFormatVersion) {
    FUZZ_CHECK(encoded == bytes, "a decoded format-%u value re-encodes to other bytes",
               static_cast<unsigned>(kJournalFormatVersion));
  }
  JournalRecord second;
  JournalStatus again = decode_record(kSeq, encoded, second);
  FUZZ_CHECK(again.ok, "an encoded record does not decode: %s", again.message.c_str());
  std::string reencoded;
  encode_record(second, reencoded);
  FUZZ_CHECK(reencoded == encoded, "decode → encode → decode is not a fixed point");
  FUZZ_CHECK(second.at_ms == first.at_ms && second.request_id == first.request_id &&
                 second.actor == first.actor && second.event.index() == first.event.index(),
             "the record's metadata changed on the way round");
  return 0;
}
