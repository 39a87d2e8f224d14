#include "snapshots/snapshot_store.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <rocksdb/file_system.h>

namespace slotd {
namespace {

// MADV_POPULATE_READ (Linux 5.14), spelled out for older headers.
#ifdef MADV_POPULATE_READ
constexpr int kPopulateRead = MADV_POPULATE_READ;
#else
constexpr int kPopulateRead = 22;
#endif

constexpr std::string_view kSuffix = ".snapshot";
constexpr std::string_view kTempSuffix = ".snapshot.tmp";
constexpr std::size_t kSeqDigits = 20;
constexpr std::size_t kReadChunk = 4 << 20;

// "00000000000001000000.snapshot" → 1000000; anything else → false.
bool seq_of_name(std::string_view name, std::string_view suffix, std::uint64_t& seq) {
  if (name.size() != kSeqDigits + suffix.size() || !name.ends_with(suffix)) return false;
  for (std::size_t i = 0; i < kSeqDigits; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  auto [p, ec] = std::from_chars(name.data(), name.data() + kSeqDigits, seq);
  return ec == std::errc{} && p == name.data() + kSeqDigits;
}

std::string parent_of(const std::string& dir) {
  std::filesystem::path p(dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "a/b/" → "a/b"
  std::filesystem::path parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

SnapshotStore::SnapshotStore(std::string dir, std::shared_ptr<rocksdb::FileSystem> fs)
    : dir_(std::move(dir)), fs_(fs ? std::move(fs) : rocksdb::FileSystem::Default()) {}

SnapshotStore::~SnapshotStore() = default;

std::string SnapshotStore::path_of(std::uint64_t seq) const {
  return fmt::format("{}/{:020}{}", dir_, seq, kSuffix);
}

std::string SnapshotStore::temp_path_of(std::uint64_t seq) const {
  return fmt::format("{}/{:020}{}", dir_, seq, kTempSuffix);
}

SnapshotStore::Writer::~Writer() {
  if (file_) (void)file_->Close(rocksdb::IOOptions(), nullptr);
}

bool SnapshotStore::Writer::write(const char* data, std::size_t size) {
  if (!error_.empty()) return false;
  rocksdb::IOStatus s =
      file_->Append(rocksdb::Slice(data, size), rocksdb::IOOptions(), nullptr);
  if (!s.ok()) {
    error_ = fmt::format("cannot write {}: {}", path_, s.ToString());
    return false;
  }
  bytes_ += size;
  return true;
}

SnapshotStatus SnapshotStore::Writer::finish() {
  if (!error_.empty()) return SnapshotStatus::error(error_);
  rocksdb::IOStatus s = file_->Fsync(rocksdb::IOOptions(), nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot fsync {}: {}", path_, s.ToString()));
  s = file_->Close(rocksdb::IOOptions(), nullptr);
  file_.reset();
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot close {}: {}", path_, s.ToString()));
  return {};
}

SnapshotStatus SnapshotStore::sync_dir(const std::string& dir) const {
  std::unique_ptr<rocksdb::FSDirectory> handle;
  rocksdb::IOStatus s = fs_->NewDirectory(dir, rocksdb::IOOptions(), &handle, nullptr);
  if (s.ok()) s = handle->Fsync(rocksdb::IOOptions(), nullptr);
  if (s.ok()) s = handle->Close(rocksdb::IOOptions(), nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot fsync directory {}: {}", dir, s.ToString()));
  return {};
}

SnapshotStatus SnapshotStore::begin(std::uint64_t seq, std::unique_ptr<Writer>& out) {
  if (!dir_made_) {
    bool existed = false;
    (void)fs_->IsDirectory(dir_, rocksdb::IOOptions(), &existed, nullptr);
    rocksdb::IOStatus s = fs_->CreateDirIfMissing(dir_, rocksdb::IOOptions(), nullptr);
    if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot create {}: {}", dir_, s.ToString()));
    // Snapshots hold booking tokens and patient names: only the owner may look inside.
    std::error_code ignored;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ignored);
    // A new directory's own name must be durable before files in it can be.
    if (!existed) {
      if (SnapshotStatus synced = sync_dir(parent_of(dir_)); !synced) return synced;
    }
    dir_made_ = true;
  }
  auto writer = std::unique_ptr<Writer>(new Writer());
  writer->path_ = temp_path_of(seq);
  rocksdb::FileOptions options;
  rocksdb::IOStatus s = fs_->NewWritableFile(writer->path_, options, &writer->file_, nullptr);
  if (!s.ok()) {
    return SnapshotStatus::error(fmt::format("cannot create {}: {}", writer->path_, s.ToString()));
  }
  out = std::move(writer);
  return {};
}

SnapshotStatus SnapshotStore::publish(std::uint64_t seq) {
  const std::string from = temp_path_of(seq), to = path_of(seq);
  rocksdb::IOStatus s = fs_->RenameFile(from, to, rocksdb::IOOptions(), nullptr);
  if (!s.ok()) {
    return SnapshotStatus::error(fmt::format("cannot rename {} to {}: {}", from, to, s.ToString()));
  }
  return sync_dir(dir_);
}

void SnapshotStore::discard(std::uint64_t seq) {
  (void)fs_->DeleteFile(temp_path_of(seq), rocksdb::IOOptions(), nullptr);
}

SnapshotStatus SnapshotStore::retain(std::size_t keep, std::vector<std::string>* removed) {
  std::vector<std::uint64_t> seqs;
  if (SnapshotStatus s = list(seqs); !s) return s;
  keep = std::max<std::size_t>(keep, 1);
  if (seqs.size() <= keep) return {};
  for (std::size_t i = keep; i < seqs.size(); ++i) {
    const std::string path = path_of(seqs[i]);
    rocksdb::IOStatus s = fs_->DeleteFile(path, rocksdb::IOOptions(), nullptr);
    if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot remove {}: {}", path, s.ToString()));
    if (removed) removed->push_back(path);
  }
  return sync_dir(dir_);
}

void SnapshotStore::remove_temp_files() {
  std::vector<std::string> names;
  if (!fs_->GetChildren(dir_, rocksdb::IOOptions(), &names, nullptr).ok()) return;
  for (const std::string& name : names) {
    std::uint64_t seq = 0;
    if (seq_of_name(name, kTempSuffix, seq)) {
      (void)fs_->DeleteFile(dir_ + "/" + name, rocksdb::IOOptions(), nullptr);
    }
  }
}

SnapshotStatus SnapshotStore::list(std::vector<std::uint64_t>& seqs) const {
  seqs.clear();
  bool is_dir = false;
  if (!fs_->IsDirectory(dir_, rocksdb::IOOptions(), &is_dir, nullptr).ok() || !is_dir) return {};
  std::vector<std::string> names;
  rocksdb::IOStatus s = fs_->GetChildren(dir_, rocksdb::IOOptions(), &names, nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot list {}: {}", dir_, s.ToString()));
  for (const std::string& name : names) {
    std::uint64_t seq = 0;
    if (seq_of_name(name, kSuffix, seq)) seqs.push_back(seq);
  }
  std::sort(seqs.rbegin(), seqs.rend());
  return {};
}

SnapshotStatus SnapshotStore::read_file(std::uint64_t seq, std::string& bytes) const {
  const std::string path = path_of(seq);
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  rocksdb::IOStatus s = fs_->NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr);
  std::uint64_t size = 0;
  if (s.ok()) s = fs_->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot open {}: {}", path, s.ToString()));
  bytes.clear();
  bytes.resize(size);
  std::size_t got = 0;
  while (got < size) {
    rocksdb::Slice piece;
    const std::size_t want = std::min<std::size_t>(kReadChunk, size - got);
    s = file->Read(want, rocksdb::IOOptions(), &piece, bytes.data() + got, nullptr);
    if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot read {}: {}", path, s.ToString()));
    if (piece.empty()) break;
    if (piece.data() != bytes.data() + got) std::memmove(bytes.data() + got, piece.data(), piece.size());
    got += piece.size();
  }
  bytes.resize(got);  // a file that shrank while read is checked by its size field
  return {};
}

SnapshotStatus SnapshotStore::load(std::uint64_t seq, Engine& engine, SnapshotHeader& header) const {
  // A snapshot of 10M slots is ~320 MB: let the file system map it (RocksDB's POSIX file
  // system does, with use_mmap_reads) instead of zero-filling a buffer and copying into it.
  const std::string path = path_of(seq);
  std::uint64_t size = 0;
  rocksdb::IOStatus s = fs_->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr);
  rocksdb::FileOptions options;
  options.use_mmap_reads = size > 0;  // an empty file can be neither mapped nor read
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  if (s.ok()) s = fs_->NewRandomAccessFile(path, options, &file, nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot open {}: {}", path, s.ToString()));
  // Only touched by a file system that copies (a mapped read leaves it untouched address space).
  std::unique_ptr<char[]> scratch(new char[std::max<std::uint64_t>(size, 1)]);
  rocksdb::Slice bytes;
  if (size > 0) s = file->Read(0, size, rocksdb::IOOptions(), &bytes, scratch.get(), nullptr);
  if (!s.ok()) return SnapshotStatus::error(fmt::format("cannot read {}: {}", path, s.ToString()));
  if (bytes.data() != scratch.get() && size > 0) {
    // Mapped: fill the page tables in one call instead of one fault per few pages as the
    // checksum and the decode walk it (an advice: where the kernel lacks it, faults do it).
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data()) & ~(page - 1);
    const auto end = reinterpret_cast<std::uintptr_t>(bytes.data()) + bytes.size();
    (void)::madvise(reinterpret_cast<void*>(begin), end - begin, kPopulateRead);
  }
  // A file that shrank while read is caught by the header's size field.
  if (SnapshotStatus st = read_snapshot(std::string_view(bytes.data(), bytes.size()), engine, header); !st) {
    return st;
  }
  if (header.seq != seq) {
    return SnapshotStatus::error(fmt::format("named seq {} but holds seq {}", seq, header.seq));
  }
  return {};
}

SnapshotStatus SnapshotStore::write_now(const Engine& engine, std::uint64_t seq,
                                        TimeMs time_floor_ms, std::size_t keep) {
  std::unique_ptr<Writer> writer;
  if (SnapshotStatus s = begin(seq, writer); !s) return s;
  const bool written = write_snapshot(engine, seq, time_floor_ms, *writer);
  SnapshotStatus s = written ? writer->finish()
                             : SnapshotStatus::error(writer->error_.empty()
                                                         ? "the state could not be encoded"
                                                         : writer->error_);
  writer.reset();
  if (!s) {
    discard(seq);
    return s;
  }
  if (s = publish(seq); !s) return s;
  return retain(keep);
}

SnapshotStatus choose_snapshot(const SnapshotStore& store, std::uint64_t journal_last_seq,
                               const EngineConfig& config, Engine& engine, ChosenSnapshot& chosen,
                               const std::function<void(const std::string&)>& log) {
  chosen = ChosenSnapshot{};
  std::vector<std::uint64_t> seqs;
  if (SnapshotStatus s = store.list(seqs); !s) return s;
  for (std::uint64_t seq : seqs) {
    const std::string path = store.path_of(seq);
    if (seq > journal_last_seq) {
      log(fmt::format("skipping snapshot {}: its seq {} is beyond the journal's last seq {}", path,
                      seq, journal_last_seq));
      continue;
    }
    Engine candidate(config);
    SnapshotHeader header;
    if (SnapshotStatus s = store.load(seq, candidate, header); !s) {
      log(fmt::format("skipping snapshot {}: {}", path, s.message));
      continue;
    }
    engine = std::move(candidate);
    chosen.found = true;
    chosen.header = header;
    chosen.path = path;
    return {};
  }
  return {};
}

}  // namespace slotd
