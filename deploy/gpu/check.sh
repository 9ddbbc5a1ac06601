#!/usr/bin/env bash
# The GPU check of issues 14 and 27, run on a machine with an NVIDIA GPU, nvcc and nvidia-smi but no Docker (the
# `device` tool's machine): `raid doctor`'s GPU probe and profiling check against the real driver; examples/vector-add
# compiled with nvcc and run with CUDA_VISIBLE_DEVICES set as raid sets NVIDIA_VISIBLE_DEVICES for a one-GPU job (the
# first device the probe lists); raid's GPU sampler (`raid gpu-use`) against the real GPU, idle and while vector-add
# runs in a loop; and, where the machine has one, a profiler run (ncu, else nsys, else nvprof) beside the driver's
# profiling setting. Prints everything; docs/gpu-check.md keeps a run's output with its date.
#
# usage: deploy/gpu/check.sh [RAID_BINARY]   (default: target/release/raid, built on an x86-64 Linux machine)
set -uo pipefail
cd "$(dirname "$0")/../.."
raid=${1:-target/release/raid}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== nvidia-smi -L"
nvidia-smi -L
echo "== nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv"
nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv
echo "== nvcc --version"
nvcc --version | tail -n 2

echo "== raid doctor (no Docker, Redis or store here: only its gpus line is the check)"
mkdir -p "$work/store" "$work/jobs"
printf 'users: {}\n' >"$work/registry.yml"
cat >"$work/raid.yml" <<YAML
events: { redis_url: "redis://127.0.0.1:1" }
queue: { name: gpu-check }
store: { path: $work/store }
raid: { registry: $work/registry.yml, work_dir: $work/jobs }
YAML
if [ -x "$raid" ]; then
  "$raid" -c "$work/raid.yml" doctor 2>&1 | tee "$work/doctor.txt"
  gpus_line=$(grep '^gpus' "$work/doctor.txt" || true)
  echo "== the probe's line: ${gpus_line:-MISSING}"
else
  echo "no raid binary at $raid; build it with 'cargo build --release -p raid-server' and carry it"
fi

echo "== the device a one-GPU job gets: the first the probe lists"
first=$(nvidia-smi -L | sed -n 's/.*(UUID: \(MIG-[^)]*\)).*/\1/p' | head -n 1)
[ -n "$first" ] || first=$(nvidia-smi -L | sed -n 's/^GPU \([0-9]*\):.*/\1/p' | head -n 1)
echo "NVIDIA_VISIBLE_DEVICES=$first (in a container); CUDA_VISIBLE_DEVICES=$first here, without Docker"

echo "== examples/vector-add"
nvcc -O2 -o "$work/vadd" examples/vector-add/vadd.cu && CUDA_VISIBLE_DEVICES=$first "$work/vadd" 1048576
echo "exit $?"
echo "== with CUDA_VISIBLE_DEVICES=void (a job with no GPU): the program must find no device"
CUDA_VISIBLE_DEVICES=void "$work/vadd" 1048576
echo "exit $? (non-zero expected)"

if [ -x "$raid" ]; then
  echo "== raid gpu-use --for 5s, the GPUs idle"
  "$raid" -c "$work/raid.yml" gpu-use --for 5s
  echo "== raid gpu-use --for 10s while vector-add runs in a loop on device $first (its figures must be above idle)"
  ( end=$((SECONDS + 12)); while [ "$SECONDS" -lt "$end" ]; do CUDA_VISIBLE_DEVICES=$first "$work/vadd" 67108864 >/dev/null; done ) &
  loop=$!
  sleep 1
  "$raid" -c "$work/raid.yml" gpu-use --for 10s
  wait "$loop"
fi

echo "== profiling: the driver's setting (RestrictProfilingToAdminUsers: 0 lets every user read the counters)"
grep -i RestrictProfiling /proc/driver/nvidia/params 2>/dev/null || echo "(no /proc/driver/nvidia/params)"
if command -v ncu >/dev/null; then
  echo "== ncu on vector-add, as the user this runs as ($(id -un))"
  CUDA_VISIBLE_DEVICES=$first ncu --metrics gpu__time_duration.sum "$work/vadd" 1048576 2>&1 | tail -n 15
  echo "exit $?"
elif command -v nsys >/dev/null; then
  echo "== nsys on vector-add"
  CUDA_VISIBLE_DEVICES=$first nsys profile -o "$work/vadd-report" --stats=true "$work/vadd" 1048576 2>&1 | tail -n 20
elif command -v nvprof >/dev/null; then
  echo "== nvprof on vector-add"
  CUDA_VISIBLE_DEVICES=$first nvprof "$work/vadd" 1048576 2>&1 | tail -n 15
else
  echo "(no profiler on this machine: ncu, nsys and nvprof are all missing)"
fi
