// fsync_bench — what one durable append costs on this machine's file system, three ways:
// appending to a file that grows (each fdatasync also writes the inode, for the new size),
// to one whose space was fallocate'd with FALLOC_FL_KEEP_SIZE (what RocksDB does for its
// WAL), and overwriting a file that was zero-filled and synced first (no inode to write).
// Prints microseconds per fdatasync, wall and CPU, median of the rounds, and checks whether
// RocksDB keeps WAL recycling (recycle_log_file_num, its way to the third case) under the
// journal's recovery mode.
// Usage: fsync_bench [--appends N] [--rounds R] [--dir DIR] [--out PATH]
#include <fcntl.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/median.hpp"

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct Cost {
  double wall_us = 0, cpu_us = 0;
};

enum class Layout { grows, fallocated, zero_filled };

Cost appends(const std::string& path, Layout layout, int n) {
  constexpr std::size_t kAppend = 2000;
  const std::vector<char> data(kAppend, 'x');
  const off_t total = static_cast<off_t>(n) * kAppend;
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  if (layout == Layout::fallocated && ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, total) != 0) std::perror("fallocate");
  if (layout == Layout::zero_filled) {
    const std::vector<char> zeros(1 << 16, 0);
    for (off_t off = 0; off < total; off += static_cast<off_t>(zeros.size())) {
      if (::pwrite(fd, zeros.data(), zeros.size(), off) < 0) std::perror("pwrite");
    }
  }
  ::fsync(fd);
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  for (int i = 0; i < n; ++i) {
    if (::pwrite(fd, data.data(), kAppend, static_cast<off_t>(i) * kAppend) < 0) std::perror("pwrite");
    ::fdatasync(fd);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - c0;
  ::close(fd);
  ::unlink(path.c_str());
  return {wall / n * 1e6, cpu / n * 1e6};
}

}  // namespace

using slotd::bench::median;

int main(int argc, char** argv) {
  int n = 2000, rounds = 3;
  std::string dir = std::filesystem::temp_directory_path().string(), out = "fsync_bench.results.txt";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--appends" && i + 1 < argc) n = std::max(1, std::atoi(argv[++i]));
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else {
      std::fprintf(stderr, "usage: fsync_bench [--appends N] [--rounds R] [--dir DIR] [--out PATH]\n");
      return 2;
    }
  }
  const std::string path = dir + "/fsync_bench." + std::to_string(::getpid());
  std::string report = fmt::format("fsync_bench: {} appends of 2,000 bytes, fdatasync after each, {} rounds, in {}\n",
                                   n, rounds, dir);
  const std::pair<Layout, const char*> layouts[] = {{Layout::grows, "file grows"},
                                                    {Layout::fallocated, "fallocate KEEP_SIZE"},
                                                    {Layout::zero_filled, "zero-filled, overwritten"}};
  std::vector<std::vector<double>> wall(3), cpu(3);
  for (int r = 0; r < rounds; ++r) {  // the three layouts alternate within each round
    for (int k = 0; k < 3; ++k) {
      const Cost c = appends(path, layouts[k].first, n);
      wall[k].push_back(c.wall_us);
      cpu[k].push_back(c.cpu_us);
    }
  }
  for (int k = 0; k < 3; ++k) {
    report += fmt::format("  {:<26} {:7.1f} us wall, {:6.1f} us CPU per fdatasync (median of {})\n",
                          layouts[k].second, median(wall[k]), median(cpu[k]), rounds);
  }
  // RocksDB's own way to the third layout, and whether it survives its option sanitizing.
  const std::string db_dir = path + ".db";
  rocksdb::Options options;
  options.create_if_missing = true;
  options.recycle_log_file_num = 4;
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;  // the journal's
  rocksdb::DB* db = nullptr;
  if (rocksdb::DB::Open(options, db_dir, &db).ok()) {
    report += fmt::format("  RocksDB recycle_log_file_num = 4 under kPointInTimeRecovery: {} after open\n",
                          db->GetDBOptions().recycle_log_file_num);
    delete db;
  }
  std::error_code ec;
  std::filesystem::remove_all(db_dir, ec);
  std::fputs(report.c_str(), stdout);
  if (FILE* f = std::fopen(out.c_str(), "a")) {
    std::fputs(report.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
