// Resident memory of this process, read from /proc/self/status (Linux). 0 if unavailable.
// ru_maxrss is not used for the peak: Linux carries it over from the parent across exec.
#pragma once

#include <cstddef>
#include <cstdio>

namespace glimpse {

inline size_t proc_status_kib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256], fmt[64];
  std::snprintf(fmt, sizeof fmt, "%s: %%zu kB", field);
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, fmt, &kib) == 1) break;
  std::fclose(f);
  return kib;
}

inline size_t current_rss_bytes() { return proc_status_kib("VmRSS") * 1024; }
inline size_t peak_rss_bytes() { return proc_status_kib("VmHWM") * 1024; }

}  // namespace glimpse
