#include "journal/journal.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

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
  // Every column family the database has (RocksDB opens all or none); [0] is the default.
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  // Created on the first put_cursor; guarded so that creation happens once.
  mutable std::mutex cursor_mutex;
  rocksdb::ColumnFamilyHandle* cursors = nullptr;
  rocksdb::ColumnFamilyOptions family_options;  // those the journal was opened with
  rocksdb::WriteOptions write_options;
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
  if (impl_ && impl_->db) {
    for (rocksdb::ColumnFamilyHandle* family : impl_->families) {
      (void)impl_->db->DestroyColumnFamilyHandle(family);
    }
    // Close reports errors only for unreleased snapshots, which we never take.
    (void)impl_->db->Close();
  }
}

JournalStatus Journal::open(const std::string& dir, std::unique_ptr<Journal>& out,
                            const JournalOptions& tuning) {
  rocksdb::Options options = journal_options(tuning);
  if (tuning.env) options.env = tuning.env;
  if (JournalStatus created = create_directories_durably(*options.env->GetFileSystem(), dir);
      !created) {
    return created;
  }

  rocksdb::DB* raw_db = nullptr;
  // A database that does not exist yet has only the default column family.
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, dir, &names).ok() || names.empty()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
  }
  auto impl = std::make_unique<Impl>();
  impl->family_options = rocksdb::ColumnFamilyOptions(options);
  const rocksdb::Status opened =
      rocksdb::DB::Open(options, dir, descriptors, &impl->families, &raw_db);
  if (!opened.ok()) {
    return JournalStatus::error(
        fmt::format("cannot open journal at {}: {}", dir, opened.ToString()));
  }
  impl->db.reset(raw_db);
  for (rocksdb::ColumnFamilyHandle* family : impl->families) {
    if (family->GetName() == kCursorFamily) impl->cursors = family;
  }
  impl->write_options.sync = true;

  std::uint64_t last_seq = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(journal_read_options(false)));
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
  }
  impl->last_seq.store(last_seq, std::memory_order_release);
  out.reset(new Journal(std::move(impl)));
  return {};
}

std::uint64_t Journal::last_seq() const {
  return impl_->last_seq.load(std::memory_order_acquire);
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
    impl.families.push_back(created);
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
  Impl& impl = *impl_;
  if (!impl.write_failure.empty()) {
    return JournalStatus::error("journal append refused after an earlier write failure: " +
                                impl.write_failure);
  }
  if (records.empty()) return {};

  const std::uint64_t last = impl.last_seq.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const JournalRecord& record = records[i];
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
  }

  impl.batch.Clear();
  char key[8];
  for (const JournalRecord& record : records) {
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

  const rocksdb::Status written = impl.db->Write(impl.write_options, &impl.batch);
  if (!written.ok()) {
    impl.write_failure = fmt::format("write of seqs {}..{} failed: {}", last + 1,
                                     last + records.size(), written.ToString());
    return JournalStatus::error("journal append: " + impl.write_failure);
  }
  impl.last_seq.store(last + records.size(), std::memory_order_release);
  return {};
}

JournalStatus Journal::read(std::uint64_t from_seq, std::uint64_t limit,
                            const std::function<bool(const JournalRecord&)>& visit) const {
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

}  // namespace slotd
