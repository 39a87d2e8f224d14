#include "journal/journal.hpp"

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

#include "journal/background_priority.hpp"
#include "journal/entity_index.hpp"

#include <fmt/core.h>
#include <rocksdb/db.h>
#include <rocksdb/file_system.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

namespace slotd {
namespace {

// Reads longer than this skip the block cache and read ahead: they are replays or bulk
// catch-ups that would otherwise evict the hot tail other readers use.
constexpr std::uint64_t kBulkReadRecords = 4096;
constexpr std::size_t kBulkReadaheadBytes = 4 << 20;

void put_key(char (&key)[8], std::uint64_t seq) {
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(seq >> (56 - 8 * i));
}

rocksdb::Options journal_options(const JournalOptions& tuning) {
  rocksdb::Options options;
  options.create_if_missing = true;
  // Stop on any sign of corruption instead of serving a damaged log.
  options.paranoid_checks = true;
  // Records are small and written in order; a large memtable means fewer flushes.
  options.write_buffer_size = tuning.write_buffer_bytes;
  options.max_write_buffer_number = 3;
  // With sync on every write the WAL is written and fsynced on the caller's thread; the
  // default kPointInTimeRecovery drops only a torn tail that was never acknowledged.
  options.manual_wal_flush = false;
  options.keep_log_file_num = 4;
  return options;
}

EntityIndexOptions index_options(const JournalOptions& tuning) {
  EntityIndexOptions options;
  options.block_keys = tuning.index_block_keys;
  options.ingest_blocks = tuning.index_ingest_blocks;
  options.idle_thread = tuning.idle_background_threads;
  return options;
}

// Creates `dir` and its missing parents through the journal's file system, fsyncing the
// parent after each creation: a new directory entry is durable only once its parent is.
JournalStatus create_directories_durably(rocksdb::FileSystem& fs, const std::string& dir) {
  namespace stdfs = std::filesystem;
  stdfs::path path = stdfs::path(dir).lexically_normal();
  if (!path.empty() && !path.has_filename()) path = path.parent_path();  // "a/b/" → "a/b"
  const rocksdb::IOOptions io;
  std::vector<stdfs::path> missing;
  for (stdfs::path p = path; !p.empty(); p = p.parent_path()) {
    if (fs.FileExists(p.string(), io, nullptr).ok()) break;
    missing.push_back(p);
    if (p == p.parent_path()) break;  // the root
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    rocksdb::IOStatus s = fs.CreateDirIfMissing(it->string(), io, nullptr);
    std::unique_ptr<rocksdb::FSDirectory> parent;
    const stdfs::path parent_path = it->has_parent_path() ? it->parent_path() : stdfs::path(".");
    if (s.ok()) s = fs.NewDirectory(parent_path.string(), io, &parent, nullptr);
    if (s.ok()) s = parent->Fsync(io, nullptr);
    if (!s.ok()) {
      return JournalStatus::error(
          fmt::format("cannot create journal directory {}: {}", it->string(), s.ToString()));
    }
  }
  return {};
}

constexpr const char* kCursorFamily = "cursors";
constexpr std::uint8_t kCursorFormatVersion = 1;

// version 1 byte, next_seq 8 bytes little-endian, stopped 1 byte (0 or 1).
std::string encode_cursor(const JournalCursor& cursor) {
  std::string value(10, '\0');
  value[0] = static_cast<char>(kCursorFormatVersion);
  for (int i = 0; i < 8; ++i) value[1 + i] = static_cast<char>(cursor.next_seq >> (8 * i));
  value[9] = cursor.stopped ? 1 : 0;
  return value;
}

bool decode_cursor(std::string_view value, JournalCursor& out) {
  if (value.size() != 10 || static_cast<std::uint8_t>(value[0]) != kCursorFormatVersion) return false;
  if (value[9] != 0 && value[9] != 1) return false;
  std::uint64_t next = 0;
  for (int i = 7; i >= 0; --i) next = (next << 8) | static_cast<std::uint8_t>(value[1 + i]);
  out.next_seq = next;
  out.stopped = value[9] == 1;
  return true;
}

// The per-booking / per-slot index (journal/entity_index.hpp) keeps its older keys here.
constexpr char kEntitiesFamily[] = "entities";

// Drops RocksDB's info log (a read-only tool must not write one beside a live journal).
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

rocksdb::ReadOptions journal_read_options(bool bulk) {
  rocksdb::ReadOptions options;
  options.verify_checksums = true;
  if (bulk) {
    options.fill_cache = false;
    options.readahead_size = kBulkReadaheadBytes;
  }
  return options;
}

}  // namespace

struct Journal::Impl {
  std::unique_ptr<rocksdb::DB> db;
  // Every column family the database has (RocksDB opens all or none; a secondary opens what
  // it names); [0] is the default.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* entities = nullptr;
  // Created on the first put_cursor; guarded so that creation happens once.
  mutable std::mutex cursor_mutex;
  rocksdb::ColumnFamilyHandle* cursors = nullptr;
  rocksdb::ColumnFamilyOptions family_options;  // those the journal was opened with
  std::string secondary_dir;  // read-only opens: the secondary's own dir, removed on close
  rocksdb::WriteOptions write_options;
  // journal/background_priority.hpp; nullptr with idle_background_threads off.
  std::shared_ptr<rocksdb::EventListener> stall_watcher;
  // Opened after the rest (it reads the records it must index); destroyed first.
  std::unique_ptr<EntityIndex> index;
  // Written only by append (the one writer); read by any thread.
  std::atomic<std::uint64_t> last_seq{0};
  // Reused across appends so a steady-state append allocates nothing: clear() keeps the
  // capacity of both.
  rocksdb::WriteBatch batch;
  std::string value_buffer;
  // Set after a failed write: the WAL may or may not hold the batch, so nothing more may
  // be appended until the owner reopens and replays.
  std::string write_failure;
};

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Journal::~Journal() {
  if (impl_) impl_->index.reset();  // its thread may be ingesting into the database
  if (impl_ && impl_->db) {
    for (rocksdb::ColumnFamilyHandle* h : impl_->handles) (void)impl_->db->DestroyColumnFamilyHandle(h);
    // Close reports errors only for unreleased snapshots, which we never take.
    (void)impl_->db->Close();
    impl_->db.reset();
  }
  if (impl_ && !impl_->secondary_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(impl_->secondary_dir, ignored);
  }
}

namespace {

// The seq of the last record, from the last key of the default family.
JournalStatus find_last_seq(rocksdb::DB& db, const std::string& dir, std::uint64_t& last_seq) {
  last_seq = 0;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(journal_read_options(false)));
  it->SeekToLast();
  if (it->Valid()) {
    const rocksdb::Slice key = it->key();
    if (!decode_key(std::string_view(key.data(), key.size()), last_seq)) {
      return JournalStatus::error(
          fmt::format("journal at {}: last key is {} bytes, not an 8-byte seq", dir, key.size()));
    }
  }
  if (!it->status().ok()) {
    return JournalStatus::error(
        fmt::format("journal at {}: cannot find the last seq: {}", dir, it->status().ToString()));
  }
  return {};
}

}  // namespace

