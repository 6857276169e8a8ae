#include "eval/eval_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "eval/bitmap_font.h"
#include "eval/eval_samples.h"
#include "eval/wilson_interval.h"

namespace razor::eval {
namespace {

int ModeOrder(const std::string& m) { return m == "full" ? 0 : m == "razor" ? 1 : m == "streaming" ? 2 : 3; }

auto Key(const CellResult& c) { return std::make_tuple(ModeOrder(c.mode), c.mode, c.task, c.length, c.depth); }

std::string MdEscape(std::string s) {
  std::string o;
  for (char c : s) {
    if (c == '|') o += "\\|";
    else if (c == '\n' || c == '\r') o += ' ';
    else o += c;
  }
  return o;
}

// Rows of the grid: depth when there is one task, task (and task@depth when several depths).
struct Grid {
  std::vector<std::string> row_labels;
  std::vector<int64_t> lengths;
  std::map<std::pair<size_t, int64_t>, std::pair<double, int>> sum;  // (row, length) -> (score sum, count)
  std::map<std::pair<size_t, int64_t>, std::pair<int64_t, int64_t>> hits;  // (row, length) -> (correct, samples)
  bool sampled = false;  // some cell holds K > 1 samples: show accuracy with its Wilson interval
  std::map<int64_t, std::pair<double, int>> reduction;               // length -> (sum, count)
  std::string row_axis;
};

Grid MakeGridCells(const EvalReport& r, const std::string& mode) {
  Grid g;
  std::set<std::string> tasks;
  std::set<int> depths;
  std::set<int64_t> lengths;
  std::vector<std::string> task_order;
  for (const auto& c : r.cells) {
    if (c.mode != mode) continue;
    if (tasks.insert(c.task).second) task_order.push_back(c.task);
    depths.insert(c.depth);
    lengths.insert(c.length);
  }
  g.lengths.assign(lengths.begin(), lengths.end());
  const bool by_task = tasks.size() > 1;
  const bool with_depth = !by_task || depths.size() > 1;
  g.row_axis = by_task ? (with_depth ? "task @ depth %" : "task") : "depth %";
  std::map<std::pair<std::string, int>, size_t> row_of;
  for (const auto& t : task_order)
    for (int d : depths) {
      if (!by_task) row_of[{t, d}] = g.row_labels.size(), g.row_labels.push_back(std::to_string(d));
      else if (with_depth) row_of[{t, d}] = g.row_labels.size(), g.row_labels.push_back(fmt::format("{} @{}", t, d));
      else row_of[{t, d}] = g.row_labels.size(), g.row_labels.push_back(t);
    }
  for (const auto& c : r.cells) {
    if (c.mode != mode) continue;
    auto& s = g.sum[{row_of[{c.task, c.depth}], c.length}];
    s.first += c.score;
    s.second += 1;
    auto& h = g.hits[{row_of[{c.task, c.depth}], c.length}];
    h.first += c.samples > 1 ? c.correct : (IsCorrect(c.score) ? 1 : 0);
    h.second += std::max<int64_t>(1, c.samples);
    g.sampled = g.sampled || c.samples > 1;
    auto& red = g.reduction[c.length];
    red.first += c.reduction;
    red.second += 1;
  }
  return g;
}

Grid MakeGrid(const EvalReport& r, const std::string& mode) {
  Grid g = MakeGridCells(r, mode);
  if (!r.row_axis.empty()) g.row_axis = r.row_axis;
  return g;
}

// "0.80 [0.49, 0.94] (8/10)": accuracy, 95 % Wilson interval, correct / samples.
std::string AccuracyText(int64_t correct, int64_t samples) {
  const Interval ci = WilsonInterval(correct, samples);
  const double acc = samples > 0 ? static_cast<double>(correct) / samples : 0;
  return fmt::format("{:.2f} [{:.2f}, {:.2f}] ({}/{})", acc, ci.lo, ci.hi, correct, samples);
}

}  // namespace

nlohmann::json ToJson(const CellResult& c) {
  nlohmann::json j = {{"task", c.task},
          {"mode", c.mode},
          {"length", c.length},
          {"depth", c.depth},
          {"prompt_tokens", c.prompt_tokens},
          {"needle_depth", c.needle_depth},
          {"score", c.score},
          {"answer", c.answer},
          {"expected", c.expected},
          {"kv_bytes", c.kv_bytes},
          {"full_kv_bytes", c.full_kv_bytes},
          {"reduction", c.reduction},
          {"heads_compressed", c.heads_compressed},
          {"window", c.window},
          {"prefill_tok_s", c.prefill_tok_s},
          {"decode_tok_s", c.decode_tok_s},
          {"seconds", c.seconds}};
  if (c.samples <= 1) return j;  // --samples 1: the JSON of before --samples
  j["samples"] = c.samples;
  j["correct"] = c.correct;
  j["accuracy"] = c.accuracy;
  j["wilson_lo"] = c.wilson_lo;
  j["wilson_hi"] = c.wilson_hi;
  j["mean_score"] = c.score;
  nlohmann::json per = nlohmann::json::array();
  for (const auto& s : c.per_sample)
    per.push_back({{"seed", s.seed}, {"score", s.score}, {"answer", s.answer}, {"expected", s.expected},
                   {"prompt_tokens", s.prompt_tokens}});
  j["per_sample"] = per;
  return j;
}

Result<CellResult> CellFromJson(const nlohmann::json& j) {
  try {
    CellResult c;
    c.task = j.at("task").get<std::string>();
    c.mode = j.at("mode").get<std::string>();
    c.length = j.at("length").get<int64_t>();
    c.depth = j.at("depth").get<int>();
    c.prompt_tokens = j.value("prompt_tokens", int64_t(0));
    c.needle_depth = j.value("needle_depth", -1.0);
    c.score = j.at("score").get<double>();
    c.answer = j.value("answer", std::string());
    c.expected = j.value("expected", std::vector<std::string>{});
    c.kv_bytes = j.value("kv_bytes", 0.0);
    c.full_kv_bytes = j.value("full_kv_bytes", 0.0);
    c.reduction = j.value("reduction", 0.0);
    c.heads_compressed = j.value("heads_compressed", int64_t(0));
    c.window = j.value("window", int64_t(0));
    c.prefill_tok_s = j.value("prefill_tok_s", 0.0);
    c.decode_tok_s = j.value("decode_tok_s", 0.0);
    c.seconds = j.value("seconds", 0.0);
    c.samples = j.value("samples", int64_t(1));
    c.correct = j.value("correct", int64_t(IsCorrect(c.score) ? 1 : 0));
    c.accuracy = j.value("accuracy", static_cast<double>(c.correct) / std::max<int64_t>(1, c.samples));
    const Interval ci = WilsonInterval(c.correct, c.samples);
    c.wilson_lo = j.value("wilson_lo", ci.lo);
    c.wilson_hi = j.value("wilson_hi", ci.hi);
    if (j.contains("per_sample"))
      for (const auto& s : j.at("per_sample"))
        c.per_sample.push_back({s.value("seed", uint64_t(0)), s.value("score", 0.0), s.value("answer", std::string()),
                                s.value("expected", std::vector<std::string>{}), s.value("prompt_tokens", int64_t(0))});
    return c;
  } catch (const std::exception& e) {
    return Err(std::string("bad eval cell: ") + e.what());
  }
}

nlohmann::json ToJson(const EvalReport& r) {
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& c : r.cells) cells.push_back(ToJson(c));
  return {{"eval", r.eval}, {"model", r.model}, {"settings", r.settings}, {"cells", cells}};
}

