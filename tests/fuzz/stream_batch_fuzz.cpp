// The cluster's stream message decoder (cluster/batch_codec.hpp) on arbitrary bytes: a
// follower decodes every message of the stream with it. It must refuse or decode without
// reading out of bounds; what it decodes has consecutive seqs from the header's first seq,
// and is a fixed point of decode → encode → decode. A message whose records are all of the
// current journal format has one encoding, so re-encoding it gives back the very bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/batch_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace slotd;

namespace {

bool same_records(const std::vector<JournalRecord>& a, const std::vector<JournalRecord>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].seq != b[i].seq || a[i].at_ms != b[i].at_ms || a[i].request_id != b[i].request_id ||
        a[i].actor != b[i].actor || a[i].event.index() != b[i].event.index()) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<JournalRecord> first;
  if (!decode_batch(bytes, first)) {
    FUZZ_CHECK(first.size() <= size, "a refused message left more records than it has bytes");
    return 0;
  }
  for (std::size_t i = 1; i < first.size(); ++i) {
    FUZZ_CHECK(first[i].seq == first[i - 1].seq + 1, "records %zu and %zu are not consecutive", i - 1, i);
  }
  std::string encoded;
  encode_batch(first, encoded);
  bool current_format = true;
  // Each record's value follows its 4-byte length; its first byte is its format version.
  std::string_view rest = bytes.substr(13);
  for (std::size_t i = 0; i < first.size(); ++i) {
    const std::uint32_t length = static_cast<std::uint8_t>(rest[0]) | static_cast<std::uint8_t>(rest[1]) << 8 |
                                 static_cast<std::uint8_t>(rest[2]) << 16 |
                                 static_cast<std::uint32_t>(static_cast<std::uint8_t>(rest[3])) << 24;
    current_format = current_format && length > 0 && static_cast<std::uint8_t>(rest[4]) == kJournalFormatVersion;
    rest.remove_prefix(4 + length);
  }
  if (current_format && !first.empty()) {
    FUZZ_CHECK(encoded == bytes, "a decoded message of current-format records re-encodes to other bytes");
  }
  std::vector<JournalRecord> second;
  JournalStatus again = decode_batch(encoded, second);
  FUZZ_CHECK(again.ok, "an encoded message does not decode: %s", again.message.c_str());
  FUZZ_CHECK(same_records(first, second), "the records changed on the way round");
  std::string reencoded;
  encode_batch(second, reencoded);
  FUZZ_CHECK(reencoded == encoded, "decode → encode → decode is not a fixed point");
  return 0;
}
