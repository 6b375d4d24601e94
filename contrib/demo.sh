#!/usr/bin/env bash
# The README's first command, after the build: mount a registry and show it.
set -euo pipefail
BUILD=$1
echo "demo: not yet available; built in $BUILD"
