// What one completion request turns into for the request path: the prompt's tokens (chat
// template for chat requests), the GenerateParams of runtime/generate.h, and the statistics
// the response reports.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/context.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "server/api.h"

namespace glimpse {

// The prompt's tokens; *n_compress = the tokens a query-agnostic policy compresses (those
// before the last message), or all of them.
std::vector<int32_t> completion_prompt(const Engine& engine, const CompletionRequest& r,
                                       int64_t* n_compress);

// ApiError 400 (param context_length_exceeded) unless the prompt leaves room to generate.
void check_completion_fits(const Engine& engine, size_t n_prompt);

GenerateParams completion_params(const CompletionRequest& r, int64_t n_compress);

// Tokens, times and the KV held (vs the full cache) of a finished generation on ctx.
CompletionStats completion_stats(const CompletionRequest& r, const GenerateResult& g,
                                 const Context& ctx);

}  // namespace glimpse
