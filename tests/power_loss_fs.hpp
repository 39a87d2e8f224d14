// A file system for power-cut tests, under RocksDB's FileSystem seam (the journal and the
// snapshot store both write through it). It remembers how much of each file was synced
// and, optionally, which creates, renames and deletes were made durable by a directory
// fsync. At the "power cut" it freezes (later writes, syncs, renames and deletes go
// nowhere); cut() then leaves the disk as a power loss may have: every file truncated to
// what was synced (or keeping more, or torn), and namespace changes that no directory
// fsync covered undone (or kept).
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace slotd::testing {

// What the disk keeps at a cut.
enum class CutOutcome {
  synced_only,   // files truncated to their synced length; un-fsynced namespace changes undone
  all_written,   // everything written survives (the cache was flushed just in time)
  torn,          // a random part of each unsynced tail survives, its last bytes garbage;
                 // un-fsynced namespace changes undone
};

struct PowerState {
  std::mutex mutex;
  bool frozen = false;
  bool syncs_lie = false;  // a disk that acknowledges syncs it never did, of files named *lie_suffix
  std::string lie_suffix = ".log";  // the write-ahead log by default
  // Counts every operation that changes the disk; at `freeze_at_step` (0 = never) the
  // power goes off before that operation.
  std::uint64_t steps = 0;
  std::uint64_t freeze_at_step = 0;
  std::map<std::string, std::uint64_t> written, synced;  // by file name
  // Namespace changes not yet made durable by a directory fsync (tracked only when on).
  bool track_namespace = false;
  struct Change {
    enum Kind { create, rename, remove } kind;
    std::string from, to;  // create: to; rename: from → to; remove: from (kept at `to`)
  };
  std::vector<Change> pending;
  std::string graveyard;  // where removed files wait until a directory fsync
  std::uint64_t removed = 0;

  // Under the lock: counts a step; true if the power is (now) off.
  bool step_is_dead() {
    if (frozen) return true;
    ++steps;
    if (freeze_at_step != 0 && steps >= freeze_at_step) frozen = true;
    return frozen;
  }
};

class PowerLossFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PowerLossFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::string name,
                std::shared_ptr<PowerState> state)
      : FSWritableFileOwnerWrapper(std::move(file)), name_(std::move(name)), state_(std::move(state)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return rocksdb::IOStatus::OK();  // the power is already off
    state_->written[name_] += data.size();
    return target()->Append(data, o, d);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo&, rocksdb::IODebugContext* d) override {
    return Append(data, o, d);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(o, d);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    return synced(o, d);
  }

 private:
  rocksdb::IOStatus synced(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return rocksdb::IOStatus::OK();
    rocksdb::IOStatus s = target()->Fsync(o, d);
    const bool lies = state_->syncs_lie && name_.ends_with(state_->lie_suffix);
    if (s.ok() && !lies) state_->synced[name_] = state_->written[name_];
    return s;
  }
  std::string name_;
  std::shared_ptr<PowerState> state_;
};

