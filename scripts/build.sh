#!/usr/bin/env bash
# Configures and builds a preset (default: release) if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
dir=build; [ "$preset" = release ] || dir=build-$preset
[ -f "$dir/build.ninja" ] || cmake --preset "$preset" -G Ninja >/dev/null
shift || true
cmake --build "$dir" -j "$(nproc)" "$@"