Result<EvalReport> ReportFromJson(const nlohmann::json& j) {
  EvalReport r;
  try {
    r.eval = j.at("eval").get<std::string>();
    r.model = j.value("model", std::string());
    r.settings = j.value("settings", nlohmann::json::object());
    for (const auto& c : j.at("cells")) {
      auto cell = CellFromJson(c);
      if (!cell) return cell.status();
      r.cells.push_back(*cell);
    }
  } catch (const std::exception& e) {
    return Err(std::string("bad eval report: ") + e.what());
  }
  return r;
}

Result<EvalReport> ReadReport(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Err(path + ": cannot open");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Err(path + ": not valid JSON");
  auto r = ReportFromJson(j);
  if (!r) return Err(path + ": " + r.error());
  return r;
}

void MergeCells(std::vector<CellResult>* into, const std::vector<CellResult>& update) {
  for (const auto& u : update) {
    auto same = [&](const CellResult& c) {
      return c.task == u.task && c.mode == u.mode && c.length == u.length && c.depth == u.depth;
    };
    auto it = std::find_if(into->begin(), into->end(), same);
    if (it != into->end()) *it = u;
    else into->push_back(u);
  }
  std::stable_sort(into->begin(), into->end(), [](const CellResult& a, const CellResult& b) { return Key(a) < Key(b); });
}