class PowerLossDirectory : public rocksdb::FSDirectory {
 public:
  PowerLossDirectory(std::unique_ptr<rocksdb::FSDirectory> dir, std::string path,
                     std::shared_ptr<PowerState> state)
      : dir_(std::move(dir)), path_(std::filesystem::path(path).lexically_normal().string()),
        state_(std::move(state)) {}
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return rocksdb::IOStatus::OK();
    rocksdb::IOStatus s = dir_->Fsync(o, d);
    if (!s.ok()) return s;
    // Every namespace change inside this directory is durable now.
    auto in_dir = [&](const std::string& p) {
      return !p.empty() && std::filesystem::path(p).parent_path().lexically_normal().string() == path_;
    };
    std::vector<PowerState::Change> still;
    for (auto& c : state_->pending) {
      const bool covered = c.kind == PowerState::Change::remove ? in_dir(c.from) : in_dir(c.to);
      if (!covered) {
        still.push_back(c);
      } else if (c.kind == PowerState::Change::remove) {
        std::error_code ec;
        std::filesystem::remove(c.to, ec);  // gone for good
      }
    }
    state_->pending = std::move(still);
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
    if (state_->step_is_dead()) return rocksdb::IOStatus::IOError("the power is off");
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (!s.ok()) return s;
    state_->written[name] = 0;
    state_->synced[name] = 0;
    if (state_->track_namespace) state_->pending.push_back({PowerState::Change::create, {}, name});
    *result = std::make_unique<PowerLossFile>(std::move(*result), name, state_);
    return s;
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewDirectory(name, io_opts, result, dbg);
    if (s.ok()) *result = std::make_unique<PowerLossDirectory>(std::move(*result), name, state_);
    return s;
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return rocksdb::IOStatus::OK();
    auto move_entry = [&](std::map<std::string, std::uint64_t>& m) {
      if (auto it = m.find(from); it != m.end()) {
        m[to] = it->second;
        m.erase(it);
      }
    };
    move_entry(state_->written);
    move_entry(state_->synced);
    if (state_->track_namespace) state_->pending.push_back({PowerState::Change::rename, from, to});
    return target()->RenameFile(from, to, o, d);
  }
  rocksdb::IOStatus DeleteFile(const std::string& name, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    std::lock_guard lock(state_->mutex);
    if (state_->step_is_dead()) return rocksdb::IOStatus::OK();
    if (state_->track_namespace) {
      // Kept aside until a directory fsync: a cut before it brings the file back.
      const std::string kept = state_->graveyard + "/" + std::to_string(++state_->removed);
      std::error_code ec;
      std::filesystem::rename(name, kept, ec);
      if (ec) return rocksdb::IOStatus::NotFound(name);
      state_->pending.push_back({PowerState::Change::remove, name, kept});
      return rocksdb::IOStatus::OK();
    }
    state_->written.erase(name);
    state_->synced.erase(name);
    return target()->DeleteFile(name, o, d);
  }

 private:
  std::shared_ptr<PowerState> state_;
};

// After the freeze: leaves the files as the outcome says. `rng` picks torn lengths.
inline void cut(PowerState& state, CutOutcome outcome, std::mt19937_64& rng) {
  std::lock_guard lock(state.mutex);
  state.frozen = true;
  if (outcome != CutOutcome::all_written) {
    // Undo, newest first, what no directory fsync made durable.
    for (auto it = state.pending.rbegin(); it != state.pending.rend(); ++it) {
      std::error_code ec;
      switch (it->kind) {
        case PowerState::Change::create:
          std::filesystem::remove(it->to, ec);
          state.written.erase(it->to);
          state.synced.erase(it->to);
          break;
        case PowerState::Change::rename:
          std::filesystem::rename(it->to, it->from, ec);
          if (auto w = state.written.find(it->to); w != state.written.end()) {
            state.written[it->from] = w->second;
            state.synced[it->from] = state.synced[it->to];
            state.written.erase(it->to);
            state.synced.erase(it->to);
          }
          break;
        case PowerState::Change::remove:
          std::filesystem::rename(it->to, it->from, ec);
          break;
      }
    }
  }
  state.pending.clear();
  for (const auto& [name, synced] : state.synced) {
    std::error_code ec;
    if (!std::filesystem::exists(name, ec)) continue;
    const std::uint64_t written = state.written[name];
    if (outcome == CutOutcome::synced_only) {
      std::filesystem::resize_file(name, synced, ec);
    } else if (outcome == CutOutcome::torn && written > synced) {
      const std::uint64_t keep = synced + rng() % (written - synced + 1);
      std::filesystem::resize_file(name, keep, ec);
      if (keep > synced) {
        // The last page of what survived may hold garbage instead of the data.
        std::fstream f(name, std::ios::in | std::ios::out | std::ios::binary);
        const std::uint64_t garbage = std::min<std::uint64_t>(keep - synced, 1 + rng() % 64);
        f.seekp(static_cast<std::streamoff>(keep - garbage));
        for (std::uint64_t i = 0; i < garbage; ++i) f.put(static_cast<char>(rng()));
      }
    }
  }
}

}  // namespace slotd::testing
