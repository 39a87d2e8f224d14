// sequencer/tail_reader — reads the journal from a seq on its own thread, in blocks, ahead
// of the thread that applies them (recovery). The journal read (RocksDB, checksums, record
// decoding) then overlaps the snapshot's load and the replay's apply instead of adding to
// them. At most kMaxBlocks blocks wait at a time, so memory stays bounded for any tail
// (a JournalRecord is 152 bytes, plus any name too long for the string's own buffer: 128
// blocks of 4,096 are about 80 MB while a long tail loads).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "journal/journal.hpp"

namespace slotd {

class TailReader {
 public:
  static constexpr std::size_t kBlockRecords = 4096;
  static constexpr std::size_t kMaxBlocks = 128;

  // Starts reading `journal` from `from_seq` to its end. The journal must not be written
  // while this reader lives.
  TailReader(const Journal& journal, std::uint64_t from_seq,
             std::size_t block_records = kBlockRecords, std::size_t max_blocks = kMaxBlocks);
  ~TailReader();  // stops the read and waits for its thread
  TailReader(const TailReader&) = delete;
  TailReader& operator=(const TailReader&) = delete;

  std::uint64_t from_seq() const { return from_seq_; }
  // The next block of records, in seq order; empty once the read has ended (then status()).
  std::vector<JournalRecord> next();
  // Hands an applied block back for the reader to fill again: its memory is already
  // touched, so the read does not page-fault fresh blocks in (optional).
  void give_back(std::vector<JournalRecord> block);
  // How the read ended; call after next() returned an empty block.
  JournalStatus status();

 private:
  void run(const Journal& journal);

  const std::uint64_t from_seq_;
  const std::size_t block_records_;
  const std::size_t max_blocks_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<JournalRecord>> blocks_;
  std::vector<std::vector<JournalRecord>> spare_;  // emptied blocks, at most max_blocks_
  bool done_ = false;
  bool stopping_ = false;
  JournalStatus status_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace slotd
