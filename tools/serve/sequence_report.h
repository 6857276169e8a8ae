// GET /razor/sequences: the scheduler's running sequences as JSON, for the web page's KV panel (GET /):
// pool and totals, then per sequence its KV bytes held against a full cache's at its length, and the tokens
// every (layer, KV head) holds with which of them are compressed.
#pragma once

#include <nlohmann/json.hpp>

#include "serve/scheduler.h"

namespace razor::serve {

// pool_bytes: the scheduler's pool (metrics carry it only after the scheduler's first step).
nlohmann::json SequenceReport(const SchedulerMetrics& metrics, size_t pool_bytes);

}  // namespace razor::serve
