#include "util/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/error.h"

namespace glimpse {

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(fmt::format("{}.tmp.{}", path_, (long)getpid())) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("cannot write '{}': {}", tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (!f_) return;  // committed, or commit() failed and cleaned up
  std::fclose(f_);
  std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* p, size_t n) {
  if (!f_) fail("cannot write '{}': already committed", tmp_);
  if (n && std::fwrite(p, 1, n, f_) != n) fail("cannot write '{}': {}", tmp_, std::strerror(errno));
}

void AtomicFile::commit() {
  if (!f_) fail("cannot write '{}': already committed", tmp_);
  const bool flushed = std::fflush(f_) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!flushed || !closed) {
    const int err = errno;
    std::remove(tmp_.c_str());
    fail("cannot write '{}': {}", tmp_, std::strerror(err));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp_.c_str());
    fail("cannot rename '{}' to '{}': {}", tmp_, path_, std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  AtomicFile f(path);
  f.write(data, n);
  f.commit();
}

}  // namespace glimpse
