#include "runtime/heatmap_png.h"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace razor {
namespace {

// A 5x7 bitmap font: each glyph is 7 rows of 5 columns, '#' set. Lower case is drawn as upper case.
struct Glyph {
  char c;
  const char* rows;  // 35 chars
};
constexpr Glyph kFont[] = {
    {'0', ".###.#...##..###.#.###..##...#.###."}, {'1', "..#...##....#....#....#....#...###."},
    {'2', ".###.#...#....#...#...#...#...#####"}, {'3', "#####...#...#.....#.....##...#.###."},
    {'4', "...#...##..#.#.#..#.#####...#....#."}, {'5', "######....####.....#....##...#.###."},
    {'6', "..##..#...#....####.#...##...#.###."}, {'7', "#####....#...#...#...#....#....#..."},
    {'8', ".###.#...##...#.###.#...##...#.###."}, {'9', ".###.#...##...#.####....#...#..##.."},
    {'A', ".###.#...##...#######...##...##...#"}, {'B', "####.#...##...#####.#...##...#####."},
    {'C', ".###.#...##....#....#....#...#.###."}, {'D', "###..#..#.#...##...##...##..#.###.."},
    {'E', "######....#....####.#....#....#####"}, {'F', "######....#....####.#....#....#...."},
    {'G', ".###.#...##....#.####...##...#.####"}, {'H', "#...##...##...#######...##...##...#"},
    {'I', ".###...#....#....#....#....#...###."}, {'J', "..###...#....#....#....#.#..#..##.."},
    {'K', "#...##..#.#.#..##...#.#..#..#.#...#"}, {'L', "#....#....#....#....#....#....#####"},
    {'M', "#...###.###.#.##.#.##...##...##...#"}, {'N', "#...##...###..##.#.##..###...##...#"},
    {'O', ".###.#...##...##...##...##...#.###."}, {'P', "####.#...##...#####.#....#....#...."},
    {'Q', ".###.#...##...##...##.#.##..#..##.#"}, {'R', "####.#...##...#####.#.#..#..#.#...#"},
    {'S', ".#####....#.....###.....#....#####."}, {'T', "#####..#....#....#....#....#....#.."},
    {'U', "#...##...##...##...##...##...#.###."}, {'V', "#...##...##...##...##...#.#.#...#.."},
    {'W', "#...##...##...##.#.##.#.##.#.#.#.#."}, {'X', "#...##...#.#.#...#...#.#.#...##...#"},
    {'Y', "#...##...#.#.#...#....#....#....#.."}, {'Z', "#####....#...#...#...#...#....#####"},
    {'.', "..........................##...##.."}, {'-', "...............#####..............."},
    {'(', "...#...#...#....#....#.....#.....#."}, {')', ".#.....#.....#....#....#...#...#..."},
    {':', "......##...##.........##...##......"}, {'/', ".........#...#...#...#...#........."},
    {'%', "##...##..#...#...#...#...#..##...##"}, {'=', "..........#####.....#####.........."},
    {',', "....................##....#...#...."}, {'+', ".......#....#..#####..#....#......."},
};

const char* GlyphRows(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kFont)
    if (g.c == c) return g.rows;
  return nullptr;  // space and anything unknown draw nothing
}

constexpr int kGlyphAdvance = 6;  // 5 columns + 1 space, in font pixels

int TextWidth(const std::string& s, int scale) { return static_cast<int>(s.size()) * kGlyphAdvance * scale - scale; }

void DrawText(RgbImage& img, int x, int y, const std::string& s, int scale, uint8_t shade) {
  for (char c : s) {
    if (const char* rows = GlyphRows(c))
      for (int r = 0; r < 7; ++r)
        for (int col = 0; col < 5; ++col)
          if (rows[r * 5 + col] == '#') img.Fill(x + col * scale, y + r * scale, scale, scale, shade, shade, shade);
    x += kGlyphAdvance * scale;
  }
}

void Outline(RgbImage& img, int x, int y, int w, int h, int t, uint8_t r, uint8_t g, uint8_t b) {
  img.Fill(x, y, w, t, r, g, b);
  img.Fill(x, y + h - t, w, t, r, g, b);
  img.Fill(x, y, t, h, r, g, b);
  img.Fill(x + w - t, y, t, h, r, g, b);
}

