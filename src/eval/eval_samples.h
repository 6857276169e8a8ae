// `razor eval --samples K`: K samples per (task, length, depth) cell, each with its own seed (so its own
// needle values, keys and distractor positions), the same K for every mode of the cell (a paired comparison),
// aggregated into one CellResult per mode: correct count, accuracy, its 95 % Wilson interval, mean score.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/eval_runner.h"

namespace razor::eval {

// Seed of sample k (0-based) of a cell: the cell formula applied to base_seed + k, so sample 0 is the cell's
// single sample of --samples 1 (today's prompts), and sample k of --seed S is sample 0 of --seed S + k.
uint64_t SampleSeed(uint64_t base_seed, const std::string& task, int64_t length, int depth, int k);

// A sample is correct when its score is 1: every expected value is in the answer.
bool IsCorrect(double score);

// One cell from its K >= 1 runs of one mode (same task, mode, length, depth), in sample order, with the seed
// of each. K == 1 returns the run as it is. K > 1: samples = K, correct, accuracy = correct / K, the Wilson
// interval, score / kv_bytes / full_kv_bytes / reduction / needle_depth / tok/s / seconds the means, the
// other fields from the first run, and per_sample the K seeds, scores, answers, expected values.
CellResult AggregateSamples(const std::vector<CellResult>& runs, const std::vector<uint64_t>& seeds);

}  // namespace razor::eval
