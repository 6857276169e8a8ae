// The outputs of an eval: DIR/<eval>.json (every cell), DIR/<eval>.md (score pivots per mode + every cell)
// and DIR/<eval>_<mode>.png (score grid: rows depth or task, columns length, red 0 -> green 1, with labels,
// the KV reduction under each column and a legend). Re-running one cell merges it into an existing JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/status.h"
#include "eval/eval_runner.h"
#include "runtime/heatmap_png.h"

namespace razor::eval {

struct EvalReport {
  std::string eval;          // "needle" | "passkey" | "ruler"
  std::string model;         // model path
  nlohmann::json settings;   // flags of the run (kernels, window, ...), free form
  std::vector<CellResult> cells;
  // Picture text (defaults fit the needle-style evals).
  std::string legend = "score: fraction of the needle values in the answer";
  std::string column_axis = "prompt tokens";
  std::string row_axis;      // empty: "depth %" / "task" / "task @ depth %" from the cells
  std::string title;         // empty: "<eval> - kv <mode>"
  bool show_reduction = true;  // the "KV cut" line under the grid
};

nlohmann::json ToJson(const CellResult& c);
Result<CellResult> CellFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const EvalReport& r);
Result<EvalReport> ReportFromJson(const nlohmann::json& j);
Result<EvalReport> ReadReport(const std::string& path);

// Replaces the cells of `into` with the same (task, mode, length, depth) as a cell of `update`, adds the
// others, and sorts by mode (full, razor, streaming), task, length, depth.
void MergeCells(std::vector<CellResult>* into, const std::vector<CellResult>& update);

// Score colour: red (0) -> yellow (0.5) -> green (1).
void ScoreColour(double score, uint8_t rgb[3]);

std::string MarkdownReport(const EvalReport& r);
RgbImage RenderScoreGrid(const EvalReport& r, const std::string& mode);

// Writes the JSON, the markdown and one PNG per mode present into `dir` (created if missing).
Status WriteReport(const std::string& dir, const EvalReport& r);

}  // namespace razor::eval
