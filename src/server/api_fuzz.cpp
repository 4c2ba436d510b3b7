// libFuzzer target: any request body must parse or be refused with ApiError (a 4xx), never
// crash, for both endpoints; whatever parses must render into a response without throwing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const bool chat : {true, false}) {
    try {
      const glimpse::CompletionRequest r =
          glimpse::parse_completion_request(body, chat, glimpse::ApiLimits{}, glimpse::ApiDefaults{});
      const glimpse::CompletionStats s;
      (void)glimpse::sse_event(glimpse::completion_response(r, "id", 0, std::string(body), "eos", s));
    } catch (const glimpse::ApiError& e) {
      if (e.status() < 400 || e.status() > 499) __builtin_trap();
    }
  }
  return 0;
}
