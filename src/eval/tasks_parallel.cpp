// ParallelBench-style tasks: short prompts whose answers a draft that guesses several tokens
// at once gets wrong in telling ways (copy-like lists are easy to draft, reorderings and
// puzzles are not). Their own generator, names and seeds; they do not fill a target length
// (TaskInfo::fixed_length) and are scored by the checks in metrics.h.
//
// Waiting line (wl_*): a service desk's queue of 3-6 "First Last" customers and one
//   instruction; one worked example (another queue, the same instruction) comes first; the
//   answer is the final queue only, as ["First Last", ...].
//   copy, sort (by first name), reverse: exact; shuffle: same people, another order;
//   insert/remove/replace at a 0-based index: exact; insert/remove/replace anywhere: valid
//   if the result is one such edit of the queue.
// latin_square: a 4x4 grid of A-D with 4 givens, every row and column a permutation.
// sudoku: a 4x4 Sudoku (digits 1-4, 2x2 boxes) with 12 givens and one solution.
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "eval/tasks_internal.h"
#include "eval/words.h"
#include "util/error.h"

namespace glimpse::eval::detail {

const std::vector<std::pair<std::string_view, std::string_view>>& parallel_task_summaries() {
  static const std::vector<std::pair<std::string_view, std::string_view>> v = {
      {"wl_copy", "waiting line: write the queue as it is"},
      {"wl_sort", "waiting line: sort the queue by first name"},
      {"wl_reverse", "waiting line: reverse the queue"},
      {"wl_shuffle", "waiting line: any other order of the same people"},
      {"wl_insert_index", "waiting line: insert a person at a 0-based position"},
      {"wl_remove_index", "waiting line: remove the person at a 0-based position"},
      {"wl_replace_index", "waiting line: replace the person at a 0-based position"},
      {"wl_insert_random", "waiting line: insert a person anywhere"},
      {"wl_remove_random", "waiting line: remove any one person"},
      {"wl_replace_random", "waiting line: replace any one person"},
      {"latin_square", "complete a 4x4 Latin square of A-D from 4 givens"},
      {"sudoku", "solve a 4x4 Sudoku with 12 givens"}};
  return v;
}

namespace {

using Names = std::vector<std::string>;

std::string list_text(const Names& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}\"{}\"", i ? ", " : "", v[i]);
  return s + "]";
}

// n distinct "First Last" customers (no first or last name repeated).
Names customers(Rng& rng, size_t n) {
  Names given = customer_given_names(), family = customer_family_names();
  rng.shuffle(given);
  rng.shuffle(family);
  Names out;
  for (size_t i = 0; i < n; ++i) out.push_back(given.at(i) + " " + family.at(i));
  return out;
}

// One waiting-line case: the queue, the instruction and what scoring needs.
struct LineCase {
  Names queue;
  std::string instruction;
  Names answers;
};

LineCase line_case(std::string_view op, Rng& rng) {
  LineCase c;
  const Names people = customers(rng, 7);  // up to 6 in line + one newcomer
  c.queue.assign(people.begin(), people.begin() + rng.range(3, 6));
  const std::string& newcomer = people[6];
  const size_t n = c.queue.size();
  const size_t at = (size_t)rng.below(op == "wl_insert_index" ? n + 1 : n);
  Names r = c.queue;
  if (op == "wl_copy") {
    c.instruction = "Write the line exactly as it is.";
  } else if (op == "wl_sort") {
    c.instruction = "Sort the line alphabetically by first name.";
    std::sort(r.begin(), r.end());
  } else if (op == "wl_reverse") {
    c.instruction = "Reverse the order of the line.";
    std::reverse(r.begin(), r.end());
  } else if (op == "wl_shuffle") {
    c.instruction = "Shuffle the line: put the same people in a different order.";
  } else if (op == "wl_insert_index") {
    c.instruction = fmt::format("\"{}\" joins the line at position {} (positions count from 0).", newcomer, at);
    r.insert(r.begin() + (std::ptrdiff_t)at, newcomer);
  } else if (op == "wl_remove_index") {
    c.instruction = fmt::format("The person at position {} (positions count from 0) leaves the line.", at);
    r.erase(r.begin() + (std::ptrdiff_t)at);
  } else if (op == "wl_replace_index") {
    c.instruction = fmt::format("\"{}\" takes the place of the person at position {} (positions count from 0).",
                                newcomer, at);
    r[at] = newcomer;
  } else if (op == "wl_insert_random") {
    c.instruction = fmt::format("\"{}\" joins the line at any position you choose.", newcomer);
    r.push_back(newcomer);  // the input and the item
  } else if (op == "wl_remove_random") {
    c.instruction = "Any one person of your choice leaves the line.";
  } else if (op == "wl_replace_random") {
    c.instruction = fmt::format("\"{}\" takes the place of any one person of your choice.", newcomer);
    r.push_back(newcomer);
  } else {
    fail("unknown waiting-line task '{}'", op);
  }
  c.answers = r;
  return c;
}

// What a correct answer to an example case looks like (the worked example's answer).
Names example_answer(std::string_view op, const LineCase& c) {
  if (op == "wl_shuffle") {
    Names r = c.queue;
    std::rotate(r.begin(), r.begin() + 1, r.end());
    return r;
  }
  if (op == "wl_remove_random") return Names(c.queue.begin() + 1, c.queue.end());
  if (op == "wl_replace_random") {
    Names r = c.queue;
    r[0] = c.answers.back();
    return r;
  }
  return c.answers;
}

