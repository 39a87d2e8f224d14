// A file system for power-cut tests, under RocksDB's FileSystem seam (the journal and the
// snapshot store both write through it). It keeps what a disk promises to keep when the
// power goes and no more:
//  - a file's bytes up to its last sync (fsync/fdatasync), counted per inode, so renames
//    and hard links carry them along;
//  - a directory's entries as of its last fsync: files created, renamed or deleted and
//    directories made since are forgotten (POSIX promises nothing more, and a file system
//    that does not journal metadata in order keeps nothing more).
// The power goes off before the freeze_at_step-th operation that changes the disk, or
// when the test sets `frozen`; from then on every such operation fails ("the power is
// off"), so nothing is acknowledged that did not reach the disk. cut() then leaves the
// disk as the power loss did: files cut to what was synced (or all kept, or a torn tail),
// directories rolled back to their last fsync. The disk's state after cut() is the new
// baseline: a later PowerState sees it as durable.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace slotd::testing {

// What the disk keeps at a cut.
enum class CutOutcome {
  synced_only,  // files cut to their synced length; directories as of their last fsync
  all_written,  // everything written survives (the cache was flushed just in time)
  torn,         // a random part of each unsynced tail survives, its last bytes zeros (a page
                // that reached the disk in part: appended blocks read as zeros until written);
                // directories as of their last fsync
};

struct PowerState {
  std::mutex mutex;
  bool frozen = false;
  // A disk that acknowledges syncs it never did, of files whose name ends in lie_suffix.
  bool syncs_lie = false;
  std::string lie_suffix = ".log";  // the write-ahead log by default
  // A disk that acknowledges directory fsyncs it never did.
  bool dir_syncs_lie = false;
  // Counts every operation that changes the disk; at `freeze_at_step` (0 = never) the
  // power goes off before that operation.
  std::uint64_t steps = 0;
  std::uint64_t freeze_at_step = 0;
  // Directories are rolled back at the cut only when on; otherwise every create, rename
  // and delete is kept (and deleted files are gone).
  bool track_namespace = false;
  // Where files that are unlinked (deleted, or replaced by a rename) wait, as hard links,
  // in case the cut brings them back. Must be on the same file system, outside the
  // directories under test. Emptied by cut().
  std::string graveyard;

  // What the model knows; filled by the file system below.
  struct FileData {
    std::uint64_t written = 0, synced = 0;
    bool syncs_lie = false;
    std::string name;  // the latest name, for cuts without namespace tracking
  };
  std::map<std::uint64_t, FileData> files;  // by inode
  struct Entry {
    std::uint64_t inode = 0;
    bool directory = false;
  };
  using Listing = std::map<std::string, Entry>;  // by name inside the directory
  std::map<std::string, Listing> durable;        // by directory path: as of its last fsync
  std::map<std::string, std::uint64_t> created;  // files created, by name suffix (".log", …)

  // Under the lock: counts a step; true if the power is (now) off.
  bool step_is_dead() {
    if (frozen) return true;
    ++steps;
    if (freeze_at_step != 0 && steps >= freeze_at_step) frozen = true;
    return frozen;
  }

  // Takes `dir` and every directory under it as they are now, as durable. Directories the
  // model meets later are taken as they are when it first meets them.
  void watch(const std::string& dir) {
    std::lock_guard lock(mutex);
    watch_tree(normal(dir));
  }

  // ---- used by the file system under the lock ----

