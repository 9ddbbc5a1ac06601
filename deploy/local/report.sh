#!/usr/bin/env bash
# The one-table report (issue 6): every benchmark of the earlier issues, the chaos and load run and the full
# hostile-input catalogue, run one after the other on this machine; then one table of each figure, its reference
# measured in the same run, the ratio and the target. Each part's own output is kept in target/report/.
#
#   deploy/local/report.sh [CHAOS_JOBS]     (default 1000 jobs per stack)
#
# About 30 minutes on 2 cores once the release build exists (the chaos run alone is bounded to 10 minutes per stack). Exits 1 if
# a part failed or a target was missed. The table is also written as Markdown to target/report/table.md, the form
# docs/performance.md and docs/reliability.md quote.

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
cleanup() { stop_redis report-redis; stop_moto; stop_docker_if_started; }
trap cleanup EXIT

ensure_redis_installed
ensure_moto_installed
ensure_docker
ensure_test_image
command -v zstd >/dev/null || apt_install zstd
command -v column >/dev/null || apt_install bsdextrautils
[ -x /usr/bin/time ] || apt_install time
redis_port=$(start_redis report-redis)
moto_port=$(start_moto)
export_test_env "$redis_port" "$moto_port"

out=target/report
rm -rf "$out"
mkdir -p "$out"
export RAI_REPORT_FILE="$PWD/$out/figures.tsv"
: > "$RAI_REPORT_FILE"

cargo build --release --locked -p raid-server --bins

failed=()
part() { # part NAME COMMAND...: runs one part, its output shown and kept
  local name=$1; shift
  log "$name: $*"
  if ! "$@" 2>&1 | tee "$out/$name.log"; then
    failed+=("$name")
  fi
}
set -o pipefail
part archive cargo bench --locked -p rai-common --bench archive
part backends cargo bench --locked -p rai-backends --bench backends
part overhead cargo bench --locked -p raid-server --bench overhead
part back_to_back cargo bench --locked -p raid-server --bench back_to_back
part gpu cargo bench --locked -p raid-server --bench gpu
part client cargo bench --locked -p rai-client --bench client
part gateway cargo bench --locked -p rai-client --bench gateway
part hostile cargo bench --locked -p rai-client --bench hostile
part chaos cargo bench --locked -p rai-client --bench chaos -- "${1:-1000}"
part rush cargo bench --locked -p rai-client --bench rush
part idle_pool cargo bench --locked -p rai-client --bench idle_pool
part incremental cargo bench --locked -p rai-client --bench incremental
part operability cargo bench --locked -p rai-client --bench operability
part logs cargo bench --locked -p rai-client --bench logs

{
  printf 'figure\tvalue\treference\tratio\ttarget\tmet\n'
  cat "$RAI_REPORT_FILE"
} > "$out/table.tsv"
{
  echo "| figure | rai | reference | ratio | target | met |"
  echo "|---|---:|---:|---:|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$RAI_REPORT_FILE"
} > "$out/table.md"

echo
echo "rai report, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
column -t -s $'\t' "$out/table.tsv"
echo
missed=$(grep -c $'\tNO$' "$RAI_REPORT_FILE" || true)
if [ "${#failed[@]}" -gt 0 ] || [ "$missed" -gt 0 ]; then
  echo "missed targets: $missed; failed parts: ${failed[*]:-none} (see $out/<part>.log)"
  exit 1
fi
echo "every target met; Markdown table in $out/table.md"
