// What every benchmark program measures with: milliseconds of a steady-clock duration, and a
// percentile of samples (nearest rank; p50 is the median).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace qiao::bench {

using Clock = std::chrono::steady_clock;

inline double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace qiao::bench
