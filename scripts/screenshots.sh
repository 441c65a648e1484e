#!/bin/sh
# Renders the README screenshots into docs/screenshots/: the main window mid-generation and after
# both answers, and the batch dialog with results, on the embedded demo model (no display needed).
# Usage: scripts/screenshots.sh [build dir]   (default: build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cmake --build "$build" --target prefixkv-studio-screenshots -j2
mkdir -p "$root/docs/screenshots"
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} "$build/ui/prefixkv-studio-screenshots" "$root/docs/screenshots"
