#include "journal/entity_index.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <tuple>
#include <utility>
#include <variant>

#include <fmt/core.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

namespace slotd {

struct EntityIndex::Block {
  explicit Block(std::size_t size) : keys(new Key[size]), capacity(size) {}
  std::unique_ptr<Key[]> keys;
  std::size_t capacity;
  // Keys [0, count) are written and never change; the writer stores count after them.
  std::atomic<std::size_t> count{0};
  // Set under the index's mutex when the writer seals it (no key is added after that).
  bool sealed = false;
  bool sorted = false;         // by (kind, id, seq); a sorted block is a sorted copy
  std::uint64_t last_seq = 0;  // of a sealed block: the last record it covers
};

namespace {

// Kept before every entity key (kind 'b' or 's'): the last seq the family covers, 8 bytes
// big-endian, in the same ingested file as the keys it covers.
const std::string kUpToKey = std::string(1, '\0') + "upto";
// Written by versions that put the keys in the same WriteBatch as the records: the family
// then covered every record.
const std::string kBuiltKey = std::string(1, '\0') + "built";
constexpr char kIngestFile[] = "entities-ingest.sst";

bool key_less(const EntityIndex::Key& a, const EntityIndex::Key& b) {
  return std::tie(a.kind, a.id, a.seq) < std::tie(b.kind, b.id, b.seq);
}

bool key_equal(const EntityIndex::Key& a, const EntityIndex::Key& b) {
  return a.kind == b.kind && a.id == b.id && a.seq == b.seq;
}

std::shared_ptr<EntityIndex::Block> sorted_copy(const EntityIndex::Block& block) {
  const std::size_t n = block.count.load(std::memory_order_acquire);
  auto sorted = std::make_shared<EntityIndex::Block>(n);
  std::copy(block.keys.get(), block.keys.get() + n, sorted->keys.get());
  std::sort(sorted->keys.get(), sorted->keys.get() + n, key_less);
  sorted->count.store(n, std::memory_order_relaxed);
  sorted->sealed = true;
  sorted->sorted = true;
  sorted->last_seq = block.last_seq;
  return sorted;
}

}  // namespace

std::size_t index_refs_of(const Event& event, const std::vector<std::uint32_t>* slot_of,
                          IndexRefs& out) {
  EntityRefs refs;
  const std::size_t n = entities_of(event, refs);
  bool slot_named = false;
  for (std::size_t i = 0; i < n; ++i) {
    slot_named |= refs[i].kind == EntityKind::slot;
    out[i] = refs[i];
  }
  // Format-1 booking events name no slot: a booking never moved then, so it is its first.
  // (A WaitlistOffered names no slot either, by design: its SlotHeld indexes the slot.)
  if (!slot_named && n == 1 && refs[0].kind == EntityKind::booking && slot_of &&
      !std::holds_alternative<WaitlistOffered>(event) && refs[0].id <= slot_of->size() &&
      (*slot_of)[refs[0].id - 1] != 0) {
    out[n] = EntityRef{EntityKind::slot, (*slot_of)[refs[0].id - 1]};
    return n + 1;
  }
  return n;
}

EntityIndex::EntityIndex(rocksdb::DB& db, rocksdb::ColumnFamilyHandle& family, std::string dir,
                         const EntityIndexOptions& options)
    : db_(db), family_(family), dir_(std::move(dir)), options_(options) {}

EntityIndex::~EntityIndex() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  room_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  // A clean close puts every key into RocksDB, so the next open has nothing to index again.
  // Were this cut short, the next open indexes from the last ingest on.
  if (!failure_.empty() || added_up_to_ <= ingested_up_to_) return;
  for (auto& block : blocks_) {
    if (!block->sorted) block = sorted_copy(*block);
  }
  (void)ingest(blocks_, added_up_to_, false);
}