JournalStatus Journal::open(const std::string& dir, std::unique_ptr<Journal>& out,
                            const JournalOptions& tuning) {
  rocksdb::Options options = journal_options(tuning);
  if (tuning.env) options.env = tuning.env;
  std::shared_ptr<rocksdb::EventListener> stall_watcher;
  if (tuning.idle_background_threads) {
    stall_watcher = make_stall_watcher();
    options.listeners.push_back(stall_watcher);
  }
  if (JournalStatus created = create_directories_durably(*options.env->GetFileSystem(), dir);
      !created) {
    return created;
  }

  options.create_missing_column_families = true;
  // Every family the database has (RocksDB opens all or none), plus the entity index, which
  // create_missing_column_families adds to a journal from before it.
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, dir, &names).ok() || names.empty()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  if (std::find(names.begin(), names.end(), kEntitiesFamily) == names.end()) {
    names.emplace_back(kEntitiesFamily);
  }
  if (tuning.defer_compactions) options.disable_auto_compactions = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
  }
  auto impl = std::make_unique<Impl>();
  impl->family_options = rocksdb::ColumnFamilyOptions(options);
  impl->family_options.disable_auto_compactions = false;  // for families made later
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status opened =
      rocksdb::DB::Open(rocksdb::DBOptions(options), dir, families, &impl->handles, &raw_db);
  if (!opened.ok()) {
    return JournalStatus::error(
        fmt::format("cannot open journal at {}: {}", dir, opened.ToString()));
  }
  impl->db.reset(raw_db);
  for (rocksdb::ColumnFamilyHandle* family : impl->handles) {
    if (family->GetName() == kCursorFamily) impl->cursors = family;
    if (family->GetName() == kEntitiesFamily) impl->entities = family;
  }
  impl->write_options.sync = true;
  impl->stall_watcher = std::move(stall_watcher);

  std::uint64_t last_seq = 0;
  JournalStatus status = find_last_seq(*impl->db, dir, last_seq);
  impl->last_seq.store(last_seq, std::memory_order_release);
  // Closed as a Journal on every path: column family handles go before the database
  // (RocksDB asserts).
  std::unique_ptr<Journal> journal(new Journal(std::move(impl)));
  if (status) status = journal->open_index(dir, true, index_options(tuning));
  if (status) out = std::move(journal);
  return status;
}

