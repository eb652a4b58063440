#!/usr/bin/env bash
# Checks that the workspace builds for Windows and macOS, clippy clean:
# `cargo clippy` for each target (type-checked, nothing linked or run).
#
# Windows needs MinGW's gcc for the C in ring and blake3. The Apple SDK's
# headers are not on Linux; the C those crates compile needs only three of
# them, so a check-only build gets stand-ins from .ci/apple-stubs
# (freestanding: no system headers at all).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo clippy --workspace --all-targets --target x86_64-pc-windows-gnu -- -D warnings

export CC_aarch64_apple_darwin=clang
export CFLAGS_aarch64_apple_darwin="-ffreestanding -nostdlibinc -I$PWD/.ci/apple-stubs"
cargo clippy --workspace --all-targets --target aarch64-apple-darwin -- -D warnings
