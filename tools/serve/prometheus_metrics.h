// /metrics: the scheduler's figures in Prometheus text format, named after vLLM's with a `razor:` prefix.
#pragma once

#include <string>

#include "serve/scheduler.h"

namespace razor::serve {

std::string FormatPrometheusMetrics(const SchedulerMetrics& m);

}  // namespace razor::serve
