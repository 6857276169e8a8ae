#include "eval/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <unordered_set>

namespace razor::eval {
namespace {

const std::vector<std::string> kCities = {"Berlin", "Lisbon", "Nairobi", "Osaka",   "Toronto", "Lima",
                                          "Oslo",   "Cairo",  "Hanoi",   "Dublin",  "Santiago", "Prague",
                                          "Manila", "Quito",  "Tbilisi", "Reykjavik"};
const std::vector<std::string> kKeys = {"silent-harbor", "amber-falcon", "quiet-meadow", "copper-lantern",
                                        "velvet-river",  "hollow-pine",  "crimson-gate", "frozen-orchard",
                                        "golden-anchor", "misty-canyon", "scarlet-owl",  "brave-compass",
                                        "lunar-garden",  "rapid-willow", "stone-violin", "tidal-ember"};

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  int64_t Int(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(g_() % static_cast<uint64_t>(hi - lo + 1)); }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * (g_() >> 11) * (1.0 / 9007199254740992.0); }
  template <class T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(Int(0, int64_t(i) - 1))]);
  }
  // k distinct indices of [0, n).
  std::vector<size_t> Pick(size_t n, size_t k) {
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; ++i) idx[i] = i;
    Shuffle(idx);
    idx.resize(std::min(k, n));
    return idx;
  }

 private:
  std::mt19937_64 g_;
};

std::string Digits(Rng& rng, int n) {
  return std::to_string(rng.Int(static_cast<int64_t>(std::pow(10, n - 1)), static_cast<int64_t>(std::pow(10, n)) - 1));
}

std::string UpperName(Rng& rng) {
  std::string s(5, 'A');
  for (char& c : s) c = static_cast<char>('A' + rng.Int(0, 25));
  return s;
}

int64_t SumTokens(const std::vector<std::string>& texts, const TokenCounter& count) {
  int64_t t = 0;
  for (const auto& s : texts) t += count(s);
  return t;
}

void NeedleTask(const TaskInputs& in, int64_t doc, int depth, Rng& rng, EvalSample* s) {
  const std::string city = kCities[rng.Int(0, int64_t(kCities.size()) - 1)];
  const std::string value = Digits(rng, 7);
  s->instruction = "A special magic number is hidden within the following text. Make sure to memorize it. "
                   "I will quiz you about the number afterwards.";
  s->question = fmt::format("What is the special magic number for {} mentioned in the provided text?", city);
  s->answer_prefix = fmt::format("The special magic number for {} mentioned in the provided text is", city);
  s->expected = {value};
  PlaceNeedles(*in.essays, doc, {fmt::format("The special magic number for {} is {}.", city, value)}, {double(depth)},
               in.count, s);
}

void PasskeyTask(const TaskInputs& in, int64_t doc, int depth, Rng& rng, EvalSample* s) {
  const std::string key = Digits(rng, 5);
  s->instruction = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                   "I will quiz you about the important information there.";
  s->question = "What is the pass key?";
  s->answer_prefix = "The pass key is";
  s->expected = {key};
  PlaceNeedles(*in.noise, doc, {fmt::format("The pass key is {}. Remember it. {} is the pass key.", key, key)},
               {double(depth)}, in.count, s);
}

std::string KeyNeedle(const std::string& key, const std::string& value) {
  return fmt::format("One of the special magic numbers for {} is: {}.", key, value);
}

void NiahTask(const TaskInputs& in, int64_t doc, int depth, Rng& rng, int n_keys, int n_values, EvalSample* s) {
  const auto key_idx = rng.Pick(kKeys.size(), static_cast<size_t>(n_keys));
  const std::string key = kKeys[key_idx[0]];
  std::vector<std::string> needles;
  std::vector<double> depths;
  for (int v = 0; v < n_values; ++v) {
    std::string value = Digits(rng, 7);
    s->expected.push_back(value);
    needles.push_back(KeyNeedle(key, value));
    depths.push_back(v == 0 ? depth : rng.Uniform(0, 100));
  }
  for (int k = 1; k < n_keys; ++k) {  // distractors: other keys, their own numbers
    needles.push_back(KeyNeedle(kKeys[key_idx[k]], Digits(rng, 7)));
    depths.push_back(rng.Uniform(0, 100));
  }
  s->instruction = "Some special magic numbers are hidden within the following text. Make sure to memorize them. "
                   "I will quiz you about the numbers afterwards.";
  if (n_values == 1) {
    s->question = fmt::format("What is the special magic number for {} mentioned in the provided text?", key);
    s->answer_prefix = fmt::format("The special magic number for {} mentioned in the provided text is", key);
  } else {
    s->question = fmt::format("What are all the special magic numbers for {} mentioned in the provided text?", key);
    s->answer_prefix = fmt::format("The special magic numbers for {} mentioned in the provided text are", key);
    s->max_new_tokens = 48;
  }
  PlaceNeedles(*in.essays, doc, needles, depths, in.count, s);
}

