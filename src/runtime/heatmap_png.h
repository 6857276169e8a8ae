// A picture of a head profile: layers (rows) x heads (columns), induction and echo side by side, each as a
// KV-head grid and the query-head grid it came from, in a viridis colour map (0 .. the metric's max),
// retrieval KV heads outlined in red, with a colour bar per metric. Written as PNG through libpng.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/head_profile.h"

namespace razor {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3] row-major RGB
  void Fill(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b);
  const uint8_t* at(int x, int y) const { return &pixels[(static_cast<size_t>(y) * width + x) * 3]; }
};

// Viridis, t in [0, 1] (clamped): a degree-6 polynomial fit of matplotlib's map, within ~1/255 of it.
void Viridis(float t, uint8_t rgb[3]);

// Where a cell was drawn (for tests and for anyone adding annotations).
struct HeatmapLayout {
  int cell_w = 0, cell_h = 0;
  int induction_kv_x = 0, echo_kv_x = 0, grid_y = 0;  // top-left of the KV grids
  int kv_cell_w = 0;                                  // cell_w * group size
};

RgbImage RenderHeadProfile(const HeadProfile& profile, HeatmapLayout* layout = nullptr);
Status WritePng(const RgbImage& image, const std::string& path);
Status WriteHeadProfilePng(const HeadProfile& profile, const std::string& path);

}  // namespace razor