void ScoreColour(double score, uint8_t rgb[3]) {
  static constexpr double kRed[3] = {215, 48, 39}, kYellow[3] = {254, 224, 139}, kGreen[3] = {26, 152, 80};
  const double t = std::clamp(score, 0.0, 1.0);
  const double* a = t < 0.5 ? kRed : kYellow;
  const double* b = t < 0.5 ? kYellow : kGreen;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  for (int i = 0; i < 3; ++i) rgb[i] = static_cast<uint8_t>(a[i] + (b[i] - a[i]) * u + 0.5);
}

std::string MarkdownReport(const EvalReport& r) {
  std::string md = fmt::format("# razor eval {}\n\nmodel: `{}`  \nsettings: `{}`\n\n", r.eval, r.model, r.settings.dump());
  std::vector<std::string> modes;
  for (const auto& c : r.cells)
    if (std::find(modes.begin(), modes.end(), c.mode) == modes.end()) modes.push_back(c.mode);
  for (const auto& mode : modes) {
    const Grid g = MakeGrid(r, mode);
    if (g.sampled)
      md += fmt::format("## {}: accuracy [95 % Wilson interval] (correct / samples) ({} x prompt tokens)\n\n"
                        "A sample is correct when its score is 1. KV reduction, KV bytes and speeds: means over "
                        "the samples; prompt tokens, compressed heads and W: the first sample's.\n\n| {} |",
                        mode, g.row_axis, g.row_axis);
    else md += fmt::format("## {}: score ({} x prompt tokens)\n\n| {} |", mode, g.row_axis, g.row_axis);
    for (int64_t L : g.lengths) md += fmt::format(" {} |", L);
    md += "\n|---|";
    for (size_t i = 0; i < g.lengths.size(); ++i) md += "--:|";
    md += "\n";
    for (size_t row = 0; row < g.row_labels.size(); ++row) {
      md += fmt::format("| {} |", g.row_labels[row]);
      for (int64_t L : g.lengths) {
        auto it = g.sum.find({row, L});
        if (it == g.sum.end()) md += " - |";
        else if (g.sampled) {
          const auto& h = g.hits.at({row, L});
          md += fmt::format(" {} |", AccuracyText(h.first, h.second));
        } else md += fmt::format(" {:.2f} |", it->second.first / it->second.second);
      }
      md += "\n";
    }
    md += "| **KV reduction** |";
    for (int64_t L : g.lengths) {
      auto it = g.reduction.find(L);
      md += it == g.reduction.end() ? " - |" : fmt::format(" {:.1f}% |", 100.0 * it->second.first / it->second.second);
    }
    md += "\n\n";
  }
  md += "## Every cell\n\n| mode | task | length | depth | prompt tokens | score | answer | expected | KV MiB | KV "
        "reduction | compressed heads | W | prefill tok/s | decode tok/s |\n|---|---|--:|--:|--:|--:|---|---|--:|--:|--:|--:|--:|--:|\n";
  for (const auto& c : r.cells) {
    std::string expected, answer = c.answer, score = fmt::format("{:.2f}", c.score);
    for (const auto& e : c.expected) expected += (expected.empty() ? "" : ", ") + e;
    if (c.samples > 1) {  // every sample's answer and values, " / " between samples
      expected.clear(), answer.clear();
      for (const auto& s : c.per_sample) {
        std::string v;
        for (const auto& e : s.expected) v += (v.empty() ? "" : ", ") + e;
        expected += (expected.empty() ? "" : " / ") + v;
        answer += (answer.empty() ? "" : " / ") + s.answer;
      }
      score = AccuracyText(c.correct, c.samples) + fmt::format(", mean score {:.2f}", c.score);
    }
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {:.2f} | {:.1f}% | {} | {} | {:.1f} | {:.1f} |\n", c.mode,
                      c.task, c.length, c.depth, c.prompt_tokens, score, MdEscape(answer), MdEscape(expected),
                      c.kv_bytes / 1048576.0, 100.0 * c.reduction, c.heads_compressed, c.window, c.prefill_tok_s,
                      c.decode_tok_s);
  }
  return md;
}

