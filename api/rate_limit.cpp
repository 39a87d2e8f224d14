#include "api/rate_limit.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>

namespace slotd {

RateLimiter::RateLimiter(double rate_per_s, double burst, std::size_t max_clients)
    : rate_(rate_per_s), burst_(std::max(1.0, burst)),
      max_per_shard_(std::max<std::size_t>(1, max_clients / 16)) {}

void RateLimiter::refill(Bucket& b, std::chrono::steady_clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.updated = now;
  }
}

unsigned RateLimiter::take(std::string_view identity, std::chrono::steady_clock::time_point now) {
  if (rate_ <= 0) return 0;
  Shard& shard = shards_[std::hash<std::string_view>{}(identity) % shards_.size()];
  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(std::string(identity));
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= max_per_shard_) {
      // Forget clients whose bucket is full again: they lose nothing by it.
      for (auto b = shard.buckets.begin(); b != shard.buckets.end();) {
        refill(b->second, now);
        b = b->second.tokens >= burst_ ? shard.buckets.erase(b) : std::next(b);
      }
      if (shard.buckets.size() >= max_per_shard_) {
        // Still full of active clients: refuse newcomers rather than grow.
        return 1;
      }
    }
    it = shard.buckets.emplace(std::string(identity), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  refill(b, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return 0;
  }
  return static_cast<unsigned>(std::max(1.0, std::ceil((1 - b.tokens) / rate_)));
}

}  // namespace slotd
