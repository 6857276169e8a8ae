#include "cli_validate.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/thread_pool.h"

namespace razor::cli {
namespace {

// Leading/trailing blanks are a typo in a script more often than intended; refuse them like other junk.
bool Blank(const std::string& s) { return s.empty() || std::isspace(static_cast<unsigned char>(s.front())) ||
                                          std::isspace(static_cast<unsigned char>(s.back())); }

template <class T>
Result<T> ParseIntegral(const std::string& text, const std::string& what, T lo, T hi) {
  auto bad = [&] {
    return Err(fmt::format("{}{}'{}' is not an integer in [{}, {}]", what, what.empty() ? "" : ": ", text, lo, hi));
  };
  if (Blank(text)) return bad();
  const char* b = text.data();
  const char* e = b + text.size();
  if (*b == '+') ++b;  // from_chars takes no '+'
  T v{};
  auto [end, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || end != e || v < lo || v > hi) return bad();
  return v;
}

CLI::Validator Wrap(std::function<Status(const std::string&)> check, std::string desc) {
  return CLI::Validator(
      [check](std::string& s) -> std::string {
        Status st = check(s);
        return st.ok() ? std::string() : st.message();
      },
      std::move(desc));
}

}  // namespace

Result<int64_t> ParseInteger(const std::string& text, const std::string& what, int64_t lo, int64_t hi) {
  return ParseIntegral<int64_t>(text, what, lo, hi);
}

Result<uint64_t> ParseUnsigned(const std::string& text, const std::string& what, uint64_t lo, uint64_t hi) {
  return ParseIntegral<uint64_t>(text, what, lo, hi);
}

Result<double> ParseFinite(const std::string& text, const std::string& what, double lo, double hi) {
  auto bad = [&] {
    return Err(fmt::format("{}{}'{}' is not a finite number in [{}, {}]", what, what.empty() ? "" : ": ", text, lo, hi));
  };
  if (Blank(text)) return bad();
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v) || v < lo || v > hi) return bad();
  return v;
}

// The option's name is not known to a CLI11 validator (what = ""); CLI11 prefixes the message with it.
CLI::Validator IntegerIn(int64_t lo, int64_t hi) {
  return Wrap([=](const std::string& s) { return ParseInteger(s, "", lo, hi).status(); },
              fmt::format("INT in [{} - {}]", lo, hi));
}

CLI::Validator UnsignedIn(uint64_t lo, uint64_t hi) {
  return Wrap([=](const std::string& s) { return ParseUnsigned(s, "", lo, hi).status(); },
              fmt::format("UINT in [{} - {}]", lo, hi));
}

CLI::Validator FiniteIn(double lo, double hi) {
  return Wrap([=](const std::string& s) { return ParseFinite(s, "", lo, hi).status(); },
              fmt::format("NUMBER in [{} - {}]", lo, hi));
}

Result<std::vector<int>> ParseIntList(const std::string& s, const char* what, int lo, int hi) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto v = ParseInteger(item, what, lo, hi);
    if (!v) return Err(fmt::format("bad {} list '{}': expected integers >= {} and <= {} separated by commas", what, s,
                                   lo, hi));
    out.push_back(static_cast<int>(*v));
  }
  if (out.empty()) return Err(fmt::format("empty {} list", what));
  return out;
}

int MaxThreads() { return ThreadPool::UsableCpuCount(); }

Status ValidateCatalogName(const std::string& name) {
  auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  bool ok = !name.empty() && name.size() <= 100 && name[0] != '-' && name[0] != '.';
  for (char c : name) ok = ok && ok_char(c);
  if (ok) return Status::Ok();
  std::string shown;
  for (char c : name.substr(0, 60)) shown += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return Err(fmt::format("'{}' is neither an existing file nor a catalogue name (names use only letters, digits, "
                         "'.', '_' and '-'; see models/catalog.json)", shown));
}

}  // namespace razor::cli
