// journal/entity_index.hpp — the per-booking and per-slot index of the journal (journal/
// README.md, "The entity index"). Internal to journal/: only journal.cpp includes it, so
// RocksDB stays out of journal.hpp.
//
// The index has two parts. Keys of older records are in the column family `entities`, put
// there as whole sorted table files (IngestExternalFile), never through the memtable. The
// keys of the newest records are in memory, in blocks: the writer fills the open block after
// each durable append; a full block is sorted by the index thread; every `ingest_blocks`
// sorted blocks are merged into one table file and ingested, with the key `00 "upto"` = the
// last seq they cover. So the column family covers exactly the seqs up to "upto", and the
// blocks the seqs after it. A clean close ingests every block; at open, the records after
// "upto" (those of blocks a crash lost) are indexed again from the journal.
//
// Threading: add_record/publish are for the one writer; seqs() may run on any thread at the
// same time; the index thread sorts and ingests.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "journal/codec.hpp"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
}  // namespace rocksdb

namespace slotd {

struct EntityIndexOptions {
  std::size_t block_keys = 65536;      // keys per in-memory block
  std::size_t ingest_blocks = 8;       // sorted blocks merged into one ingested table file
  std::size_t max_sealed_blocks = 32;  // full blocks not yet ingested before append waits
  // The index thread runs under SCHED_IDLE, and at normal priority from max_sealed_blocks / 2
  // full blocks waiting until they are down to a quarter of it.
  bool idle_thread = true;
};

// The index entries of one record: at most kMaxEntitiesPerEvent, plus the slot of a
// format-1 booking event (resolved from `slot_of`, booking id - 1 → its first slot).
using IndexRefs = std::array<EntityRef, kMaxEntitiesPerEvent + 1>;
std::size_t index_refs_of(const Event& event, const std::vector<std::uint32_t>* slot_of,
                          IndexRefs& out);

class EntityIndex {
 public:
  // Trivial, so that a new block's keys are not written before the writer fills them.
  struct Key {
    Id id;
    std::uint64_t seq;
    EntityKind kind;
  };
  struct Block;

  // Visits (seq, event) of the journal's records from `from_seq` on.
  using ReadRecords = std::function<JournalStatus(
      std::uint64_t from_seq, const std::function<void(std::uint64_t, const Event&)>&)>;

  // Reads where the column family's coverage ends, then indexes the records after it from
  // the journal. A writable index starts its thread first and ingests as it goes; a
  // read-only one keeps everything in memory and indexes on the first seqs() call.
  [[nodiscard]] static JournalStatus open(rocksdb::DB& db, rocksdb::ColumnFamilyHandle& family,
                                          const std::string& dir, std::uint64_t last_seq,
                                          bool writable, const EntityIndexOptions& options,
                                          const ReadRecords& read_records,
                                          std::unique_ptr<EntityIndex>& out);
  ~EntityIndex();
  EntityIndex(const EntityIndex&) = delete;
  EntityIndex& operator=(const EntityIndex&) = delete;

  // The writer, after a record is durable and before its seq is published: adds and
  // publishes the record's keys. Seals the open block once it is full, and then may wait
  // while max_sealed_blocks full blocks are not yet ingested. `slot_of` resolves format-1
  // records (index_refs_of).
  void add_record(const Event& event, std::uint64_t seq,
                  const std::vector<std::uint32_t>* slot_of = nullptr);
  // Once an ingest failed, or the rebuild at open could not read a record: the journal then
  // refuses appends, and history reads fail with the reason.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string failure() const;

  // Visits the seqs that name the entity with from_seq <= seq <= up_to_seq, in order;
  // `visit` returns false to stop. Any thread, beside the writer.
  [[nodiscard]] JournalStatus seqs(EntityKind kind, Id id, std::uint64_t from_seq,
                                   std::uint64_t up_to_seq,
                                   const std::function<bool(std::uint64_t)>& visit);

  // The last seq the column family covers (tests and docs).
  std::uint64_t ingested_up_to() const;

 private:
  EntityIndex(rocksdb::DB& db, rocksdb::ColumnFamilyHandle& family, std::string dir,
              const EntityIndexOptions& options);
  // Adds the records after `covered`; a record it cannot read sets the failure.
  void index_again(std::uint64_t covered, const ReadRecords& read_records);
  void seal_open_block();
  void run();
  // Where an ingest writes its file before RocksDB takes it (in the journal dir).
  std::string ingest_path() const;
  // The index thread's scheduling class: SCHED_IDLE or normal.
  void set_idle(bool idle);
  [[nodiscard]] JournalStatus ingest(const std::vector<std::shared_ptr<const Block>>& blocks,
                                     std::uint64_t up_to, bool from_index_thread);

  rocksdb::DB& db_;
  rocksdb::ColumnFamilyHandle& family_;
  const std::string dir_;
  const EntityIndexOptions options_;
  // The writer's open block and how many of its keys it has written (published in the block).
  std::shared_ptr<Block> open_;
  std::size_t open_count_ = 0;
  std::uint64_t added_up_to_ = 0;  // the seq of the last record added, keys or not
  std::atomic<bool> failed_{false};

  mutable std::mutex mutex_;
  std::condition_variable work_;  // the index thread waits here
  std::condition_variable room_;  // the writer waits here for full blocks to be ingested
  // Everything after ingested_up_to_, oldest first: sealed blocks (sorted or not) and, last,
  // the open block. Readers copy this under the mutex.
  std::vector<std::shared_ptr<const Block>> blocks_;
  std::uint64_t ingested_up_to_ = 0;
  std::string failure_;
  bool stopping_ = false;
  std::thread thread_;             // only for a writable index
  ReadRecords lazy_read_records_;  // a read-only index not built yet
  std::once_flag lazy_once_;
  bool idle_ = false;  // the class set_idle last gave the index thread
};

}  // namespace slotd
