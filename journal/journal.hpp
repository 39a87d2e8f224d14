// journal/ — the durable event log of slotd, in RocksDB.
//
// Owns: the RocksDB directory of the journal, the key/value encoding (codec.hpp,
// documented in journal/README.md), group-commit appends and ordered reads.
// May include engine/ (for Event) and RocksDB; RocksDB stays behind a pimpl so users of
// this header do not see it.
//
// Threading: append() is for the one writer (the sequencer). read() and last_seq() may
// be called from any thread at the same time as append(); so may the cursor calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "journal/codec.hpp"

namespace rocksdb {
class Env;  // only for fault-injection tests; the header stays free of RocksDB
}

namespace slotd {

struct EntityIndexOptions;

// How the journal's RocksDB runs. The defaults are slotd's; the other fields are seams for
// tests (no flag sets them).
struct JournalOptions {
  // Replaces RocksDB's default Env (tests inject failing, crashing or in-memory file
  // systems); must outlive the journal.
  rocksdb::Env* env = nullptr;
  // The memtable size. A full memtable is flushed to a table file and the WAL moves on to
  // a new file, so a test shrinks it (RocksDB's floor is 64 KiB) to roll WAL files,
  // flush and compact within a short run.
  std::size_t write_buffer_bytes = 64 << 20;
  // Opens with automatic compactions off until start_compactions(): recovery reads the
  // journal on a machine whose other cores RocksDB would spend on compacting it meanwhile.
  bool defer_compactions = false;
  // Runs RocksDB's flush and compaction threads under SCHED_IDLE, and at normal priority
  // while writes are stalled (journal/background_priority.hpp). At normal priority a
  // memtable flush (64 MiB of records, a few tenths of a second of CPU) took turns with the
  // io thread on its core: with slotd on one core, durable bookings' p99 in 10 s runs was
  // 8-15 ms, and 5-7 ms with this (bench/results/2026-12-04-flush-priority.txt). slotd's
  // --journal-background normal leaves them at normal priority. The entity index's thread
  // follows the same choice (journal/entity_index.hpp).
  bool idle_background_threads = true;
  // The entity index (journal/README.md): keys per in-memory block, and sorted blocks merged
  // into each table file it ingests. Tests shrink them to ingest within a short run.
  std::size_t index_block_keys = 65536;
  std::size_t index_ingest_blocks = 8;
};

// A consumer's durable position in the journal (a webhook endpoint's delivery cursor).
struct JournalCursor {
  std::uint64_t next_seq = 1;  // the first seq the consumer has not finished with
  bool stopped = false;        // the consumer gave up at next_seq until told to go on
};

class Journal {
 public:
  // Opens the RocksDB at `dir`, and finds last_seq from the last key. Creates `dir` and its
  // missing parents first (RocksDB does not), each followed by an fsync of its parent
  // directory so that a power cut cannot forget a journal that has acknowledged records.
  [[nodiscard]] static JournalStatus open(const std::string& dir, std::unique_ptr<Journal>& out,
                                          const JournalOptions& options);
  [[nodiscard]] static JournalStatus open(const std::string& dir, std::unique_ptr<Journal>& out,
                                          rocksdb::Env* env = nullptr) {
    JournalOptions options;
    options.env = env;
    return open(dir, out, options);
  }

  // Opens the journal of `dir` for reading only, beside a slotd that may be running on it:
  // as a RocksDB secondary instance (its info log goes to a temp dir outside `dir`, removed
  // on close), so it takes no lock and writes nothing under `dir`. Sees the journal as of
  // the open. append() fails.
  [[nodiscard]] static JournalStatus open_read_only(const std::string& dir,
                                                    std::unique_ptr<Journal>& out);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends records whose seqs must be exactly last_seq()+1, +2, ... as ONE WriteBatch
  // written with sync = true (group commit: one fsync for the whole span). An empty span
  // is a no-op. On error nothing is assumed written and last_seq() does not move; after
  // a failed write every later append fails too, because the WAL's state is then
  // unknown — the owner must stop and recover by reopening.
  [[nodiscard]] JournalStatus append(std::span<const JournalRecord> records);
  // The same for records split over several spans (consecutive batches of the sequencer
  // written together): one WriteBatch, one sync for all of them.
  [[nodiscard]] JournalStatus append_parts(std::span<const std::span<const JournalRecord>> parts);

  // Visits records with seq >= from_seq in order, at most `limit` (0 = all); `visit`
  // returns false to stop early. Errors (naming the seq) on a gap in the seqs, a bad key
  // or a record that fails to decode; records visited before the error stay visited.
  // `visit` gets the read's own scratch record: it may move from it (the next record is
  // decoded into it from scratch).
  [[nodiscard]] JournalStatus read(std::uint64_t from_seq, std::uint64_t limit,
                                   const std::function<bool(JournalRecord&)>& visit) const;

  // The seq of the last durable record; 0 when the journal is empty.
  std::uint64_t last_seq() const;

  // Turns automatic compactions back on after an open with defer_compactions.
  [[nodiscard]] JournalStatus start_compactions();
  // Table files of the records at level 0 (flushed, not yet compacted).
  std::uint64_t level0_files() const;

  // Cursors of journal consumers, by consumer id, in the column family "cursors" of the
  // same database (created by the first put_cursor, so a journal without consumers is
  // the one-column-family database it always was). They are not events: nothing here
  // checks them against the records. put/delete write with sync = true, so a cursor that
  // was stored survives kill -9 and power loss.
  [[nodiscard]] JournalStatus put_cursor(std::uint64_t consumer_id, const JournalCursor& cursor);
  // `out` is empty when the consumer has no cursor.
  [[nodiscard]] JournalStatus get_cursor(std::uint64_t consumer_id,
                                         std::optional<JournalCursor>& out) const;
  [[nodiscard]] JournalStatus delete_cursor(std::uint64_t consumer_id);
  // The records that name one booking or one slot (the entity index, journal/README.md),
  // with from_seq <= seq <= up_to_seq, in seq order, at most `limit` (0 = all). Fails on a
  // journal opened read-only that predates the index.
  [[nodiscard]] JournalStatus history(EntityKind kind, Id id, std::uint64_t from_seq,
                                      std::uint64_t up_to_seq, std::uint64_t limit,
                                      const std::function<bool(const JournalRecord&)>& visit) const;
  // The last seq whose index keys are in RocksDB; later ones are in memory (tests).
  std::uint64_t index_ingested_up_to() const;

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  [[nodiscard]] JournalStatus open_index(const std::string& dir, bool writable,
                                         const EntityIndexOptions& options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slotd
