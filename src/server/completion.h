// One completion request run on the engine: the prompt's tokens (chat template for chat
// requests), then generate() -- the request path every frontend uses -- with the request's
// sampling, stop strings and KV policy, on a context of its own that is freed on return.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"
#include "server/api.h"
#include "util/thread_pool.h"

namespace glimpse {

// The prompt's tokens; *n_compress = the tokens a query-agnostic policy compresses (those
// before the last message), or all of them.
std::vector<int32_t> completion_prompt(const Engine& engine, const CompletionRequest& r,
                                       int64_t* n_compress);

struct CompletionOutput {
  std::string text;
  std::string stop_reason;  // generate()'s: "eos", "stop", "length", "context"; "cancelled"
  CompletionStats stats;
};

// Runs the request. on_text receives the text as it completes; returning false cancels the
// generation (the client went away): the output then has stop_reason "cancelled". A prompt
// that leaves no room to generate throws ApiError 400 (context_length_exceeded); an Error of
// the request (e.g. a policy it cannot use) is a 400 as well.
CompletionOutput run_completion(const std::shared_ptr<const Engine>& engine,
                                const CompletionRequest& r, ThreadPool* pool,
                                const std::function<bool(std::string_view)>& on_text);

}  // namespace glimpse
