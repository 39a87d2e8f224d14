#include "journal/digest.hpp"

#include <cstdint>
#include <cstring>

namespace slotd {
namespace {

constexpr std::uint64_t kKey0 = 0x736c6f7464206964ULL;  // "slotd id"
constexpr std::uint64_t kKey1 = 0x6469676573742d31ULL;  // "digest-1"

std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  void absorb(std::uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

// SipHash-2-4 with 128-bit output (the reference algorithm's 128-bit variant) over the
// 8-byte little-endian length of `scope`, `scope` and `data` (so no two pairs collide by
// moving bytes between scope and data).
KeyDigest siphash128(std::string_view scope, std::string_view data) {
  unsigned char buffer[8];
  std::size_t filled = 0;
  std::uint64_t total = 0;
  SipState s{kKey0 ^ 0x736f6d6570736575ULL, kKey1 ^ 0x646f72616e646f6dULL ^ 0xee,
             kKey0 ^ 0x6c7967656e657261ULL, kKey1 ^ 0x7465646279746573ULL};
  auto feed = [&](const unsigned char* p, std::size_t n) {
    total += n;
    while (n > 0) {
      buffer[filled++] = *p++;
      --n;
      if (filled == 8) {
        std::uint64_t m = 0;
        for (int i = 7; i >= 0; --i) m = (m << 8) | buffer[i];
        s.absorb(m);
        filled = 0;
      }
    }
  };
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(scope.size() >> (8 * i));
  feed(length, 8);
  feed(reinterpret_cast<const unsigned char*>(scope.data()), scope.size());
  feed(reinterpret_cast<const unsigned char*>(data.data()), data.size());
  std::uint64_t last = (total & 0xff) << 56;
  for (std::size_t i = 0; i < filled; ++i) last |= std::uint64_t{buffer[i]} << (8 * i);
  s.absorb(last);
  s.v2 ^= 0xee;
  for (int i = 0; i < 4; ++i) s.round();
  const std::uint64_t lo = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  s.v1 ^= 0xdd;
  for (int i = 0; i < 4; ++i) s.round();
  const std::uint64_t hi = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  return KeyDigest{hi, lo};
}

}  // namespace

ClientId client_digest(std::string_view identity) {
  if (identity.empty()) return 0;
  const KeyDigest d = siphash128("client", identity);
  return d.lo == 0 ? 1 : d.lo;
}

KeyDigest key_digest(std::string_view scope, std::string_view key) {
  if (key.empty()) return {};
  KeyDigest d = siphash128(scope, key);
  if (d.empty()) d.lo = 1;
  return d;
}

}  // namespace slotd
