// Per-family views of an evaluation run, for the summary: which task families the model
// solves with the full cache (above the floor), each policy's task score per family at every
// budget, and how one policy fares against each of the others, family by family.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace glimpse::eval {

// A family is above the floor when the full cache scores at least this on it: below, the
// model cannot do the task even without eviction and the task score says nothing about a
// policy (KL and top-1 still do).
inline constexpr double kFloorScore = 1.0 / 3.0;

// Markdown sections over predictions rows: "Full cache per family", "Score per family at
// budget B" (one table per budget, the best policy other than the oracle in bold) and, when
// `focus` ran, "FOCUS against each policy" (per budget: mean score difference over the
// families above the floor and the count of families won / tied / lost).
std::string family_tables(const std::vector<nlohmann::json>& rows,
                          const std::string& focus = "lookahead");

// The family of a task name (eval/tasks.h); a --data file's own task names are their own
// family.
std::string family_of(const std::string& task);

}  // namespace glimpse::eval
