// api/metrics — per-route request counters and latency histograms, rendered with the
// sequencer's and server's counters as Prometheus text on GET /metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace slotd {

class RouteMetrics {
 public:
  static constexpr std::size_t kMaxRoutes = 64;
  // The route index for requests no route matched (404/405 and transport errors).
  static constexpr std::size_t kUnrouted = kMaxRoutes - 1;
  static constexpr std::array<unsigned, 16> kStatuses = {200, 201, 204, 304, 400, 401, 403, 404,
                                                         405, 408, 409, 413, 421, 429, 431, 503};
  static constexpr std::array<double, 12> kBucketsS = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                                       0.05,   0.1,   0.25,  0.5,   1.0,  2.5};

  void record(std::size_t route, unsigned status, std::chrono::steady_clock::duration took);

 private:
  struct PerRoute {
    std::array<std::atomic<std::uint64_t>, kStatuses.size() + 1> by_status{};  // + "other"
    std::array<std::atomic<std::uint64_t>, kBucketsS.size() + 1> buckets{};    // + "+Inf"
    std::atomic<std::uint64_t> sum_ns{0};
    std::atomic<std::uint64_t> count{0};
  };
  std::array<PerRoute, kMaxRoutes> routes_;
  void render_route(std::string& out, std::string_view route, const PerRoute& r) const;

 public:
  // Appends the counters of every route that has one; `name_of(i)` labels route i.
  void render_all(std::string& out, std::string_view (*name_of)(std::size_t)) const;
};

}  // namespace slotd