JournalStatus EntityIndex::open(rocksdb::DB& db, rocksdb::ColumnFamilyHandle& family,
                                const std::string& dir, std::uint64_t last_seq, bool writable,
                                const EntityIndexOptions& options, const ReadRecords& read_records,
                                std::unique_ptr<EntityIndex>& out) {
  std::unique_ptr<EntityIndex> index(new EntityIndex(db, family, dir, options));
  std::string value;
  rocksdb::Status got = db.Get(rocksdb::ReadOptions(), &family, kUpToKey, &value);
  std::uint64_t covered = 0;
  bool mark_built = false;
  if (got.ok()) {
    if (!decode_key(value, covered)) {
      return JournalStatus::error(
          fmt::format("journal at {}: the index's upto value is {} bytes", dir, value.size()));
    }
  } else if (got.IsNotFound()) {
    got = db.Get(rocksdb::ReadOptions(), &family, kBuiltKey, &value);
    if (got.ok()) {
      covered = last_seq;
      mark_built = writable;  // records appended from now on are not in the family
    } else if (!got.IsNotFound()) {
      return JournalStatus::error(fmt::format("journal at {}: index: {}", dir, got.ToString()));
    }
  } else {
    return JournalStatus::error(fmt::format("journal at {}: index: {}", dir, got.ToString()));
  }
  if (writable) {
    // A file left by an ingest that a crash cut short.
    (void)db.GetEnv()->DeleteFile(index->ingest_path());
  }
  if (covered > last_seq) {
    // The family covers seqs the journal no longer holds: a disk that lost synced records
    // (one that lies about its flushes) but kept a later index file. Its keys past
    // last_seq would name the records appended at those seqs from now on. A writer drops
    // every key and indexes the journal again from its first record (until the first
    // ingest, a crash leaves no "upto" and this repeats); a reader uses the family up to
    // last_seq only, whose keys are those of the records still there.
    if (writable) {
      rocksdb::WriteOptions sync;
      sync.sync = true;
      // Every key of the family sorts below "\xff": "upto" and "built" start with 00,
      // entity keys with their kind ('b', 's').
      const rocksdb::Status dropped =
          db.DeleteRange(sync, &family, rocksdb::Slice(), rocksdb::Slice("\xff", 1));
      if (!dropped.ok()) {
        return JournalStatus::error(
            fmt::format("journal at {}: the index covers seq {} past the last record {} and cannot "
                        "be dropped: {}",
                        dir, covered, last_seq, dropped.ToString()));
      }
      covered = 0;
    } else {
      covered = last_seq;
    }
  }
  if (mark_built) {
    if (JournalStatus st = index->ingest({}, covered, false); !st) return st;
  }
  index->ingested_up_to_ = covered;
  index->added_up_to_ = covered;
  index->open_ = std::make_shared<Block>(options.block_keys + kMaxEntitiesPerEvent + 1);
  index->blocks_.push_back(index->open_);
  if (writable) {
    index->thread_ = std::thread([raw = index.get()] { raw->run(); });
  }
  if (writable) {
    index->index_again(covered, read_records);
  } else {
    // Read-only opens (the audit tools) mostly replay: the index is built on the first
    // history read.
    index->lazy_read_records_ = read_records;
  }
  out = std::move(index);
  return {};
}

void EntityIndex::index_again(std::uint64_t covered, const ReadRecords& read_records) {
  // booking id - 1 → its first slot, for format-1 records (whose booking events name no slot).
  std::vector<std::uint32_t> slot_of;
  JournalStatus read = read_records(covered + 1, [&](std::uint64_t seq, const Event& event) {
    if (const auto* held = std::get_if<SlotHeld>(&event)) {
      if (held->booking_id == slot_of.size() + 1)
        slot_of.push_back(static_cast<std::uint32_t>(held->slot_id));
    }
    add_record(event, seq, covered == 0 ? &slot_of : nullptr);
  });
  if (!read) {
    // The journal opens (its readers report the damage by seq), but the index cannot cover
    // what it cannot read: history reads fail, and so do appends.
    std::lock_guard lock(mutex_);
    failure_ = "the entity index could not be rebuilt: " + read.message;
    failed_.store(true, std::memory_order_release);
  }
}

void EntityIndex::add_record(const Event& event, std::uint64_t seq,
                             const std::vector<std::uint32_t>* slot_of) {
  added_up_to_ = seq;
  IndexRefs refs;
  const std::size_t n = index_refs_of(event, slot_of, refs);
  if (n == 0) return;
  Key* keys = open_->keys.get();
  for (std::size_t i = 0; i < n; ++i) keys[open_count_++] = Key{refs[i].id, seq, refs[i].kind};
  open_->count.store(open_count_, std::memory_order_release);
  if (open_count_ >= options_.block_keys) seal_open_block();
}

