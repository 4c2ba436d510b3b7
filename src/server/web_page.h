// The page glimpse serve shows at "/": paste or upload a document, ask a question, pick the
// KV policy and budget, watch the answer stream in with the KV memory and timings it took.
// Plain HTML and JavaScript in one string (no build step, nothing fetched from elsewhere).
#pragma once

#include <string>
#include <vector>

namespace glimpse {

// The page, with the policy menu filled from `policies` (the first is preselected when
// `preselect` is empty) and the model id shown in the title bar.
std::string web_page(const std::vector<std::string>& policies, const std::string& preselect,
                     const std::string& model_id);

}  // namespace glimpse
