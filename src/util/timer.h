#pragma once

#include <chrono>
#include <ctime>

namespace glimpse {

// Wall-clock stopwatch in milliseconds.
class Stopwatch {
 public:
  Stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  double ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_)
        .count();
  }
  void reset() { t0_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// CPU time of the whole process (every thread, user + system) in milliseconds. On a machine
// other jobs share, wall time depends on their load; the CPU time a piece of work takes
// depends on it much less.
inline double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

}  // namespace glimpse
