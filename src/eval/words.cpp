#include "eval/words.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace glimpse::eval {
namespace {

std::vector<std::string> split_words(const char* text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

const std::vector<std::string>& adjectives() {
  static const std::vector<std::string> v = split_words(
      "ancient bright calm clever cold curious dark distant dry eager early empty fancy "
      "fierce gentle golden grand green happy heavy hidden hollow honest humble icy jolly "
      "kind large lazy little lively lonely loud lucky mighty modern narrow noble odd old "
      "pale patient plain polite proud purple quick quiet rapid rare red rough round royal "
      "rusty sandy sharp shiny silent silver simple sleepy slow small smooth soft solid "
      "steady strange strong sunny sweet swift tall tender thin tiny wild wise warm wooden "
      "yellow young brave busy fresh frozen gray");
  return v;
}

const std::vector<std::string>& customer_given_names() {
  static const std::vector<std::string> v = split_words(
      "Beatriz Columba Dariusz Eskil Fenna Gideon Hanne Idris Jorunn Kasimir Liesel Marit "
      "Nikolai Orla Piet Quirin Rosalind Stellan Thandiwe Ulrike Vesna Wendell Xenia Yorick "
      "Zofia Anselm Brigid Cosimo Delphine Evander");
  return v;
}

const std::vector<std::string>& customer_family_names() {
  static const std::vector<std::string> v = split_words(
      "Achterberg Quintero Lindgren Oyelaran Vasquez Whitcombe Ferreira-Lima Tamminen Okonjo "
      "Halvorsen Bernadotte Castellano Drummond Eriksdottir Fairweather Grunewald Hollister "
      "Ibsen Jablonski Kettering Lombardi Montague Nakashima Oberlin Pemberton Rautio "
      "Sandoval Thackeray Underhill Valdivia");
  return v;
}

const std::vector<std::string>& nouns() {
  static const std::vector<std::string> v = split_words(
      "anchor apple arrow badge basket beacon bell bicycle blanket bottle bridge brush "
      "bucket button cabin camera candle canyon carpet castle cellar chair channel cherry "
      "circle cliff clock cloud coin comet compass cookie copper cottage crystal curtain "
      "desert diamond dolphin door dragon drum eagle engine falcon feather fence field "
      "flag flute forest fountain garden garlic glacier glove harbor helmet island jacket "
      "kettle kitten ladder lantern lemon letter lighthouse lizard magnet marble meadow "
      "mirror mountain needle orchard otter oven owl paddle palace panther parrot pebble "
      "pencil pepper piano pillow planet pocket pond puzzle rabbit ribbon river rocket "
      "saddle sailor shadow shell shovel signal spoon spring statue stone tablet teapot "
      "ticket tiger tower tractor trumpet tunnel turtle umbrella valley violin wagon "
      "wallet whistle window wizard");
  return v;
}

std::string random_key(Rng& rng) { return rng.pick(adjectives()) + "-" + rng.pick(nouns()); }

std::vector<std::string> distinct_keys(Rng& rng, size_t n) {
  // Keys share no word while the lists allow it ("dry-door" and "busy-door" would invite
  // confusions that are not about memory).
  const bool unique_words = n <= std::min(adjectives().size(), nouns().size());
  std::vector<std::string> out;
  std::set<std::string> seen;
  while (out.size() < n) {
    const std::string& a = rng.pick(adjectives());
    const std::string& b = rng.pick(nouns());
    if (unique_words && (seen.count(a) || seen.count(b))) continue;
    if (!seen.insert(a + "-" + b).second) continue;
    seen.insert(a);
    seen.insert(b);
    out.push_back(a + "-" + b);
  }
  return out;
}

std::string pseudo_word(Rng& rng, int min_syllables, int max_syllables) {
  // Consonants and vowels chosen so that syllables read easily; no "q" or "x".
  static const char* kCons = "bdfgklmnprstvz";
  static const char* kVow = "aeiou";
  const int n = (int)rng.range(min_syllables, max_syllables);
  std::string w;
  for (int i = 0; i < n; ++i) {
    w += kCons[rng.below(14)];
    w += kVow[rng.below(5)];
  }
  return w;
}

std::vector<std::string> distinct_pseudo_words(Rng& rng, size_t n, int min_syllables,
                                               int max_syllables,
                                               const std::vector<std::string>& avoid) {
  std::set<std::string> seen(avoid.begin(), avoid.end());
  std::vector<std::string> out;
  while (out.size() < n) {
    std::string w = pseudo_word(rng, min_syllables, max_syllables);
    if (seen.insert(w).second) out.push_back(std::move(w));
  }
  return out;
}

std::string random_number(Rng& rng, int digits) {
  std::string s(1, (char)('1' + rng.below(9)));
  for (int i = 1; i < digits; ++i) s += (char)('0' + rng.below(10));
  return s;
}

std::vector<std::string> distinct_numbers(Rng& rng, size_t n, int digits) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  while (out.size() < n) {
    std::string s = random_number(rng, digits);
    if (seen.insert(s).second) out.push_back(std::move(s));
  }
  return out;
}

std::string random_hex(Rng& rng, int n_hex) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n_hex; ++i) s += kHex[rng.below(16)];
  return s;
}

std::string random_uuid(Rng& rng) {
  std::string s = random_hex(rng, 8) + "-" + random_hex(rng, 4) + "-4" + random_hex(rng, 3) +
                  "-" + "89ab"[rng.below(4)] + random_hex(rng, 3) + "-" + random_hex(rng, 12);
  return s;
}

}  // namespace glimpse::eval
