// snapshots/snapshot_store — the snapshot files of one data dir (DATA_DIR/snapshots).
//
// One file per snapshot, named by its seq (20 digits, so names sort by seq):
// `00000000000001000000.snapshot`. A snapshot is written to `<name>.tmp`, fsynced, and
// only then renamed into place and the directory fsynced, so a name without `.tmp` always
// means a complete file; the reader still checks every byte (checksum, hash) and skips a
// file that fails. All file IO goes through a rocksdb::FileSystem (the default one, or a
// fault-injecting one in tests), the same seam the journal uses.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "snapshots/snapshot_file.hpp"

namespace rocksdb {
class FileSystem;
class FSWritableFile;
}  // namespace rocksdb

namespace slotd {

class SnapshotStore {
 public:
  // `fs` = nullptr: RocksDB's default (POSIX) file system.
  explicit SnapshotStore(std::string dir, std::shared_ptr<rocksdb::FileSystem> fs = nullptr);
  ~SnapshotStore();

  const std::string& dir() const { return dir_; }
  std::string path_of(std::uint64_t seq) const;
  std::string temp_path_of(std::uint64_t seq) const;

  // The temp file of one snapshot being written; bytes go in with write() (a StateSink).
  class Writer : public StateSink {
   public:
    ~Writer() override;
    bool write(const char* data, std::size_t size) override;
    // Syncs and closes the temp file: after this its bytes are on disk.
    [[nodiscard]] SnapshotStatus finish();
    std::uint64_t bytes() const { return bytes_; }

   private:
    friend class SnapshotStore;
    std::unique_ptr<rocksdb::FSWritableFile> file_;
    std::string path_;
    std::string error_;
    std::uint64_t bytes_ = 0;
  };

  // Creates the directory if missing and the temp file of `seq` (replacing a stale one).
  [[nodiscard]] SnapshotStatus begin(std::uint64_t seq, std::unique_ptr<Writer>& out);
  // Renames the finished temp file of `seq` into place and fsyncs the directory.
  [[nodiscard]] SnapshotStatus publish(std::uint64_t seq);
  // Removes the temp file of `seq` (a snapshot given up); a missing file is fine.
  void discard(std::uint64_t seq);
  // Keeps the newest `keep` snapshots (at least 1) and removes the others; fsyncs the
  // directory. `removed` gets the paths removed.
  [[nodiscard]] SnapshotStatus retain(std::size_t keep, std::vector<std::string>* removed = nullptr);
  // Removes temp files left by a crash (start-up of the writer only; tools never write).
  void remove_temp_files();

  // Seqs of the complete-named snapshot files, newest first; a missing directory is empty.
  [[nodiscard]] SnapshotStatus list(std::vector<std::uint64_t>& seqs) const;
  // The whole file of `seq`.
  [[nodiscard]] SnapshotStatus read_file(std::uint64_t seq, std::string& bytes) const;
  // Reads and verifies the snapshot of `seq` into `engine` (see read_snapshot).
  [[nodiscard]] SnapshotStatus load(std::uint64_t seq, Engine& engine, SnapshotHeader& header) const;

  // A whole snapshot in this thread: begin, write, finish, publish, retain.
  [[nodiscard]] SnapshotStatus write_now(const Engine& engine, std::uint64_t seq,
                                         TimeMs time_floor_ms, std::size_t keep);

 private:
  SnapshotStatus sync_dir(const std::string& dir) const;

  std::string dir_;
  std::shared_ptr<rocksdb::FileSystem> fs_;
  bool dir_made_ = false;
};

// What start-up chose.
struct ChosenSnapshot {
  bool found = false;
  SnapshotHeader header;
  std::string path;
};

// Start-up: the newest snapshot that verifies and whose seq the journal reaches
// (<= journal_last_seq), restored into `engine` (a fresh Engine with the wanted config).
// Every snapshot skipped is logged with its path and the reason; none found = replay all.
[[nodiscard]] SnapshotStatus choose_snapshot(const SnapshotStore& store,
                                             std::uint64_t journal_last_seq,
                                             const EngineConfig& config, Engine& engine,
                                             ChosenSnapshot& chosen,
                                             const std::function<void(const std::string&)>& log);

}  // namespace slotd
