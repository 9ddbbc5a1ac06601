#!/usr/bin/env bash
# Checks that the student's client builds for Windows (students use Linux, macOS and Windows) by making the Windows
# download: `rai.exe` for x86_64-pc-windows-gnu, with MinGW for the C parts (zstd, aws-lc), zipped with its
# checksum into target/packages (deploy/package.sh --quick windows: unoptimised, enough for a build check). macOS
# cannot be checked here (no SDK); the same cfg(unix) discipline covers it.
#
#   deploy/local/portability.sh

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
deploy/package.sh --quick windows
zip=$(ls target/packages/rai-*-x86_64-windows.zip)
python3 - "$zip" <<'PY' || die "$zip does not hold a Windows rai.exe"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
exe = [n for n in z.namelist() if n.endswith("/rai.exe")]
assert len(exe) == 1 and z.read(exe[0])[:2] == b"MZ", z.namelist()
PY
log "$zip holds rai.exe"
