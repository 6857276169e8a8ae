// The one validation layer for the CLI's numeric options and names. Every numeric option of every command
// is added through AddNumber, whose validator parses the text itself (strictly: the whole string, no
// wrap-around, finite, in [lo, hi], an integer where the option is integral) before CLI11 converts it.
// CLI::Range alone lets NaN through (every comparison with NaN is false) and leaves integer parsing to
// conversions that wrap (a uint64_t --seed of -1).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace razor::cli {

// Largest context / prompt / token count any option accepts: 2^24 tokens. Sums of two such counts fit
// an int, so `length + n_decode > ctx` can never overflow.
constexpr int64_t kMaxTokens = int64_t{1} << 24;

// Strict parses of one option value; errors are one line and name the option (`what`).
Result<int64_t> ParseInteger(const std::string& text, const std::string& what, int64_t lo, int64_t hi);
Result<uint64_t> ParseUnsigned(const std::string& text, const std::string& what, uint64_t lo, uint64_t hi);
Result<double> ParseFinite(const std::string& text, const std::string& what, double lo, double hi);

// CLI11 validators built on the parses above (they check the text; CLI11 then converts it).
CLI::Validator IntegerIn(int64_t lo, int64_t hi);
CLI::Validator UnsignedIn(uint64_t lo, uint64_t hi);
CLI::Validator FiniteIn(double lo, double hi);

// add_option + the validator that fits T + the default shown in --help.
template <class T>
CLI::Option* AddNumber(CLI::App* app, const std::string& flags, T* value, const std::string& help, T lo, T hi) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
  CLI::Option* opt = app->add_option(flags, *value, help)->capture_default_str();
  if constexpr (std::is_floating_point_v<T>) return opt->check(FiniteIn(double(lo), double(hi)));
  else if constexpr (std::is_unsigned_v<T>) return opt->check(UnsignedIn(uint64_t(lo), uint64_t(hi)));
  else return opt->check(IntegerIn(int64_t(lo), int64_t(hi)));
}

// "512,2048" -> {512, 2048}: every item an integer in [lo, hi], at least one. `what` names the list.
Result<std::vector<int>> ParseIntList(const std::string& s, const char* what, int lo, int hi);

// Threads a command may use: 1 .. the CPUs this process may run on (more only slows every kernel down and,
// at hundreds, runs out of memory for stacks).
int MaxThreads();

// A catalogue name (models/catalog.json): [A-Za-z0-9._-]+, not starting with '-' or '.', at most 100 chars.
// Checked before anything runs the pull script with it.
Status ValidateCatalogName(const std::string& name);

}  // namespace razor::cli