JournalStatus Journal::open_index(const std::string& dir, bool writable,
                                  const EntityIndexOptions& options) {
  Impl& impl = *impl_;
  auto read_records = [this](std::uint64_t from_seq,
                             const std::function<void(std::uint64_t, const Event&)>& add) {
    return read(from_seq, 0, [&](JournalRecord& record) {
      add(record.seq, record.event);
      return true;
    });
  };
  return EntityIndex::open(*impl.db, *impl.entities, dir, last_seq(), writable, options,
                           read_records, impl.index);
}

JournalStatus Journal::open_read_only(const std::string& dir, std::unique_ptr<Journal>& out) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return JournalStatus::error(fmt::format("no journal at {}", dir));
  }
  std::string secondary = (std::filesystem::temp_directory_path() / "slotd-reader-XXXXXX").string();
  if (!::mkdtemp(secondary.data())) {
    return JournalStatus::error(fmt::format("cannot create a temp dir for reading {}", dir));
  }
  auto impl = std::make_unique<Impl>();
  impl->secondary_dir = secondary;
  rocksdb::Options options = journal_options(JournalOptions{});
  options.create_if_missing = false;
  options.max_open_files = -1;  // required of a secondary; also keeps files the writer deletes
  options.info_log = std::make_shared<NullLogger>();
  std::vector<std::string> names;
  rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(options), dir, &names);
  if (!listed.ok()) {
    std::filesystem::remove_all(secondary, ec);
    return JournalStatus::error(fmt::format("cannot open journal at {}: {}", dir, listed.ToString()));
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(options)}};
  const bool indexed = std::find(names.begin(), names.end(), kEntitiesFamily) != names.end();
  if (indexed) families.push_back({kEntitiesFamily, rocksdb::ColumnFamilyOptions(options)});
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status opened = rocksdb::DB::OpenAsSecondary(rocksdb::DBOptions(options), dir, secondary,
                                                        families, &impl->handles, &raw_db);
  if (!opened.ok()) {
    std::filesystem::remove_all(secondary, ec);
    return JournalStatus::error(fmt::format("cannot open journal at {}: {}", dir, opened.ToString()));
  }
  impl->db.reset(raw_db);
  if (indexed) impl->entities = impl->handles[1];
  (void)impl->db->TryCatchUpWithPrimary();
  std::uint64_t last_seq = 0;
  JournalStatus status = find_last_seq(*impl->db, dir, last_seq);
  impl->last_seq.store(last_seq, std::memory_order_release);
  impl->write_failure = "the journal is open read-only";
  // Closed as a Journal on every path: handles first, then the database and the temp dir.
  std::unique_ptr<Journal> journal(new Journal(std::move(impl)));
  if (status && indexed) status = journal->open_index(dir, false, EntityIndexOptions{});
  if (status) out = std::move(journal);
  return status;
}

std::uint64_t Journal::last_seq() const {
  return impl_->last_seq.load(std::memory_order_acquire);
}

std::uint64_t Journal::level0_files() const {
  std::string files;  // a string property ("rocksdb.num-files-at-level<N>" has no int form)
  if (!impl_->db->GetProperty(impl_->db->DefaultColumnFamily(), "rocksdb.num-files-at-level0", &files)) return 0;
  return std::strtoull(files.c_str(), nullptr, 10);
}

JournalStatus Journal::start_compactions() {
  for (rocksdb::ColumnFamilyHandle* family : impl_->handles) {
    const rocksdb::Status s = impl_->db->SetOptions(family, {{"disable_auto_compactions", "false"}});
    if (!s.ok()) return JournalStatus::error("journal: cannot turn compactions on: " + s.ToString());
  }
  return {};
}