constexpr uint8_t kOutline[3] = {228, 26, 28};  // red: absent from viridis, so it never blends in

}  // namespace

void RgbImage::Fill(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  const int x0 = std::max(0, x), y0 = std::max(0, y);
  const int x1 = std::min(width, x + w), y1 = std::min(height, y + h);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) {
      uint8_t* p = &pixels[(static_cast<size_t>(yy) * width + xx) * 3];
      p[0] = r;
      p[1] = g;
      p[2] = b;
    }
}

void Viridis(float t, uint8_t rgb[3]) {
  t = std::clamp(t, 0.0f, 1.0f);
  static constexpr double c[7][3] = {
      {0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
      {0.1050930431085774, 1.404613529898575, 1.384590162594685},
      {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
      {-4.634230498983486, -5.799100973351585, -19.33244095627987},
      {6.228269936347081, 14.17993336680509, 56.69055260068105},
      {4.776384997670288, -13.74514537774601, -65.35303263337234},
      {-5.435455855934631, 4.645852612178535, 26.3124352495832},
  };
  for (int ch = 0; ch < 3; ++ch) {
    double v = c[6][ch];
    for (int k = 5; k >= 0; --k) v = v * t + c[k][ch];
    rgb[ch] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
  }
}

RgbImage RenderHeadProfile(const HeadProfile& p, HeatmapLayout* layout_out) {
  const ModelIdentity& m = p.model;
  const int group = m.n_heads / m.n_kv_heads;
  constexpr int kText = 2;        // font scale for titles and labels
  constexpr int kLineH = 7 * kText;
  constexpr int kMargin = 12, kGap = 10, kMetricGap = 28;
  const std::string titles[4] = {"INDUCTION  KV", "QUERY HEADS", "ECHO  KV", "QUERY HEADS"};
  int title_w = 0;
  for (const auto& t : titles) title_w = std::max(title_w, TextWidth(t, kText));

  // Cells: about 20 px, smaller for big models, wide enough that every grid fits its title.
  HeatmapLayout L;
  L.cell_h = std::clamp(640 / std::max(1, m.n_layers), 6, 20);
  L.cell_w = std::clamp(400 / std::max(1, m.n_heads), 4, 24);
  L.cell_w = std::max(L.cell_w, (title_w + m.n_heads - 1) / m.n_heads);
  L.kv_cell_w = L.cell_w * group;
  const int grid_w = m.n_heads * L.cell_w;
  const int grid_h = m.n_layers * L.cell_h;
  const bool every_layer = L.cell_h >= kLineH + 2;
  const int label_w = TextWidth(std::to_string(std::max(0, m.n_layers - 1)), kText) + 8;

  const int x0 = kMargin + label_w;
  const int xs[4] = {x0, x0 + grid_w + kGap, x0 + 2 * grid_w + kGap + kMetricGap, x0 + 3 * grid_w + 2 * kGap + kMetricGap};
  L.induction_kv_x = xs[0];
  L.echo_kv_x = xs[2];
  L.grid_y = kMargin + 2 * (kLineH + 8) + 4;  // headline + grid titles
  const int bar_y = L.grid_y + grid_h + 14;
  const int bar_h = 14;

  RgbImage img;
  img.width = xs[3] + grid_w + kMargin;
  img.height = bar_y + bar_h + 6 + kLineH + 8 + kLineH + kMargin;
  img.pixels.assign(static_cast<size_t>(img.width) * img.height * 3, 255);

  const int total = p.total_kv_heads();
  const int kept = static_cast<int>(p.retrieval.size());
  std::string head = fmt::format("{}: {} OF {} KV HEADS RETRIEVAL ({:.0f}%)", m.name.empty() ? m.architecture : m.name,
                                 kept, total, total ? 100.0 * kept / total : 0.0);
  // Model names may hold characters the font lacks; they simply draw as blanks.
  DrawText(img, kMargin, kMargin, head, kText, 0);
  for (int g = 0; g < 4; ++g) DrawText(img, xs[g], kMargin + kLineH + 8, titles[g], kText, 0);

  // Layer numbers down the left.
  for (int l = 0; l < m.n_layers; ++l) {
    if (!every_layer && l % 5 != 0) continue;
    const std::string s = std::to_string(l);
    const int ty = L.grid_y + l * L.cell_h + (L.cell_h - kLineH) / 2;
    DrawText(img, x0 - 8 - TextWidth(s, kText), std::max(ty, L.grid_y - 2), s, kText, 0);
  }

  const float max_ind = std::max(1e-9f, *std::max_element(p.q_induction.begin(), p.q_induction.end()));
  const float max_echo = std::max(1e-9f, *std::max_element(p.q_echo.begin(), p.q_echo.end()));
  uint8_t rgb[3];
  auto cell = [&](int x, int y, int w, int h, float v, float vmax) {
    Viridis(v / vmax, rgb);
    img.Fill(x, y, w - 1, h - 1, rgb[0], rgb[1], rgb[2]);  // 1 px white seam between cells
  };
  for (int l = 0; l < m.n_layers; ++l) {
    const int y = L.grid_y + l * L.cell_h;
    for (int h = 0; h < m.n_kv_heads; ++h) {
      const int xi = xs[0] + h * L.kv_cell_w, xe = xs[2] + h * L.kv_cell_w;
      cell(xi, y, L.kv_cell_w, L.cell_h, p.kv_induction_at(l, h), max_ind);
      cell(xe, y, L.kv_cell_w, L.cell_h, p.kv_echo_at(l, h), max_echo);
    }
    for (int h = 0; h < m.n_heads; ++h) {
      const size_t i = static_cast<size_t>(l) * m.n_heads + h;
      cell(xs[1] + h * L.cell_w, y, L.cell_w, L.cell_h, p.q_induction[i], max_ind);
      cell(xs[3] + h * L.cell_w, y, L.cell_w, L.cell_h, p.q_echo[i], max_echo);
    }
  }
  const int t = L.cell_h >= 10 ? 2 : 1;
  for (const KvHeadId& r : p.retrieval)
    for (int x : {xs[0], xs[2]})
      Outline(img, x + r.kv_head * L.kv_cell_w, L.grid_y + r.layer * L.cell_h, L.kv_cell_w - 1, L.cell_h - 1, t,
              kOutline[0], kOutline[1], kOutline[2]);

  // Colour bars, one per metric, spanning its two grids: 0 on the left, the metric's max on the right.
  const int bar_w = 2 * grid_w + kGap;
  for (int k = 0; k < 2; ++k) {
    const int bx = xs[2 * k];
    for (int x = 0; x < bar_w; ++x) {
      Viridis(static_cast<float>(x) / (bar_w - 1), rgb);
      img.Fill(bx + x, bar_y, 1, bar_h, rgb[0], rgb[1], rgb[2]);
    }
    const std::string hi = fmt::format("{:.3f}", k == 0 ? max_ind : max_echo);
    DrawText(img, bx, bar_y + bar_h + 6, "0", kText, 0);
    DrawText(img, bx + bar_w - TextWidth(hi, kText), bar_y + bar_h + 6, hi, kText, 0);
  }
  const int ly = bar_y + bar_h + 6 + kLineH + 8;
  Outline(img, kMargin, ly, kLineH, kLineH, 2, kOutline[0], kOutline[1], kOutline[2]);
  DrawText(img, kMargin + kLineH + 8, ly,
           fmt::format("RETRIEVAL KV HEAD (TOP {:.0f}% INDUCTION + TOP {:.0f}% ECHO)", 100 * p.params.induction_ratio,
                       100 * p.params.echo_ratio),
           kText, 0);
  if (layout_out) *layout_out = L;
  return img;
}

Status WritePng(const RgbImage& image, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Err(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (png == nullptr || info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::fclose(f);
    return Err(fmt::format("{}: libpng could not start", path));
  }
  // libpng reports errors by longjmp; nothing with a destructor is created between here and the end.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    return Err(fmt::format("{}: PNG write failed", path));
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(&image.pixels[static_cast<size_t>(y) * image.width * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(f) != 0) return Err(fmt::format("{}: write failed", path));
  return Status::Ok();
}

Status WriteHeadProfilePng(const HeadProfile& profile, const std::string& path) {
  return WritePng(RenderHeadProfile(profile), path);
}

}  // namespace razor