void EntityIndex::seal_open_block() {
  auto fresh = std::make_shared<Block>(options_.block_keys + kMaxEntitiesPerEvent + 1);
  std::unique_lock lock(mutex_);
  open_->sealed = true;
  open_->last_seq = added_up_to_;  // sealed right after a record with keys
  if (!thread_.joinable()) {
    // Read-only: sorted here, never ingested.
    blocks_.back() = sorted_copy(*open_);
  }
  blocks_.push_back(fresh);
  open_ = std::move(fresh);
  open_count_ = 0;
  if (!thread_.joinable()) return;
  work_.notify_one();
  // Bounds the memory: the writer waits while the index thread is behind.
  room_.wait(lock, [&] {
    return blocks_.size() - 1 <= options_.max_sealed_blocks || !failure_.empty() || stopping_;
  });
}

void EntityIndex::run() {
  pthread_setname_np(pthread_self(), "slotd-index");
  // Sorting a block and merging blocks into a table file take milliseconds of CPU at a
  // time, which at normal priority would take turns with the io thread on its core. Under
  // SCHED_IDLE they run on time nobody else wants, and at normal priority only while too
  // much is waiting (a machine kept busy, by slotd or by others).
  std::unique_lock lock(mutex_);
  for (;;) {
    if (options_.idle_thread) {
      const std::size_t sealed = blocks_.size() - 1;
      if (sealed >= std::max<std::size_t>(options_.max_sealed_blocks / 2, 1)) set_idle(false);
      if (sealed <= options_.max_sealed_blocks / 4) set_idle(true);
    }
    // The oldest sealed block not sorted yet, and how many sorted ones lead the list.
    std::size_t unsorted = blocks_.size();
    std::size_t leading_sorted = 0;
    for (std::size_t i = 0; i < blocks_.size() && blocks_[i]->sealed; ++i) {
      if (!blocks_[i]->sorted) {
        unsorted = i;
        break;
      }
      ++leading_sorted;
    }
    if (stopping_ || !failure_.empty()) return;
    if (unsorted < blocks_.size()) {
      const std::shared_ptr<const Block> block = blocks_[unsorted];
      lock.unlock();
      std::shared_ptr<const Block> sorted = sorted_copy(*block);
      lock.lock();
      blocks_[unsorted] = std::move(sorted);  // only this thread removes or replaces blocks
      continue;
    }
    if (leading_sorted >= options_.ingest_blocks) {
      const std::vector<std::shared_ptr<const Block>> batch(
          blocks_.begin(), blocks_.begin() + options_.ingest_blocks);
      const std::uint64_t up_to = batch.back()->last_seq;
      lock.unlock();
      JournalStatus st = ingest(batch, up_to, true);
      lock.lock();
      if (!st) {
        failure_ = st.message;
        failed_.store(true, std::memory_order_release);
        room_.notify_all();
        return;
      }
      blocks_.erase(blocks_.begin(), blocks_.begin() + options_.ingest_blocks);
      ingested_up_to_ = up_to;
      room_.notify_all();
      continue;
    }
    work_.wait(lock);
  }
}

JournalStatus EntityIndex::ingest(const std::vector<std::shared_ptr<const Block>>& blocks,
                                  std::uint64_t up_to, bool from_index_thread) {
  const std::string path = ingest_path();
  rocksdb::Env* env = db_.GetEnv();
  auto fail = [&](const char* what, const rocksdb::Status& s) {
    (void)env->DeleteFile(path);
    return JournalStatus::error(
        fmt::format("journal index: cannot {} {}: {}", what, path, s.ToString()));
  };
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), db_.GetOptions(&family_), &family_);
  rocksdb::Status s = writer.Open(path);
  if (!s.ok()) return fail("create", s);
  s = writer.Put(kUpToKey, encode_key(up_to));
  // Merges the sorted blocks (each covers its own seqs, so equal keys are only repeats).
  std::vector<std::pair<const Key*, const Key*>> heads;
  for (const auto& block : blocks) {
    heads.emplace_back(block->keys.get(),
                       block->keys.get() + block->count.load(std::memory_order_acquire));
  }
  const Key* previous = nullptr;
  char key[kEntityKeyBytes];
  while (s.ok()) {
    std::size_t best = heads.size();
    for (std::size_t i = 0; i < heads.size(); ++i) {
      if (heads[i].first != heads[i].second &&
          (best == heads.size() || key_less(*heads[i].first, *heads[best].first))) {
        best = i;
      }
    }
    if (best == heads.size()) break;
    const Key* next = heads[best].first++;
    if (previous && key_equal(*previous, *next)) continue;
    previous = next;
    put_entity_key(key, next->kind, next->id, next->seq);
    s = writer.Put(rocksdb::Slice(key, sizeof key), rocksdb::Slice());
  }
  if (!s.ok()) return fail("write", s);
  s = writer.Finish();
  if (!s.ok()) return fail("finish", s);
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;  // a hard link; RocksDB copies where links are not supported
  // RocksDB holds every write of the database back while it records the file in its
  // MANIFEST (a write and an fsync). An idle-class thread would hold them back for as long
  // as the io threads keep the CPU (28 ms seen), so the call runs at normal priority.
  const bool was_idle = idle_;
  if (from_index_thread) set_idle(false);
  s = db_.IngestExternalFile(&family_, {path}, ingest);
  if (from_index_thread) set_idle(was_idle);
  if (!s.ok()) return fail("ingest", s);
  (void)env->DeleteFile(path);  // left behind when RocksDB copied instead of linking
  return {};
}

