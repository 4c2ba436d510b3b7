// Open-ended tasks on natural text. They have no reference answer: the runner compares the
// output under an eviction policy with the output under the full cache (fidelity metrics
// in metrics.h), so `answers` is empty and scoring is kOpenEnded.
//
// open_summary: a passage that opens a corpus document, cut at a sentence to the budget;
//               "Summarize the text above in three sentences."
// open_qa:      the same kind of passage; the question asks about one of the opening page's
//               keywords that occurs in its first paragraphs (handbook pages carry keywords),
//               else about the first paragraph. Its question set adds a two-sentence
//               summary, the last paragraph, and the first paragraph (or the topic).
#include <fmt/format.h>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"

namespace glimpse::eval::detail {

Sample gen_open(std::string_view task, const TaskOptions& opt) {
  Rng rng(sample_seed(task, opt.target_tokens, opt.seed));
  const bool qa = task == "open_qa";
  Sample proto;
  proto.task = std::string(task);
  proto.scoring = Scoring::kOpenEnded;
  proto.max_new_tokens = qa ? 64 : 128;

  const DocPassage passage = doc_passage(opt, rng.next(), proto.max_new_tokens);
  const std::vector<size_t>& paras = passage.paragraphs;
  const CorpusDoc& doc = opt.corpus->doc_of(paras.at(0));
  proto.meta = {{"doc", doc.name}, {"title", doc.title}};
  if (qa) {
    // Keywords in a seeded order; the first found in the opening two paragraphs wins.
    std::vector<std::string> kws = doc.keywords;
    rng.shuffle(kws);
    std::string head = opt.corpus->paragraphs()[paras[0]];
    if (paras.size() > 1) head += "\n" + opt.corpus->paragraphs()[paras[1]];
    std::string keyword;
    for (const auto& k : kws)
      if (head.find(k) != std::string::npos) {
        keyword = k;
        break;
      }
    proto.meta["keyword"] = keyword;
    const std::string first_paragraph =
        "What is the first paragraph of the text above about? Answer in one or two sentences.";
    proto.question = keyword.empty()
        ? first_paragraph
        : fmt::format("According to the text above, what is {}? Answer in one or two sentences.",
                      keyword);
    // The question set (compress once, ask four): the sample's own, then questions that read
    // the whole passage, its end, and its start or its topic.
    nlohmann::json set = nlohmann::json::array();
    for (const std::string& q :
         {proto.question, std::string("Summarize the text above in two sentences."),
          std::string("What is the last paragraph of the text above about? Answer in one or two "
                      "sentences."),
          keyword.empty() ? std::string("What is the main topic of the text above? Answer in one "
                                        "sentence.")
                          : first_paragraph})
      set.push_back(question_entry(q, {}, {}, proto.max_new_tokens, proto.scoring));
    proto.meta["questions"] = std::move(set);
  } else {
    proto.question = "Summarize the text above in three sentences.";
  }

  return fit_doc_passage(proto, passage.segs, {}, opt, task);
}

}  // namespace glimpse::eval::detail
