#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is needed, build, and answer a question
# about a photo. Arguments are passed to `prefixkv generate`; without --model the embedded demo
# model answers (random weights: the pipeline is real, the words are not).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--image resources/samples/chelsea.jpg --prompt "What is unusual about this image?" --max-new-tokens 48)
exec ./build/app/cli/prefixkv generate "${args[@]}"
