// bench/median.hpp — the median the bench programs report over their rounds (the mean of
// the two middle values for an even count).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace slotd::bench {

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace slotd::bench
