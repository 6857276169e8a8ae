#include "eval/haystack.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace razor::eval {

std::string DefaultHaystackDir() {
  if (const char* h = std::getenv("RAZOR_HOME"); h && *h) return std::string(h) + "/eval/haystack";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/razor/eval/haystack";
}

Result<std::string> LoadHaystackText(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Err(dir + ": no haystack directory (run scripts/fetch_eval_data.sh to fetch the essays)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  if (files.empty()) return Err(dir + ": no .txt files (run scripts/fetch_eval_data.sh to fetch the essays)");
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Err(f.string() + ": cannot read");
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
    all += "\n\n";
  }
  return all;
}

std::vector<std::string> SplitSentences(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool pending_space = false;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur);
    cur.clear();
    pending_space = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' || c == '\r') {
      // A blank line ends a paragraph (and so a sentence); a single line break is a space.
      if (i + 1 < text.size() && text[i + 1] == '\n') {
        flush();
        ++i;
      } else {
        pending_space = !cur.empty();
      }
      continue;
    }
    if (c == ' ' || c == '\t') {
      pending_space = !cur.empty();
      continue;
    }
    if (pending_space) cur += ' ';
    pending_space = false;
    cur += c;
    const bool end = (c == '.' || c == '?' || c == '!');
    const bool next_space = i + 1 >= text.size() || text[i + 1] == ' ' || text[i + 1] == '\n';
    // "e.g." or "U.S." mid-sentence stay together when the next visible character is lower-case.
    if (end && next_space) {
      size_t j = i + 1;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\n')) ++j;
      if (j >= text.size() || !(text[j] >= 'a' && text[j] <= 'z')) flush();
    }
  }
  flush();
  return out;
}

const std::vector<std::string>& PasskeyFillerSentences() {
  static const std::vector<std::string> k = {"The grass is green.", "The sky is blue.", "The sun is yellow.",
                                             "Here we go.", "There and back again."};
  return k;
}

}  // namespace razor::eval
