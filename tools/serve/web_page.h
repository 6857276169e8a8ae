// GET /: one self-contained HTML page (no external resources) embedded in the binary: a chat that streams
// from /v1/chat/completions, and a live KV panel that polls /razor/sequences.
#pragma once

#include <string_view>

namespace razor::serve {

std::string_view WebPageHtml();

}  // namespace razor::serve
