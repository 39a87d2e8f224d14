#include "api/metrics.hpp"

#include <iterator>

#include <fmt/format.h>

namespace slotd {

void RouteMetrics::record(std::size_t route, unsigned status,
                          std::chrono::steady_clock::duration took) {
  if (route >= kMaxRoutes) route = kUnrouted;
  PerRoute& r = routes_[route];
  std::size_t s = 0;
  while (s < kStatuses.size() && kStatuses[s] != status) ++s;
  r.by_status[s].fetch_add(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(took).count();
  std::size_t b = 0;
  while (b < kBucketsS.size() && seconds > kBucketsS[b]) ++b;
  r.buckets[b].fetch_add(1, std::memory_order_relaxed);
  r.sum_ns.fetch_add(static_cast<std::uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()),
                     std::memory_order_relaxed);
  r.count.fetch_add(1, std::memory_order_relaxed);
}

void RouteMetrics::render_route(std::string& out, std::string_view route, const PerRoute& r) const {
  auto it = std::back_inserter(out);
  for (std::size_t s = 0; s <= kStatuses.size(); ++s) {
    const std::uint64_t n = r.by_status[s].load(std::memory_order_relaxed);
    if (n == 0) continue;
    if (s < kStatuses.size()) {
      fmt::format_to(it, "slotd_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", route,
                     kStatuses[s], n);
    } else {
      fmt::format_to(it, "slotd_http_requests_total{{route=\"{}\",status=\"other\"}} {}\n", route, n);
    }
  }
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b <= kBucketsS.size(); ++b) {
    cumulative += r.buckets[b].load(std::memory_order_relaxed);
    if (b < kBucketsS.size()) {
      fmt::format_to(it, "slotd_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                     route, kBucketsS[b], cumulative);
    } else {
      fmt::format_to(it, "slotd_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                     route, cumulative);
    }
  }
  fmt::format_to(it, "slotd_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route,
                 static_cast<double>(r.sum_ns.load(std::memory_order_relaxed)) / 1e9);
  fmt::format_to(it, "slotd_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route,
                 r.count.load(std::memory_order_relaxed));
}

void RouteMetrics::render_all(std::string& out, std::string_view (*name_of)(std::size_t)) const {
  out += "# HELP slotd_http_requests_total HTTP requests by route and status\n"
         "# TYPE slotd_http_requests_total counter\n"
         "# HELP slotd_http_request_duration_seconds time from a request's arrival to its answer "
         "(for writes: after the journal sync)\n"
         "# TYPE slotd_http_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i < kMaxRoutes; ++i) {
    if (routes_[i].count.load(std::memory_order_relaxed) == 0) continue;
    render_route(out, name_of(i), routes_[i]);
  }
}

}  // namespace slotd