void VariableTrackingTask(const TaskInputs& in, int64_t doc, int depth, Rng& rng, EvalSample* s) {
  constexpr int kNames = 5;  // 4 hops
  const std::string value = Digits(rng, 5);
  std::vector<std::string> names;
  while (static_cast<int>(names.size()) < kNames) {
    std::string n = UpperName(rng);
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  std::vector<std::string> needles;
  std::vector<double> depths;
  for (int i = 0; i < kNames; ++i) {
    needles.push_back(i == 0 ? fmt::format("VAR {} = {}.", names[0], value)
                             : fmt::format("VAR {} = VAR {}.", names[i], names[i - 1]));
    depths.push_back(depth + (100.0 - depth) * i / kNames);  // in order, so the chain reads forwards
  }
  s->instruction = "Memorize and track the chain(s) of variable assignment hidden in the following text.";
  s->question = fmt::format("Question: Find all variables that are assigned the value {} in the text above.", value);
  s->answer_prefix = fmt::format(
      "Answer: According to the chain(s) of variable assignment in the text above, {} variables are assigned the "
      "value {}, they are:",
      kNames, value);
  s->expected = names;
  s->max_new_tokens = 32;
  PlaceNeedles(*in.noise, doc, needles, depths, in.count, s);
}

Result<bool> CommonWordsTask(const TaskInputs& in, int64_t doc, Rng& rng, EvalSample* s) {
  constexpr int kCommon = 10, kRare = 3;
  if (in.words.size() < 200) return Err("cwe needs a vocabulary of at least 200 words (the essay haystack)");
  const double per_entry = SumTokens({"123. harbor", "124. meadow", "125. falcon"}, in.count) / 3.0;
  const int64_t entries = std::max<int64_t>(60, static_cast<int64_t>(doc / per_entry));
  const int64_t common_freq = std::clamp<int64_t>(entries / 40, 5, 30);  // common words: <= ~25% of the list
  const int64_t rare_words =
      std::min<int64_t>(int64_t(in.words.size()) - kCommon, std::max<int64_t>(1, (entries - kCommon * common_freq) / kRare));
  auto idx = rng.Pick(in.words.size(), static_cast<size_t>(kCommon + rare_words));
  std::vector<std::string> list;
  for (int i = 0; i < kCommon; ++i) {
    s->expected.push_back(in.words[idx[i]]);
    for (int64_t f = 0; f < common_freq; ++f) list.push_back(in.words[idx[i]]);
  }
  for (size_t i = kCommon; i < idx.size(); ++i)
    for (int f = 0; f < kRare; ++f) list.push_back(in.words[idx[i]]);
  rng.Shuffle(list);
  std::string text;
  for (size_t i = 0; i < list.size(); ++i) text += fmt::format("{}{}. {}", i ? " " : "", i + 1, list[i]);
  s->document = std::move(text);
  s->instruction = "Below is a numbered list of words. In these words, some appear more often than others. "
                   "Memorize the ones that appear most often.";
  s->question = "Question: What are the 10 most common words in the above list?";
  s->answer_prefix = "Answer: The top 10 words that appear most often in the list are:";
  s->max_new_tokens = 48;
  return true;
}

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::string EvalSample::UserMessage() const {
  std::string m;
  if (!instruction.empty()) m += instruction + "\n\n";
  m += document;
  if (!question.empty()) m += "\n\n" + question;
  return m;
}

Filler Filler::Make(std::vector<std::string> sentences, const TokenCounter& count) {
  Filler f;
  f.sentences = std::move(sentences);
  f.tokens.reserve(f.sentences.size());
  for (const auto& s : f.sentences) f.tokens.push_back(std::max<int64_t>(1, count(s)));
  return f;
}

void PlaceNeedles(const Filler& filler, int64_t document_tokens, const std::vector<std::string>& needles,
                  const std::vector<double>& depths_pct, const TokenCounter& count, EvalSample* sample) {
  const int64_t needle_tokens = SumTokens(needles, count);
  const int64_t budget = std::max<int64_t>(0, document_tokens - needle_tokens);
  std::vector<size_t> picked;        // filler sentence indices, cycling
  std::vector<int64_t> cum = {0};    // [picked + 1] tokens before each boundary
  for (size_t i = 0; !filler.sentences.empty(); ++i) {
    const size_t j = i % filler.sentences.size();
    if (cum.back() + filler.tokens[j] > budget) break;
    picked.push_back(j);
    cum.push_back(cum.back() + filler.tokens[j]);
  }
  // Boundary of each needle: the one whose token offset is nearest to depth * total (ties: the earlier).
  std::vector<size_t> at(needles.size());
  for (size_t n = 0; n < needles.size(); ++n) {
    const double target = std::clamp(depths_pct[n], 0.0, 100.0) / 100.0 * static_cast<double>(cum.back());
    size_t best = 0;
    for (size_t k = 1; k < cum.size(); ++k)
      if (std::abs(cum[k] - target) < std::abs(cum[best] - target)) best = k;
    at[n] = best;
  }
  std::string doc;
  sample->needle_offsets.assign(needles.size(), 0);
  sample->needles = needles;
  auto add = [&](const std::string& s) {
    if (!doc.empty()) doc += ' ';
    doc += s;
  };
  for (size_t k = 0; k <= picked.size(); ++k) {
    for (size_t n = 0; n < needles.size(); ++n) {
      if (at[n] != k) continue;
      if (!doc.empty()) doc += ' ';
      sample->needle_offsets[n] = doc.size();
      doc += needles[n];
    }
    if (k < picked.size()) add(filler.sentences[picked[k]]);
  }
  sample->document = std::move(doc);
}

double MeasuredDepth(const EvalSample& sample, size_t i, const TokenCounter& count) {
  if (i >= sample.needle_offsets.size()) return 0;
  const int64_t total = count(sample.document);
  if (total <= 0) return 0;
  return static_cast<double>(count(std::string_view(sample.document).substr(0, sample.needle_offsets[i]))) / total;
}

const std::vector<std::string>& RulerTaskNames() {
  static const std::vector<std::string> k = {"niah_single", "niah_multikey", "niah_multivalue", "vt", "cwe"};
  return k;
}

Result<EvalSample> MakeSample(const std::string& task, const TaskInputs& in, int64_t document_tokens, int depth_pct,
                              uint64_t seed) {
  EvalSample s;
  s.task = task;
  s.depth = depth_pct;
  Rng rng(seed);
  const bool needs_essays = task == "needle" || task.rfind("niah_", 0) == 0;
  const bool needs_noise = task == "passkey" || task == "vt";
  if (needs_essays && (!in.essays || in.essays->sentences.empty())) return Err(task + ": no essay haystack loaded");
  if (needs_noise && (!in.noise || in.noise->sentences.empty())) return Err(task + ": no filler loaded");
  if (task == "needle") NeedleTask(in, document_tokens, depth_pct, rng, &s);
  else if (task == "passkey") PasskeyTask(in, document_tokens, depth_pct, rng, &s);
  else if (task == "niah_single") NiahTask(in, document_tokens, depth_pct, rng, 1, 1, &s);
  else if (task == "niah_multikey") NiahTask(in, document_tokens, depth_pct, rng, 4, 1, &s);
  else if (task == "niah_multivalue") NiahTask(in, document_tokens, depth_pct, rng, 1, 4, &s);
  else if (task == "vt") VariableTrackingTask(in, document_tokens, depth_pct, rng, &s);
  else if (task == "cwe") {
    auto r = CommonWordsTask(in, document_tokens, rng, &s);
    if (!r) return r.status();
  } else {
    return Err(fmt::format("unknown task '{}' (needle, passkey, niah_single, niah_multikey, niah_multivalue, vt, cwe)",
                           task));
  }
  return s;
}

std::vector<std::string> DistinctWords(std::string_view text, size_t max_words) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  std::string w;
  auto flush = [&] {
    if (w.size() >= 3 && w.size() <= 12 && seen.insert(w).second) out.push_back(w);
    w.clear();
  };
  bool clean = true;  // the word has only letters
  for (size_t i = 0; i <= text.size() && out.size() < max_words; ++i) {
    const char c = i < text.size() ? text[i] : ' ';
    if (std::isalpha(static_cast<unsigned char>(c))) {
      w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '\'' || c == '-' || (c & 0x80)) {
      clean = false;
      w += c;
    } else {
      if (!clean) w.clear();
      flush();
      clean = true;
    }
  }
  return out;
}

double ScoreAnswer(std::string_view answer, const std::vector<std::string>& expected) {
  if (expected.empty()) return 0;
  std::string a(answer);
  for (char& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int found = 0;
  for (const auto& e0 : expected) {
    std::string e = e0;
    for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (e.empty()) continue;
    for (size_t p = a.find(e); p != std::string::npos; p = a.find(e, p + 1)) {
      const bool left = p == 0 || !IsWordChar(a[p - 1]) || !IsWordChar(e.front());
      const size_t end = p + e.size();
      const bool right = end >= a.size() || !IsWordChar(a[end]) || !IsWordChar(e.back());
      if (left && right) {
        ++found;
        break;
      }
    }
  }
  return static_cast<double>(found) / static_cast<double>(expected.size());
}

}  // namespace razor::eval
