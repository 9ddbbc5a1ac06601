#!/usr/bin/env bash
# Makes what a course installs, into target/packages/ (docs/admin.md, "From zero to a fleet"; not target/dist,
# which is cargo's folder for the dist profile):
#   debs       raid_VERSION-1_amd64.deb (worker + gateway, units, user, folders), rai_... (the student's client),
#              rai-admin_... (rai-keygen, rai-crypto); made by cargo-deb from release builds, checked by lintian
#   downloads  rai-VERSION-x86_64-linux.tar.gz, rai-VERSION-aarch64-linux.tar.gz (static, musl),
#              rai-VERSION-x86_64-windows.zip (MinGW), each with its .sha256, and SHA256SUMS over all of them
# Every binary reports the commit it was built from (`rai --version`). With no argument it makes both.
#
#   deploy/package.sh [--quick] [debs] [downloads] [linux-x86_64] [linux-aarch64] [windows]
#
# --quick makes the same packages from unoptimised builds: the debs from the tests' own build (target/debug, which
# `cargo build --workspace --tests` shares with `cargo test`), the downloads with the quick-dist profile. The tests
# install these (deploy/local/test.sh), so that CI does not build the whole workspace a second time with
# optimisations (about a quarter of a cold CI run); what they check (files, units, users, maintainer scripts, the
# commit, static linking) does not depend on the optimisation level. A course installs only the default builds.

source "$(dirname "$0")/local/lib.sh"
cd "$RAI_REPO_ROOT"

dist="$RAI_REPO_ROOT/target/packages"
version=$(cargo metadata --no-deps --format-version 1 --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="rai-client"))')
RAI_BUILD_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export RAI_BUILD_COMMIT
mkdir -p "$dist"

# cargo's profile for the debs and for the downloads.
deb_profile=release dl_profile=dist
if [ "${1:-}" = --quick ]; then
  shift
  deb_profile=dev dl_profile=quick-dist
fi

ensure_cargo_tool() { # ensure_cargo_tool COMMAND CRATE
  command -v "$1" >/dev/null || { log "cargo install $2"; cargo install --locked "$2" >"$RAI_STACK_DIR/cargo-install-$2.log" 2>&1 \
    || die "cargo install $2 failed (see $RAI_STACK_DIR/cargo-install-$2.log)"; }
}
ensure_target() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1" \
    || die "cannot install the Rust target $1 (rustup needs to reach static.rust-lang.org)"
}

make_debs() {
  ensure_cargo_tool cargo-deb cargo-deb
  command -v lintian >/dev/null || apt_install lintian
  if [ "$deb_profile" = release ]; then
    log "cargo build --release (raid, rai, rai-keygen, rai-crypto) at commit $RAI_BUILD_COMMIT"
    cargo build --release --locked -p raid-server -p rai-client -p rai-keygen -p rai-crypto
  else
    log "cargo build --workspace --tests (unoptimised, as the tests build it) at commit $RAI_BUILD_COMMIT"
    cargo build --workspace --tests --locked
  fi
  rm -f "$dist"/*.deb
  for crate in raid-server rai-client rai-keygen; do
    # The assets name target/release/...; cargo-deb reads them from the folder of --profile instead.
    cargo deb --no-build --locked --strip --profile "$deb_profile" -p "$crate" --output "$dist/" >/dev/null
  done
  log "lintian"
  # Errors fail the build; warnings are printed (no manual pages yet, a copyright file without a notice line, the
  # env example kept 0600 because it will hold the app secret).
  lintian --fail-on error "$dist"/*.deb
  ls -1 "$dist"/*.deb
}

# A static client for one Linux target, stripped, in a tar.gz with its README.
make_linux() { # make_linux RUST_TARGET NAME
  local target=$1 name=$2
  ensure_target "$target"
  if [ "$target" = x86_64-unknown-linux-musl ]; then
    command -v musl-gcc >/dev/null || apt_install musl-tools
    cargo build --profile "$dl_profile" --locked --target "$target" -p rai-client --bin rai
  else
    # Another architecture: zig is the C cross compiler and linker (aws-lc and zstd are C), through cargo-zigbuild.
    python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install -q ziglang || die "pip install ziglang failed"
    ensure_cargo_tool cargo-zigbuild cargo-zigbuild
    cargo zigbuild --profile "$dl_profile" --locked --target "$target" -p rai-client --bin rai
  fi
  local bin="target/$target/$dl_profile/rai" stage
  file_is_static "$bin" || die "$bin is not static: students' machines may lack its libc"
  stage=$(mktemp -d)
  mkdir "$stage/rai-$version-$name"
  cp "$bin" docs/student.md "$stage/rai-$version-$name/"
  tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$dist/rai-$version-$name.tar.gz" "rai-$version-$name"
  rm -rf "$stage"
  (cd "$dist" && sha256sum "rai-$version-$name.tar.gz" >"rai-$version-$name.tar.gz.sha256")
}

make_windows() {
  local target=x86_64-pc-windows-gnu stage
  ensure_target "$target"
  command -v x86_64-w64-mingw32-gcc >/dev/null || apt_install gcc-mingw-w64-x86-64
  cargo build --profile "$dl_profile" --locked --target "$target" -p rai-client --bin rai
  stage=$(mktemp -d)
  mkdir "$stage/rai-$version-x86_64-windows"
  cp "target/$target/$dl_profile/rai.exe" docs/student.md "$stage/rai-$version-x86_64-windows/"
  rm -f "$dist/rai-$version-x86_64-windows.zip"
  (cd "$stage" && python3 -m zipfile -c "$dist/rai-$version-x86_64-windows.zip" "rai-$version-x86_64-windows")
  rm -rf "$stage"
  (cd "$dist" && sha256sum "rai-$version-x86_64-windows.zip" >"rai-$version-x86_64-windows.zip.sha256")
}

sums() {
  (cd "$dist" && shopt -s nullglob && files=(rai-*.tar.gz rai-*.zip) && sha256sum "${files[@]}" >SHA256SUMS \
    && cat SHA256SUMS)
}

[ $# -gt 0 ] || set -- debs downloads
for what in "$@"; do
  case "$what" in
    debs) make_debs ;;
    downloads) make_linux x86_64-unknown-linux-musl x86_64-linux; make_linux aarch64-unknown-linux-musl aarch64-linux
               make_windows; sums ;;
    linux-x86_64) make_linux x86_64-unknown-linux-musl x86_64-linux; sums ;;
    linux-aarch64) make_linux aarch64-unknown-linux-musl aarch64-linux; sums ;;
    windows) make_windows; sums ;;
    *) die "unknown part '$what' (debs, downloads, linux-x86_64, linux-aarch64, windows)" ;;
  esac
done
