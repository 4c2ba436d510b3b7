// Random keys and values for the synthetic tasks: readable two-word keys, pronounceable
// pseudo-words, fixed-width numbers and UUIDs, all drawn from an Rng (see rng.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/rng.h"

namespace glimpse::eval {

// Built-in lists of common English adjectives and concrete nouns (written for this project).
const std::vector<std::string>& adjectives();
const std::vector<std::string>& nouns();

// Given and family names of the waiting-line tasks (tasks_parallel.cpp); none is a
// training name (train_words.h).
const std::vector<std::string>& customer_given_names();   // "Beatriz", "Columba", ...
const std::vector<std::string>& customer_family_names();  // "Achterberg", "Quintero", ...

// "adjective-noun", e.g. "quiet-harbor" (several thousand combinations).
std::string random_key(Rng& rng);
// n distinct keys; no two share a word (while n fits the lists).
std::vector<std::string> distinct_keys(Rng& rng, size_t n);

// A pronounceable lowercase pseudo-word of min..max consonant-vowel syllables, e.g. "tavimo".
std::string pseudo_word(Rng& rng, int min_syllables, int max_syllables);
// n distinct pseudo-words; none equals a word in `avoid`.
std::vector<std::string> distinct_pseudo_words(Rng& rng, size_t n, int min_syllables,
                                               int max_syllables,
                                               const std::vector<std::string>& avoid = {});

// A decimal number with exactly `digits` digits (no leading zero).
std::string random_number(Rng& rng, int digits);
// n distinct numbers of `digits` digits.
std::vector<std::string> distinct_numbers(Rng& rng, size_t n, int digits);

// UUID-like lowercase hex string 8-4-4-4-12 (random bits, version nibble 4 as in RFC 4122).
std::string random_uuid(Rng& rng);
// `n_hex` lowercase hex digits.
std::string random_hex(Rng& rng, int n_hex);

}  // namespace glimpse::eval