JournalStatus Journal::put_cursor(std::uint64_t consumer_id, const JournalCursor& cursor) {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.cursor_mutex);
  if (!impl.cursors) {
    rocksdb::ColumnFamilyHandle* created = nullptr;
    const rocksdb::Status status =
        impl.db->CreateColumnFamily(impl.family_options, kCursorFamily,
                                    &created);
    if (!status.ok()) {
      return JournalStatus::error(
          fmt::format("journal: cannot create the cursor column family: {}", status.ToString()));
    }
    impl.handles.push_back(created);
    impl.cursors = created;
  }
  const std::string key = encode_key(consumer_id);
  const rocksdb::Status put =
      impl.db->Put(impl.write_options, impl.cursors, key, encode_cursor(cursor));
  if (!put.ok()) {
    return JournalStatus::error(
        fmt::format("journal: cannot store the cursor of consumer {}: {}", consumer_id, put.ToString()));
  }
  return {};
}

JournalStatus Journal::get_cursor(std::uint64_t consumer_id,
                                  std::optional<JournalCursor>& out) const {
  out.reset();
  std::lock_guard lock(impl_->cursor_mutex);
  if (!impl_->cursors) return {};
  std::string value;
  const rocksdb::Status got =
      impl_->db->Get(journal_read_options(false), impl_->cursors, encode_key(consumer_id), &value);
  if (got.IsNotFound()) return {};
  if (!got.ok()) {
    return JournalStatus::error(
        fmt::format("journal: cannot read the cursor of consumer {}: {}", consumer_id, got.ToString()));
  }
  JournalCursor cursor;
  if (!decode_cursor(value, cursor)) {
    return JournalStatus::error(fmt::format(
        "journal: the cursor of consumer {} is not a version-1 cursor ({} bytes)", consumer_id,
        value.size()));
  }
  out = cursor;
  return {};
}

JournalStatus Journal::delete_cursor(std::uint64_t consumer_id) {
  std::lock_guard lock(impl_->cursor_mutex);
  if (!impl_->cursors) return {};
  const rocksdb::Status deleted =
      impl_->db->Delete(impl_->write_options, impl_->cursors, encode_key(consumer_id));
  if (!deleted.ok()) {
    return JournalStatus::error(fmt::format("journal: cannot delete the cursor of consumer {}: {}",
                                            consumer_id, deleted.ToString()));
  }
  return {};
}

JournalStatus Journal::append(std::span<const JournalRecord> records) {
  const std::span<const JournalRecord> parts[1] = {records};
  return append_parts(parts);
}

JournalStatus Journal::append_parts(std::span<const std::span<const JournalRecord>> parts) {
  Impl& impl = *impl_;
  if (!impl.write_failure.empty()) {
    return JournalStatus::error("journal append refused after an earlier write failure: " +
                                impl.write_failure);
  }
  std::size_t count = 0;
  for (const auto& part : parts) count += part.size();
  if (count == 0) return {};

  const std::uint64_t last = impl.last_seq.load(std::memory_order_relaxed);
  std::size_t i = 0;
  for (const auto& part : parts) {
    for (const JournalRecord& record : part) {
      const std::uint64_t expected = last + 1 + i;
      if (record.seq != expected) {
        return JournalStatus::error(fmt::format(
            "journal append: record {} of the batch has seq {}, expected {} (last_seq is {})", i,
            record.seq, expected, last));
      }
      if (static_cast<std::uint8_t>(record.actor) > static_cast<std::uint8_t>(Actor::patient)) {
        return JournalStatus::error(fmt::format("journal append: seq {} has actor {} out of range",
                                                record.seq, static_cast<unsigned>(record.actor)));
      }
      if (record.event.valueless_by_exception()) {
        return JournalStatus::error(fmt::format("journal append: seq {} has no event", record.seq));
      }
      ++i;
    }
  }

  if (impl.index && impl.index->failed()) {
    return JournalStatus::error("journal append refused: " + impl.index->failure());
  }
  impl.batch.Clear();
  char key[8];
  for (const auto& part : parts) {
    for (const JournalRecord& record : part) {
      impl.value_buffer.clear();
      encode_record(record, impl.value_buffer);
      put_key(key, record.seq);
      const rocksdb::Status put =
          impl.batch.Put(rocksdb::Slice(key, sizeof key), rocksdb::Slice(impl.value_buffer));
      if (!put.ok()) {
        return JournalStatus::error(
            fmt::format("journal append: cannot batch seq {}: {}", record.seq, put.ToString()));
      }
    }
  }

  const rocksdb::Status written = impl.db->Write(impl.write_options, &impl.batch);
  if (!written.ok()) {
    impl.write_failure = fmt::format("write of seqs {}..{} failed: {}", last + 1,
                                     last + count, written.ToString());
    return JournalStatus::error("journal append: " + impl.write_failure);
  }
  // The keys go in before the seqs are published, so a history read up to last_seq() finds
  // every one.
  if (impl.index) {
    for (const auto& part : parts) {
      for (const JournalRecord& record : part) impl.index->add_record(record.event, record.seq);
    }
  }
  impl.last_seq.store(last + count, std::memory_order_release);
  if (impl.stall_watcher && background_priority_raised()) recheck_stall(impl.stall_watcher.get(), *impl.db);
  return {};
}

