// api/rate_limit — a token bucket per client identity (for POST /booking).
//
// `rate` tokens per second refill a bucket of `burst`; a request takes one token or is
// refused with the seconds until one is there (sent as Retry-After). rate 0 = no limit.
// The table of buckets is bounded: when full, buckets that have refilled completely
// (idle clients) are dropped, so a flood of fresh identities cannot grow memory without
// bound.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace slotd {

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst, std::size_t max_clients = 100'000);

  bool enabled() const { return rate_ > 0; }
  // 0 when allowed (a token is taken), else whole seconds to wait (at least 1).
  unsigned take(std::string_view identity, std::chrono::steady_clock::time_point now);
  unsigned take(std::string_view identity) {
    return take(identity, std::chrono::steady_clock::now());
  }

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Bucket> buckets;
  };
  void refill(Bucket& b, std::chrono::steady_clock::time_point now) const;

  double rate_;
  double burst_;
  std::size_t max_per_shard_;
  std::array<Shard, 16> shards_;
};

}  // namespace slotd
