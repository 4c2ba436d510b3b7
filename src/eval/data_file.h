// Evaluation cases brought by the user: `glimpse eval --data FILE.jsonl` (docs/eval.md).
//
// One JSON object per line (blank lines are skipped):
//   context         string, non-empty   the long text
//   question        string, non-empty   asked after it (context + "\n\n" + question)
//   answers         list of strings     optional; empty or absent: open-ended (scored by
//                                       word F1 against the full-cache answer)
//   scoring         "match_all" | "match_part"   optional, default match_all (every
//                                       answer must appear); match_part: any one
//   task            string              optional family name for the tables, default
//                                       "data"; letters, digits, '_', '-', '.'
//   id              string or integer   optional, default "<task>/<line>"; unique
//   max_new_tokens  integer 1..4096     optional, default 64
//   evidence        list of strings     optional; each occurs verbatim in the context (the
//                                       facts the answer needs: evidence recall)
//   meta            object              optional, carried along untouched
// Any other field is an error (a misspelt "answer" would silently make a case open-ended).
//
// A case becomes a Sample with target_tokens 0 (its length is whatever its text gives) and
// seed = a hash of its content (id included), so editing a line re-runs that case only.
#pragma once

#include <string>
#include <vector>

#include "eval/tasks.h"

namespace glimpse::eval {

// Parses one line; line_no (1-based) makes the default id, `where` ("FILE:LINE") opens
// every error message.
Sample parse_data_line(const std::string& line, size_t line_no, const std::string& where);

// Every case of the file, in order; meta gets "line" (and keeps the line's own meta under
// "user"). Throws Error on an unreadable or empty file, a bad line (with its number) or a
// repeated id.
std::vector<Sample> load_data_file(const std::string& path);

}  // namespace glimpse::eval