JournalStatus Journal::read(std::uint64_t from_seq, std::uint64_t limit,
                            const std::function<bool(JournalRecord&)>& visit) const {
  // A read sees the journal as of its start: records appended meanwhile are left for the
  // next read, so a reader never runs ahead of last_seq().
  const std::uint64_t last = last_seq();
  const std::uint64_t first = std::max<std::uint64_t>(from_seq, 1);
  if (first > last) return {};

  const std::uint64_t wanted = limit == 0 ? last - first + 1 : std::min(limit, last - first + 1);
  rocksdb::ReadOptions options = journal_read_options(wanted > kBulkReadRecords);
  // Stops the iterator at last_seq without a key comparison per record on our side.
  char upper_key[8];
  put_key(upper_key, last + 1);
  const rocksdb::Slice upper_bound(upper_key, sizeof upper_key);
  if (last != std::numeric_limits<std::uint64_t>::max()) options.iterate_upper_bound = &upper_bound;

  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(options));
  char first_key[8];
  put_key(first_key, first);
  it->Seek(rocksdb::Slice(first_key, sizeof first_key));

  JournalRecord record;
  std::uint64_t expected = first;
  std::uint64_t visited = 0;
  for (; it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    std::uint64_t seq = 0;
    if (!decode_key(std::string_view(key.data(), key.size()), seq)) {
      return JournalStatus::error(fmt::format(
          "journal read: bad key of {} bytes where seq {} was expected", key.size(), expected));
    }
    if (seq != expected) {
      return JournalStatus::error(fmt::format(
          "journal read: gap, seq {} is missing (the next record is seq {})", expected, seq));
    }
    const rocksdb::Slice value = it->value();
    JournalStatus decoded =
        decode_record(seq, std::string_view(value.data(), value.size()), record);
    if (!decoded) return decoded;
    ++visited;
    if (!visit(record) || visited == wanted) return {};
    ++expected;
  }
  if (!it->status().ok()) {
    return JournalStatus::error(
        fmt::format("journal read: failed at seq {}: {}", expected, it->status().ToString()));
  }
  // The iterator ended before last_seq: the tail is missing.
  return JournalStatus::error(fmt::format(
      "journal read: gap, seq {} is missing (the journal ends at seq {})", expected, expected - 1));
}

JournalStatus Journal::history(EntityKind kind, Id id, std::uint64_t from_seq,
                               std::uint64_t up_to_seq, std::uint64_t limit,
                               const std::function<bool(const JournalRecord&)>& visit) const {
  if (!impl_->index) return JournalStatus::error("this journal has no entity index");
  up_to_seq = std::min(up_to_seq, last_seq());
  std::uint64_t visited = 0;
  std::string value;
  JournalRecord record;
  JournalStatus failed;
  JournalStatus st = impl_->index->seqs(kind, id, from_seq, up_to_seq, [&](std::uint64_t seq) {
    char seq_key[8];
    put_key(seq_key, seq);
    rocksdb::Status got =
        impl_->db->Get(journal_read_options(false), rocksdb::Slice(seq_key, sizeof seq_key), &value);
    if (!got.ok()) {
      failed = JournalStatus::error(
          fmt::format("journal history: seq {} is indexed but unreadable: {}", seq, got.ToString()));
      return false;
    }
    failed = decode_record(seq, value, record);
    if (!failed) return false;
    return visit(record) && ++visited != limit;
  });
  if (!st) return st;
  return failed;
}

std::uint64_t Journal::index_ingested_up_to() const {
  return impl_->index ? impl_->index->ingested_up_to() : 0;
}

}  // namespace slotd
