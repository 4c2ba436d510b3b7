// Returns freed heap memory to the OS. glibc keeps large freed blocks in the heap once its
// dynamic mmap threshold has grown, so buffers released by KV eviction would otherwise
// still count as resident.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace glimpse {

inline void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace glimpse
