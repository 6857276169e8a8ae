// The long-context tasks razor evaluates, generated here (no external data beyond the essay filler):
//   needle           Paul Graham essays + "The special magic number for <city> is <7 digits>." at a depth
//   passkey          repeated filler ("The grass is green. ...") + a 5-digit pass key at a depth
//   ruler tasks (Hsieh et al. 2024, "RULER"), re-implemented:
//     niah_single      essays + one word-keyed 7-digit needle
//     niah_multikey    essays + the asked needle and 3 distractor needles with other keys
//     niah_multivalue  essays + 4 needles with the same key and different values; all must be returned
//     vt               variable tracking: a chain VAR A = 12345, VAR B = VAR A, ... (5 names) in filler
//     cwe              common-word extraction: a numbered word list where 10 words repeat most often
// A sample is a document of about `document_tokens` tokens (counted with the caller's TokenCounter) plus the
// instruction, the question and the start of the answer (RULER's answer prefix, which small models need).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace razor::eval {

using TokenCounter = std::function<int64_t(std::string_view)>;

struct EvalSample {
  std::string task;
  int depth = 0;                        // requested depth of the (first) needle, percent of the document
  std::string instruction;              // before the document
  std::string document;                 // filler with the needle(s)
  std::string question;                 // after the document
  std::string answer_prefix;            // the assistant's answer starts with this text
  std::vector<std::string> expected;    // score = fraction of these found in the answer
  std::vector<size_t> needle_offsets;   // byte offset of each inserted needle in `document`, in insertion order
  std::vector<std::string> needles;     // the inserted sentences, same order
  int max_new_tokens = 16;

  // instruction, document and question as one user message.
  std::string UserMessage() const;
};

// Filler and its token counts, computed once per length sweep.
struct Filler {
  std::vector<std::string> sentences;
  std::vector<int64_t> tokens;  // [sentences] tokens of each sentence
  static Filler Make(std::vector<std::string> sentences, const TokenCounter& count);
};

// Places `needles` in sentences of `filler` (taken from the start, cycling) totalling about
// `document_tokens` tokens including the needles. Needle i goes to the sentence boundary nearest to
// depths_pct[i] percent of the filler tokens (0: before the first sentence, 100: after the last); needles
// at the same boundary keep their order. Fills sample.document / needle_offsets / needles.
void PlaceNeedles(const Filler& filler, int64_t document_tokens, const std::vector<std::string>& needles,
                  const std::vector<double>& depths_pct, const TokenCounter& count, EvalSample* sample);

// Fraction of the document's tokens before needle i (measured with `count`), in [0, 1].
double MeasuredDepth(const EvalSample& sample, size_t i, const TokenCounter& count);

// The task names `razor eval ruler --tasks` accepts, in order.
const std::vector<std::string>& RulerTaskNames();

struct TaskInputs {
  const Filler* essays = nullptr;   // needle, niah_*
  const Filler* noise = nullptr;    // passkey, vt (PasskeyFillerSentences)
  std::vector<std::string> words;   // cwe vocabulary (distinct lower-case words)
  TokenCounter count;
};

// One sample of `task` ("needle", "passkey" or a ruler task) with a document of about document_tokens
// tokens, the (first) needle at depth_pct, random values drawn from `seed` (same seed: same sample).
Result<EvalSample> MakeSample(const std::string& task, const TaskInputs& in, int64_t document_tokens, int depth_pct,
                              uint64_t seed);

// Distinct lower-case alphabetic words of `text` (3..12 letters), in first-seen order.
std::vector<std::string> DistinctWords(std::string_view text, size_t max_words);

// Fraction of `expected` that occurs in `answer` (case-insensitive; a number must not be part of a longer
// number, a word not part of a longer word). 0 when expected is empty.
double ScoreAnswer(std::string_view answer, const std::vector<std::string>& expected);

}  // namespace razor::eval