  static std::string normal(const std::string& path) {
    std::filesystem::path p = std::filesystem::path(path).lexically_normal();
    if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
    return p.string();
  }
  static std::string parent_of(const std::string& path) {
    return std::filesystem::path(normal(path)).parent_path().string();
  }
  static bool inode_of(const std::string& path, std::uint64_t& inode, bool* directory = nullptr) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return false;
    inode = st.st_ino;
    if (directory) *directory = S_ISDIR(st.st_mode);
    return true;
  }
  static Listing list(const std::string& dir) {
    Listing out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      Entry entry;
      if (inode_of(e.path().string(), entry.inode, &entry.directory)) {
        out[e.path().filename().string()] = entry;
      }
    }
    return out;
  }

  // Before the first change inside `dir`: what it holds now is what the disk holds.
  void meet(const std::string& dir) {
    if (!track_namespace) return;
    const std::string d = normal(dir);
    if (!durable.contains(d)) durable[d] = list(d);
  }

  // Keeps the file at `path` (about to lose a name) reachable for the cut.
  void keep(const std::string& path) {
    if (!track_namespace) return;
    std::uint64_t inode = 0;
    bool directory = false;
    if (!inode_of(path, inode, &directory) || directory) return;
    const std::string kept = graveyard + "/" + std::to_string(inode);
    std::error_code ec;
    if (!std::filesystem::exists(kept, ec)) std::filesystem::create_hard_link(path, kept, ec);
    if (ec) throw std::runtime_error("power-cut harness cannot keep " + path + ": " + ec.message());
  }

 private:
  void watch_tree(const std::string& dir) {
    durable[dir] = list(dir);
    for (const auto& [name, entry] : durable[dir]) {
      if (entry.directory) watch_tree(dir + "/" + name);
    }
  }
};

class PowerLossFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PowerLossFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::uint64_t inode,
                std::shared_ptr<PowerState> state)
      : FSWritableFileOwnerWrapper(std::move(file)), inode_(inode), state_(std::move(state)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return power_is_off();
    rocksdb::IOStatus s = target()->Append(data, o, d);
    if (s.ok()) state_->files[inode_].written += data.size();
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo&, rocksdb::IODebugContext* d) override {
    return Append(data, o, d);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return power_is_off();
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, o, d);
    auto& f = state_->files[inode_];
    if (s.ok()) f.written = std::max<std::uint64_t>(f.written, offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext* d) override {
    return PositionedAppend(data, offset, o, d);
  }
  rocksdb::IOStatus Truncate(std::uint64_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return power_is_off();
    rocksdb::IOStatus s = target()->Truncate(size, o, d);
    auto& f = state_->files[inode_];
    if (s.ok()) {
      f.written = size;
      f.synced = std::min(f.synced, size);
    }
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(o, d);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(o, d);
  }

  static rocksdb::IOStatus power_is_off() { return rocksdb::IOStatus::IOError("the power is off"); }

 private:
  rocksdb::IOStatus synced(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return power_is_off();
    rocksdb::IOStatus s = target()->Fsync(o, d);
    auto& f = state_->files[inode_];
    if (s.ok() && !f.syncs_lie) f.synced = f.written;
    return s;
  }
  std::uint64_t inode_;
  std::shared_ptr<PowerState> state_;
};

class PowerLossDirectory : public rocksdb::FSDirectory {
 public:
  PowerLossDirectory(std::unique_ptr<rocksdb::FSDirectory> dir, std::string path,
                     std::shared_ptr<PowerState> state)
      : dir_(std::move(dir)), path_(PowerState::normal(path)), state_(std::move(state)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    rocksdb::IOStatus s = dir_->Fsync(o, d);
    // Every entry of this directory as it is now is durable.
    if (s.ok() && state_->track_namespace && !state_->dir_syncs_lie) {
      state_->durable[path_] = PowerState::list(path_);
    }
    return s;
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return dir_->Close(o, d);
  }
  size_t GetUniqueId(char* id, size_t max_size) const override { return dir_->GetUniqueId(id, max_size); }

 private:
  std::unique_ptr<rocksdb::FSDirectory> dir_;
  std::string path_;
  std::shared_ptr<PowerState> state_;
};

class PowerLossFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFileSystem(std::shared_ptr<PowerState> state)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), state_(std::move(state)) {}
  const char* Name() const override { return "PowerLossFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(name));
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (!s.ok()) return s;
    std::uint64_t inode = 0;
    if (!PowerState::inode_of(name, inode)) return rocksdb::IOStatus::IOError("no inode for " + name);
    auto& f = state_->files[inode];
    f = PowerState::FileData{};  // a new file, or an old one truncated to nothing
    f.syncs_lie = state_->syncs_lie && name.ends_with(state_->lie_suffix);
    f.name = name;
    const auto dot = name.find_last_of("./");
    if (dot != std::string::npos && name[dot] == '.') ++state_->created[name.substr(dot)];
    *result = std::make_unique<PowerLossFile>(std::move(*result), inode, state_);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(name));
    rocksdb::IOStatus s = target()->ReopenWritableFile(name, options, result, dbg);
    if (!s.ok()) return s;
    std::uint64_t inode = 0;
    if (!PowerState::inode_of(name, inode)) return rocksdb::IOStatus::IOError("no inode for " + name);
    if (!state_->files.contains(inode)) {
      // Older than the model: all of it is on the disk.
      std::error_code ec;
      const std::uint64_t size = std::filesystem::file_size(name, ec);
      state_->files[inode] = PowerState::FileData{size, size, false, name};
    }
    *result = std::make_unique<PowerLossFile>(std::move(*result), inode, state_);
    return s;
  }
  // Not modelled; RocksDB does not use them with the journal's options. Failing loudly
  // beats a write the model never saw.
  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string&,
                                      const rocksdb::FileOptions&, std::unique_ptr<rocksdb::FSWritableFile>*,
                                      rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("power-cut file system: ReuseWritableFile " + name);
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& name, const rocksdb::FileOptions&,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>*,
                                    rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("power-cut file system: NewRandomRWFile " + name);
  }
  rocksdb::IOStatus LinkFile(const std::string& from, const std::string&, const rocksdb::IOOptions&,
                             rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("power-cut file system: LinkFile " + from);
  }

  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override {
    {
      std::lock_guard lock(state_->mutex);
      state_->meet(name);
    }
    rocksdb::IOStatus s = target()->NewDirectory(name, io_opts, result, dbg);
    if (s.ok()) *result = std::make_unique<PowerLossDirectory>(std::move(*result), name, state_);
    return s;
  }
  rocksdb::IOStatus CreateDir(const std::string& name, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    return made_dir(name, [&] { return target()->CreateDir(name, o, d); });
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& name, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* d) override {
    return made_dir(name, [&] { return target()->CreateDirIfMissing(name, o, d); });
  }
  rocksdb::IOStatus DeleteDir(const std::string& name, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(name));
    return target()->DeleteDir(name, o, d);
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(from));
    state_->meet(PowerState::parent_of(to));
    state_->keep(to);  // a file the rename replaces may come back
    std::uint64_t inode = 0;
    const bool known = PowerState::inode_of(from, inode);
    rocksdb::IOStatus s = target()->RenameFile(from, to, o, d);
    if (s.ok() && known && state_->files.contains(inode)) state_->files[inode].name = to;
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& name, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(name));
    state_->keep(name);  // until the cut: a delete no directory fsync covered is undone
    return target()->DeleteFile(name, o, d);
  }
  rocksdb::IOStatus Truncate(const std::string& name, size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    rocksdb::IOStatus s = target()->Truncate(name, size, o, d);
    std::uint64_t inode = 0;
    if (s.ok() && PowerState::inode_of(name, inode) && state_->files.contains(inode)) {
      auto& f = state_->files[inode];
      f.written = size;
      f.synced = std::min<std::uint64_t>(f.synced, size);
    }
    return s;
  }

 private:
  template <class Make>
  rocksdb::IOStatus made_dir(const std::string& name, Make make) {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return PowerLossFile::power_is_off();
    state_->meet(PowerState::parent_of(name));
    std::error_code ec;
    const bool existed = std::filesystem::is_directory(name, ec);
    rocksdb::IOStatus s = make();
    if (s.ok() && !existed && state_->track_namespace) state_->durable[PowerState::normal(name)] = {};
    return s;
  }

  std::shared_ptr<PowerState> state_;
};