std::string EntityIndex::ingest_path() const {
  return dir_ + "/" + kIngestFile;
}

void EntityIndex::set_idle(bool idle) {
  if (idle == idle_) return;
  const sched_param param{};
  if (::sched_setscheduler(0, idle ? SCHED_IDLE : SCHED_OTHER, &param) == 0) idle_ = idle;
}

std::string EntityIndex::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

std::uint64_t EntityIndex::ingested_up_to() const {
  std::lock_guard lock(mutex_);
  return ingested_up_to_;
}

JournalStatus EntityIndex::seqs(EntityKind kind, Id id, std::uint64_t from_seq,
                                std::uint64_t up_to_seq,
                                const std::function<bool(std::uint64_t)>& visit) {
  if (lazy_read_records_) {
    // Read-only: no writer adds keys, so this is the only caller of add_record.
    std::call_once(lazy_once_, [this] { index_again(ingested_up_to(), lazy_read_records_); });
  }
  std::vector<std::shared_ptr<const Block>> blocks;
  std::uint64_t covered = 0;
  {
    std::lock_guard lock(mutex_);
    if (!failure_.empty()) return JournalStatus::error("journal history: " + failure_);
    blocks = blocks_;
    covered = ingested_up_to_;
  }
  from_seq = std::max<std::uint64_t>(from_seq, 1);
  std::uint64_t last_visited = 0;
  auto emit = [&](std::uint64_t seq) {
    if (seq == last_visited) return true;  // an entity named twice by one record
    last_visited = seq;
    return visit(seq);
  };
  // The family's part: seqs up to `covered` (what it holds beyond that, from a version that
  // wrote keys with the records, is in the blocks too).
  if (from_seq <= covered) {
    const std::uint64_t last = std::min(up_to_seq, covered);
    char first[kEntityKeyBytes];
    char end[kEntityKeyBytes];
    put_entity_key(first, kind, id, from_seq);
    put_entity_key(end, kind, id + 1, 0);
    rocksdb::ReadOptions options;
    options.verify_checksums = true;
    const rocksdb::Slice upper(end, sizeof end);
    options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(options, &family_));
    for (it->Seek(rocksdb::Slice(first, sizeof first)); it->Valid(); it->Next()) {
      std::uint64_t seq = 0;
      if (!decode_entity_key_seq(it->key().ToStringView(), seq) || seq > last) break;
      if (!emit(seq)) return {};
    }
    if (!it->status().ok()) {
      return JournalStatus::error(fmt::format("journal history: {}", it->status().ToString()));
    }
  }
  // The blocks' part, oldest first: seqs after `covered`.
  const Key low{id, std::max(from_seq, covered + 1), kind};
  for (const auto& block : blocks) {
    const Key* keys = block->keys.get();
    const std::size_t n = block->count.load(std::memory_order_acquire);
    if (block->sorted) {
      for (const Key* k = std::lower_bound(keys, keys + n, low, key_less);
           k != keys + n && k->kind == kind && k->id == id && k->seq <= up_to_seq; ++k) {
        if (!emit(k->seq)) return {};
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const Key& k = keys[i];
        if (k.seq > up_to_seq) break;  // keys are in seq order
        if (k.kind == kind && k.id == id && k.seq >= low.seq && !emit(k.seq)) return {};
      }
    }
  }
  return {};
}

}  // namespace slotd