RgbImage RenderScoreGrid(const EvalReport& r, const std::string& mode) {
  const Grid g = MakeGrid(r, mode);
  // With K > 1 samples a cell holds two lines: the accuracy and "lo-hi", its 95 % Wilson interval.
  constexpr int kScale = 2, kPad = 16;
  const int kCellW = g.sampled ? 120 : 96, kCellH = g.sampled ? 48 : 40;  // pixels
  const uint8_t black[3] = {20, 20, 20}, white[3] = {255, 255, 255}, grey[3] = {110, 110, 110};
  int label_w = TextWidth(g.row_axis, kScale);
  for (const auto& l : g.row_labels) label_w = std::max(label_w, TextWidth(l, kScale));
  const int grid_x = kPad + label_w + 12;
  const int title_h = 2 * (kGlyphH * kScale + 8) + 8;
  const int header_h = kGlyphH * kScale + 10;
  const int grid_y = kPad + title_h + header_h;
  const int cols = std::max<int>(1, static_cast<int>(g.lengths.size()));
  const int rows = std::max<int>(1, static_cast<int>(g.row_labels.size()));
  const int text_h = kGlyphH * kScale;
  const int red_y = grid_y + rows * kCellH + 8;           // "KV cut" line
  const int axis_y = red_y + text_h + 8;                   // column axis name
  const int legend_text_y = axis_y + text_h + 16;
  const int legend_y = legend_text_y + text_h + 6;         // colour bar
  const std::string model_name = std::filesystem::path(r.model).filename().string();
  const std::string title = r.title.empty() ? fmt::format("{} - kv {}", r.eval, mode) : r.title;
  const std::string legend =
      g.sampled && r.legend == EvalReport{}.legend ? "accuracy (score 1), below it the 95% Wilson interval" : r.legend;
  RgbImage img;
  img.width = std::max({grid_x + cols * kCellW + kPad, kPad * 2 + TextWidth(model_name, kScale),
                        kPad * 2 + TextWidth(legend, kScale), 420});
  img.height = legend_y + 20 + kGlyphH * kScale + 12 + kPad;
  img.pixels.assign(static_cast<size_t>(img.width) * img.height * 3, 255);
  DrawText(img, kPad, kPad, title, kScale, black);
  DrawText(img, kPad, kPad + kGlyphH * kScale + 8, model_name, kScale, grey);
  DrawText(img, kPad, grid_y - header_h, g.row_axis, kScale, grey);
  for (int c = 0; c < cols && c < static_cast<int>(g.lengths.size()); ++c) {
    const std::string s = std::to_string(g.lengths[c]);
    DrawText(img, grid_x + c * kCellW + (kCellW - TextWidth(s, kScale)) / 2, grid_y - header_h, s, kScale, black);
  }
  for (size_t row = 0; row < g.row_labels.size(); ++row) {
    const int y = grid_y + static_cast<int>(row) * kCellH;
    DrawText(img, grid_x - 12 - TextWidth(g.row_labels[row], kScale), y + (kCellH - kGlyphH * kScale) / 2,
             g.row_labels[row], kScale, black);
    for (size_t c = 0; c < g.lengths.size(); ++c) {
      const int x = grid_x + static_cast<int>(c) * kCellW;
      auto it = g.sum.find({row, g.lengths[c]});
      uint8_t rgb[3] = {225, 225, 225};
      std::string s = "-", ci;
      if (it != g.sum.end()) {
        double v = it->second.first / it->second.second;
        if (g.sampled) {
          const auto& h = g.hits.at({row, g.lengths[c]});
          const Interval w = WilsonInterval(h.first, h.second);
          v = static_cast<double>(h.first) / h.second;
          ci = fmt::format("{:.2f}-{:.2f}", w.lo, w.hi);
        }
        ScoreColour(v, rgb);
        s = fmt::format("{:.2f}", v);
      }
      img.Fill(x + 1, y + 1, kCellW - 2, kCellH - 2, rgb[0], rgb[1], rgb[2]);
      const double lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
      const uint8_t* ink = lum < 140 ? white : black;
      const int line_h = kGlyphH * kScale;
      if (ci.empty()) {
        DrawText(img, x + (kCellW - TextWidth(s, kScale)) / 2, y + (kCellH - line_h) / 2, s, kScale, ink);
      } else {  // two lines of line_h with a 4-pixel gap, centred
        const int top = y + (kCellH - 2 * line_h - 4) / 2;
        DrawText(img, x + (kCellW - TextWidth(s, kScale)) / 2, top, s, kScale, ink);
        DrawText(img, x + (kCellW - TextWidth(ci, kScale)) / 2, top + line_h + 4, ci, kScale, ink);
      }
    }
  }
  // Under each column: the measured KV reduction of this mode at that length.
  if (r.show_reduction) DrawText(img, grid_x - 12 - TextWidth("KV cut", kScale), red_y, "KV cut", kScale, grey);
  for (size_t c = 0; c < g.lengths.size() && r.show_reduction; ++c) {
    auto it = g.reduction.find(g.lengths[c]);
    if (it == g.reduction.end()) continue;
    const std::string s = fmt::format("{:.0f}%", 100.0 * it->second.first / it->second.second);
    DrawText(img, grid_x + static_cast<int>(c) * kCellW + (kCellW - TextWidth(s, kScale)) / 2, red_y, s, kScale, black);
  }
  DrawText(img, grid_x, axis_y, r.column_axis, kScale, grey);
  // Legend: colour bar 0 .. 1.
  const int bar_w = 300, bar_x = kPad;
  for (int i = 0; i < bar_w; ++i) {
    uint8_t rgb[3];
    ScoreColour(static_cast<double>(i) / (bar_w - 1), rgb);
    img.Fill(bar_x + i, legend_y, 1, 16, rgb[0], rgb[1], rgb[2]);
  }
  DrawText(img, bar_x, legend_y + 20, "0", kScale, black);
  DrawText(img, bar_x + bar_w / 2 - TextWidth("0.5", kScale) / 2, legend_y + 20, "0.5", kScale, black);
  DrawText(img, bar_x + bar_w - TextWidth("1", kScale), legend_y + 20, "1", kScale, black);
  DrawText(img, kPad, legend_text_y, legend, kScale, grey);
  return img;
}

Status WriteReport(const std::string& dir, const EvalReport& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Err(dir + ": cannot create directory: " + ec.message());
  const std::string base = dir + "/" + r.eval;
  {
    std::ofstream out(base + ".json");
    if (!out) return Err(base + ".json: cannot write");
    out << ToJson(r).dump(2) << "\n";
  }
  {
    std::ofstream out(base + ".md");
    if (!out) return Err(base + ".md: cannot write");
    out << MarkdownReport(r);
  }
  std::set<std::string> modes;
  for (const auto& c : r.cells) modes.insert(c.mode);
  for (const auto& m : modes) RAZOR_RETURN_IF_ERROR(WritePng(RenderScoreGrid(r, m), base + "_" + m + ".png"));
  return Status::Ok();
}

}  // namespace razor::eval
