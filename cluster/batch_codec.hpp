// cluster/batch_codec — one JetStream message per sequencer batch (cluster/README.md):
// a version byte, the first seq, the record count, then each record as a u32 length and
// its journal value (journal/codec.hpp). Plain bytes, no NATS.
#pragma once

#include <string>
#include <string_view>
#include <span>
#include <vector>

#include "journal/codec.hpp"

namespace slotd {

inline constexpr std::uint8_t kBatchFormatVersion = 1;

// Records must have consecutive seqs (a sequencer batch has).
void encode_batch(std::span<const JournalRecord> records, std::string& out);
// Strict: a wrong version, a truncated or over-long body or a record that fails to decode
// is an error; `out` is replaced.
[[nodiscard]] JournalStatus decode_batch(std::string_view bytes, std::vector<JournalRecord>& out);

}  // namespace slotd
