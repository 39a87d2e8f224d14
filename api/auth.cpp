#include "api/auth.hpp"

#include <pthread.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstring>

namespace slotd {

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool is_admin(std::string_view auth, std::string_view admin_token) {
  constexpr std::string_view kBearer = "bearer ";
  if (admin_token.empty() || auth.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(auth[i])) != kBearer[i]) return false;
  }
  auth.remove_prefix(kBearer.size());
  return constant_time_equal(auth, admin_token);
}

std::optional<Token> token_from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  Token token{};
  for (std::size_t i = 0; i < 16; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    token[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return token;
}

bool token_matches(const std::optional<Token>& presented, const Token& actual) {
  if (!presented) return false;
  return constant_time_equal(
      std::string_view(reinterpret_cast<const char*>(presented->data()), presented->size()),
      std::string_view(reinterpret_cast<const char*>(actual.data()), actual.size()));
}

namespace {

void kernel_random(unsigned char* p, std::size_t n) {
  std::size_t filled = 0;
  while (filled < n) {
    ssize_t got = getrandom(p + filled, n - filled, 0);
    if (got > 0) filled += static_cast<std::size_t>(got);
  }
}

// Bumped in a forked child: a copy of a parent's pool must never be handed out there.
std::atomic<std::uint64_t> fork_generation{0};

// Kernel randomness from a per-thread pool refilled 4 KiB at a time: one getrandom() per
// 128 booking tokens instead of one each (it showed as a system call per booking in perf).
// Bytes are wiped from the pool as they are handed out.
void fill_random(void* data, std::size_t n) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  thread_local std::array<unsigned char, 4096> pool;
  thread_local std::size_t used = pool.size();
  thread_local std::uint64_t generation = 0;
  const std::uint64_t now = fork_generation.load(std::memory_order_relaxed);
  if (generation != now) {
    explicit_bzero(pool.data(), pool.size());
    used = pool.size();
    generation = now;
  }
  auto* p = static_cast<unsigned char*>(data);
  while (n > 0) {
    if (used == pool.size()) {
      kernel_random(pool.data(), pool.size());
      used = 0;
    }
    const std::size_t take = std::min(n, pool.size() - used);
    std::memcpy(p, pool.data() + used, take);
    explicit_bzero(pool.data() + used, take);
    used += take;
    p += take;
    n -= take;
  }
}

}  // namespace

Token random_token() {
  Token token{};
  fill_random(token.data(), token.size());
  return token;
}

WebhookSecret random_webhook_secret() {
  WebhookSecret secret{};
  fill_random(secret.data(), secret.size());
  return secret;
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  fill_random(raw.data(), raw.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes * 2);
  for (unsigned char c : raw) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return hex;
}

}  // namespace slotd
