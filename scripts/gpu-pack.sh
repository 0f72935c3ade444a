#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that cannot build (no network, or GPU
# time too dear for a Burn build) into DEST (default .gpu, git-ignored): the release `finesse`
# with wgpu (gzipped), the `backends` test binary (stripped, gzipped), the side-by-side kit,
# the MiniLM tokenizer, SST-2 and the Vulkan loader's debs. About 45 MB (with GOLDEN=1 the golden
# model too, 40 MB more: send the two in separate calls, or leave the backends binary out). On
# the GPU machine:
#   gunzip -k .gpu/*.gz && chmod +x .gpu/finesse .gpu/backends && \
#   FIN=.gpu/finesse BACKENDS=.gpu/backends KIT=.gpu/kit TOK=.gpu/tok SST2=.gpu/glue/SST-2 GL_DEBS=.gpu/gl \
#   OUT=... bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${DEST:-.gpu}"
rel="${RELEASE_TARGET:-$HOME/.cache/finesse/target-release}"
dbg="${CARGO_TARGET_DIR:-$HOME/.cache/finesse/target}"
CARGO_TARGET_DIR="$rel" cargo build --locked --release -p finesse-cli --features finesse-cli/wgpu
backends=$(CARGO_TARGET_DIR="$dbg" cargo test-all --no-run --message-format json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "backends" and m.get("executable"):
        print(m["executable"])')
mkdir -p "$dest/tok" "$dest/glue/SST-2"
strip -o "$dest/finesse" "$rel/release/finesse"
strip -o "$dest/backends" "$backends"
gzip -9 -f "$dest/finesse" "$dest/backends"
rm -rf "$dest/kit" && cp -r ../shared/reference/gpu "$dest/kit" && chmod -R u+w "$dest/kit"
model="${FINESSE_HOME:-$HOME/.cache/finesse}/models/all-MiniLM-L6-v2"
for f in tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do cp "$model/$f" "$dest/tok/"; done
cp ../shared/data/glue/SST-2/train.tsv ../shared/data/glue/SST-2/dev.tsv "$dest/glue/SST-2/"
# The Vulkan loader and glvnd for the NVIDIA driver (a bare CUDA image lacks them): GL_DEBS.
mkdir -p "$dest/gl" /tmp/amd64/partial
apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${apt[@]}" update >/dev/null
(cd "$dest/gl" && apt-get "${apt[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
# GOLDEN=1: the real model for `STEPS=golden`, its unread word-embedding rows zeroed so that it
# fits (scripts/golden-model-rows.py; needs python3 with numpy and safetensors), xz-compressed:
# on the GPU machine, `xz -d` (or python's lzma) it to $dest/golden/model.safetensors.
if [ "${GOLDEN:-0}" = 1 ]; then
  fx=../shared/fixtures/all-MiniLM-L6-v2
  python3 scripts/golden-model-rows.py "$model" "$fx" "$dest/golden"
  xz -9 -T0 "$dest/golden/model.safetensors"
  mkdir -p "$dest/fixtures" && cp "$fx/forward.safetensors" "$fx/classifier.safetensors" "$dest/fixtures/"
fi
du -sh "$dest"