Sample waiting_line(std::string_view op, Rng& rng) {
  const LineCase ex = line_case(op, rng), c = line_case(op, rng);
  Sample s;
  s.context = fmt::format(
      "A customer-service desk records its waiting line from first to last as a list of "
      "names. Here is how an instruction changes a line.\n\nLine: {}\nInstruction: {}\n"
      "Final line: {}",
      list_text(ex.queue), ex.instruction, list_text(example_answer(op, ex)));
  s.question = fmt::format("Line: {}\nInstruction: {}\nGive only the final line, as a list like "
                           "[\"First Last\", ...].", list_text(c.queue), c.instruction);
  s.answers = c.answers;
  s.scoring = op == "wl_shuffle"          ? Scoring::kListShuffle
              : op == "wl_insert_random"  ? Scoring::kListInsertAny
              : op == "wl_remove_random"  ? Scoring::kListRemoveAny
              : op == "wl_replace_random" ? Scoring::kListReplaceAny
                                          : Scoring::kListExact;
  s.max_new_tokens = 96;
  s.meta = {{"queue", c.queue}, {"instruction", c.instruction}};
  return s;
}

using Grid = std::array<std::array<int, 4>, 4>;  // 0..3, -1 blank

// A random 4x4 grid whose rows and columns are permutations (and, with boxes, whose 2x2
// boxes are too): a fixed valid grid with its symbols, row pairs / rows within a pair and
// column pairs / columns within a pair permuted.
Grid random_grid(Rng& rng, bool boxes) {
  Grid g;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) g[r][c] = boxes ? (c + 2 * (r % 2) + r / 2) % 4 : (r + c) % 4;
  std::vector<int> sym = {0, 1, 2, 3};
  rng.shuffle(sym);
  auto perm4 = [&] {  // a permutation keeping 2x2 bands: pair order, then order inside each
    std::array<int, 4> p;
    const int first = (int)rng.below(2);
    const int a = (int)rng.below(2), b = (int)rng.below(2);
    p = {2 * first + a, 2 * first + 1 - a, 2 * (1 - first) + b, 2 * (1 - first) + 1 - b};
    return p;
  };
  const std::array<int, 4> rows = perm4(), cols = perm4();
  Grid out;
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) out[r][c] = sym[g[rows[r]][cols[c]]];
  return out;
}

bool valid_sudoku_cell(const Grid& g, int r, int c, int v) {
  for (int i = 0; i < 4; ++i)
    if (g[r][i] == v || g[i][c] == v) return false;
  for (int i = r / 2 * 2; i < r / 2 * 2 + 2; ++i)
    for (int j = c / 2 * 2; j < c / 2 * 2 + 2; ++j)
      if (g[i][j] == v) return false;
  return true;
}

int count_solutions(Grid& g, int limit) {
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c)
      if (g[r][c] < 0) {
        int n = 0;
        for (int v = 0; v < 4 && n < limit; ++v)
          if (valid_sudoku_cell(g, r, c, v)) {
            g[r][c] = v;
            n += count_solutions(g, limit - n);
            g[r][c] = -1;
          }
        return n;
      }
  return 1;
}

std::vector<std::string> grid_rows(const Grid& g, const char* symbols) {
  std::vector<std::string> rows;
  for (const auto& row : g) {
    std::string s;
    for (int c = 0; c < 4; ++c) s += fmt::format("{}{}", c ? "," : "", row[c] < 0 ? '.' : symbols[row[c]]);
    rows.push_back(s);
  }
  return rows;
}

Sample puzzle(std::string_view task, Rng& rng) {
  const bool sudoku = task == "sudoku";
  const char* symbols = sudoku ? "1234" : "ABCD";
  const Grid full = random_grid(rng, sudoku);
  Grid given = full;
  // Latin square: keep 4 cells; Sudoku: blank 4 cells, redrawn until the solution is unique.
  for (int tries = 0;; ++tries) {
    if (tries > 1000) fail("sudoku: no unique puzzle found");
    given = full;
    std::vector<int> cells(16);
    for (int i = 0; i < 16; ++i) cells[i] = i;
    rng.shuffle(cells);
    if (sudoku) {
      for (int i = 0; i < 4; ++i) given[cells[i] / 4][cells[i] % 4] = -1;
      Grid probe = given;
      if (count_solutions(probe, 2) == 1) break;
    } else {
      for (auto& row : given) row.fill(-1);
      for (int i = 0; i < 4; ++i) given[cells[i] / 4][cells[i] % 4] = full[cells[i] / 4][cells[i] % 4];
      break;
    }
  }
  Sample s;
  const std::vector<std::string> rows = grid_rows(given, symbols);
  std::string grid;
  for (const std::string& r : rows) grid += r + "\n";
  s.context = sudoku
      ? "A 4x4 Sudoku: fill the blanks (.) with the digits 1-4 so that every row, every column "
        "and every 2x2 box holds each digit once.\n\n" + grid
      : "A 4x4 Latin square: fill the blanks (.) with the letters A-D so that every row and "
        "every column holds each letter once, keeping the letters given.\n\n" + grid;
  s.question = "Give only the completed grid: four rows of four comma-separated symbols, like "
               "the rows above.";
  s.answers = sudoku ? grid_rows(full, symbols) : rows;
  s.scoring = sudoku ? Scoring::kGridExact : Scoring::kLatinSquare;
  s.max_new_tokens = 48;
  return s;
}

}  // namespace

Sample gen_parallel(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, 0, opt.seed));  // no length: the same prompt at every target
  Sample s = task.rfind("wl_", 0) == 0 ? waiting_line(task, rng) : puzzle(task, rng);
  s.task = std::string(task);
  s.seed = opt.seed;
  s.target_tokens = opt.target_tokens;
  s.id = fmt::format("{}/{}/{}", task, opt.target_tokens, opt.seed);
  s.prompt_tokens = opt.count_tokens(s.prompt());
  return s;
}

}  // namespace glimpse::eval::detail
