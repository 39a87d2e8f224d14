#include "cluster/batch_codec.hpp"

#include <cstring>

namespace slotd {
namespace {

template <class T>
void put_le(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <class T>
bool get_le(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<T>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  in.remove_prefix(sizeof(T));
  return true;
}

}  // namespace

void encode_batch(std::span<const JournalRecord> records, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(kBatchFormatVersion));
  put_le<std::uint64_t>(out, records.empty() ? 0 : records.front().seq);
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(records.size()));
  std::string value;
  for (const JournalRecord& r : records) {
    value.clear();
    encode_record(r, value);
    put_le<std::uint32_t>(out, static_cast<std::uint32_t>(value.size()));
    out += value;
  }
}

JournalStatus decode_batch(std::string_view in, std::vector<JournalRecord>& out) {
  out.clear();
  if (in.empty() || static_cast<std::uint8_t>(in[0]) != kBatchFormatVersion) {
    return JournalStatus::error("batch message: unknown format version");
  }
  in.remove_prefix(1);
  std::uint64_t first = 0;
  std::uint32_t count = 0;
  if (!get_le(in, first) || !get_le(in, count)) return JournalStatus::error("batch message: truncated header");
  if (count > 0 && first == 0) return JournalStatus::error("batch message: seq 0");
  // Each record takes at least its 4-byte length: a count beyond that is a lie.
  if (count > in.size() / 4) return JournalStatus::error("batch message: count beyond the body");
  out.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint32_t length = 0;
    if (!get_le(in, length) || length > in.size()) {
      return JournalStatus::error("batch message: record " + std::to_string(first + i) + " truncated");
    }
    JournalRecord record;
    JournalStatus s = decode_record(first + i, in.substr(0, length), record);
    if (!s) return s;
    in.remove_prefix(length);
    out.push_back(std::move(record));
  }
  if (!in.empty()) return JournalStatus::error("batch message: trailing bytes");
  return {};
}

}  // namespace slotd
