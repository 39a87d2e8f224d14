// Shared by the C++ tests: a temp directory that cleans up after itself, and doctest
// printers that show engine enums by name.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {
// doctest prints enums as their underlying number; these (found by ADL) print the name.
inline doctest::String toString(Rejection r) { return std::string(to_string(r)).c_str(); }
inline doctest::String toString(SlotStatus s) { return std::string(to_string(s)).c_str(); }
inline doctest::String toString(BookingStatus s) { return std::string(to_string(s)).c_str(); }
}  // namespace slotd

namespace slotd::testing {

// Stand-ins for the API's digests in engine-only tests: a stable non-zero id per name
// (FNV-1a), the empty name being "no client" / "no key".
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}
inline ClientId client(std::string_view name) { return name.empty() ? 0 : fnv1a(name) | 1; }
inline KeyDigest key(std::string_view name) {
  if (name.empty()) return {};
  return KeyDigest{fnv1a(name), fnv1a(name, 0x84222325cbf29ce4ULL) | 1};
}

// A fresh directory under the system temp dir, removed with everything in it at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "slotd_test") {
    static std::atomic<std::uint64_t> counter{0};
    std::random_device entropy;
    const std::uint64_t nonce = (std::uint64_t{entropy()} << 32) ^ entropy();
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(nonce) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace slotd::testing
