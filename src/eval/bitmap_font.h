// A 5x7 bitmap font (digits, upper-case letters, a little punctuation; lower case is drawn upper case) for
// the labels of the eval pictures, so that a PNG needs no font library.
#pragma once

#include <cstdint>
#include <string_view>

#include "runtime/heatmap_png.h"

namespace razor::eval {

constexpr int kGlyphW = 5, kGlyphH = 7, kGlyphAdvance = 6;  // pixels at scale 1

// Width in pixels of `text` at `scale`.
int TextWidth(std::string_view text, int scale);
// Draws `text` with its top-left corner at (x, y); pixels outside the image are skipped. Unknown characters
// are drawn as a small box.
void DrawText(RgbImage& image, int x, int y, std::string_view text, int scale, const uint8_t rgb[3]);

}  // namespace razor::eval
