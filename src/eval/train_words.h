// Word lists of the training prompts only (train_prompts.cpp). They share no word with the
// evaluation's key lists (words.h), so a LookaheadKV module never trains on the keys,
// names or items that evaluation needles use; train_prompts_test.cpp checks the lists.
#pragma once

#include <string>
#include <vector>

namespace glimpse::eval {

const std::vector<std::string>& train_given_names();   // "Ines", "Tomasz", ...
const std::vector<std::string>& train_family_names();  // "Varga", "Okafor", ...
const std::vector<std::string>& train_shades();        // "crimson", "teal", ... (record items)
const std::vector<std::string>& train_objects();       // "stapler", "kayak", ...
const std::vector<std::string>& train_number_words();  // "two" .. "twelve"

}  // namespace glimpse::eval