namespace detail {

inline void cut_file(const std::string& path, const PowerState::FileData& f, CutOutcome outcome,
                     std::mt19937_64& rng) {
  std::error_code ec;
  if (outcome == CutOutcome::synced_only) {
    std::filesystem::resize_file(path, f.synced, ec);
  } else if (outcome == CutOutcome::torn && f.written > f.synced) {
    const std::uint64_t keep = f.synced + rng() % (f.written - f.synced + 1);
    std::filesystem::resize_file(path, keep, ec);
    if (keep > f.synced) {
      // The last page of what survived may hold zeros instead of the data. Not random
      // bytes: a file system that orders data before metadata (ext4's default, xfs) never
      // shows stale blocks in a file, and RocksDB refuses a MANIFEST whose unsynced tail
      // holds them (it treats zeros as the end).
      std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
      const std::uint64_t zeros = std::min<std::uint64_t>(keep - f.synced, 1 + rng() % 64);
      file.seekp(static_cast<std::streamoff>(keep - zeros));
      for (std::uint64_t i = 0; i < zeros; ++i) file.put('\0');
    }
  }
}

// Makes `dir` hold exactly its durable entries, each file linked back from the graveyard.
// Returns how many entries it removed or brought back.
inline std::uint64_t roll_back(PowerState& state, const std::string& dir) {
  std::uint64_t undone = 0;
  namespace fs = std::filesystem;
  const PowerState::Listing& want = state.durable.at(dir);
  for (const auto& [name, entry] : PowerState::list(dir)) {
    auto it = want.find(name);
    if (it == want.end() || it->second.directory != entry.directory ||
        (!entry.directory && it->second.inode != entry.inode)) {
      fs::remove_all(fs::path(dir) / name);
      ++undone;
    }
  }
  for (const auto& [name, entry] : want) {
    const fs::path path = fs::path(dir) / name;
    std::error_code ec;
    if (entry.directory) {
      undone += fs::create_directory(path, ec);
    } else if (!fs::exists(path, ec)) {
      ++undone;
      fs::create_hard_link(fs::path(state.graveyard) / std::to_string(entry.inode), path, ec);
      if (ec) {
        throw std::runtime_error("power-cut harness cannot restore " + path.string() + ": " + ec.message());
      }
    }
  }
  return undone;
}

}  // namespace detail

// After the freeze: leaves the disk as `outcome` says. `rng` picks torn lengths. Returns
// how many directory entries the cut undid (created, renamed or deleted since the last
// fsync of their directory).
inline std::uint64_t cut(PowerState& state, CutOutcome outcome, std::mt19937_64& rng) {
  namespace fs = std::filesystem;
  std::uint64_t undone = 0;
  std::lock_guard lock(state.mutex);
  state.frozen = true;
  const bool roll_back = state.track_namespace && outcome != CutOutcome::all_written;
  if (roll_back) {
    // Every file still named somewhere joins the graveyard, so that any of them can be
    // linked back wherever the durable entries want it.
    for (const auto& [dir, listing] : state.durable) {
      for (const auto& [name, entry] : PowerState::list(dir)) {
        if (!entry.directory) state.keep(dir + "/" + name);
      }
    }
    // Parents first (shorter paths sort first); a directory its parent forgot is gone.
    std::vector<std::string> dirs;
    for (const auto& [dir, listing] : state.durable) dirs.push_back(dir);
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    for (const std::string& dir : dirs) {
      std::error_code ec;
      if (fs::is_directory(dir, ec)) undone += detail::roll_back(state, dir);
    }
    // Data: each inode once, through its graveyard link (every name of it shares it).
    for (const auto& [inode, f] : state.files) {
      const std::string kept = state.graveyard + "/" + std::to_string(inode);
      std::error_code ec;
      if (fs::exists(kept, ec)) detail::cut_file(kept, f, outcome, rng);
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(state.graveyard, ec)) fs::remove(e.path(), ec);
  } else {
    for (const auto& [inode, f] : state.files) {
      std::uint64_t now = 0;
      if (PowerState::inode_of(f.name, now) && now == inode) detail::cut_file(f.name, f, outcome, rng);
    }
  }
  state.files.clear();
  state.durable.clear();
  return undone;
}

}  // namespace slotd::testing
