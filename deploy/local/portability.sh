#!/usr/bin/env bash
# Checks that the student's client builds for Windows (students use Linux, macOS and Windows): `cargo check` of
# the `rai` binary for x86_64-pc-windows-gnu, with MinGW for the C parts (zstd, aws-lc). macOS cannot be checked
# here (no SDK); the same cfg(unix) discipline covers it.
#
#   deploy/local/portability.sh

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
target=x86_64-pc-windows-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target" \
  || die "cannot install the Rust target $target (rustup needs to reach static.rust-lang.org)"
command -v x86_64-w64-mingw32-gcc >/dev/null || apt_install gcc-mingw-w64-x86-64
log "cargo check -p rai-client --target $target"
cargo check --locked --target "$target" -p rai-client --bin rai
