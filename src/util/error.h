// Error type for everything a user can cause (bad files, bad flags, over-long prompts).
// Tools catch it at the top and print one line; nothing below the CLI prints or exits.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace glimpse {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace glimpse
