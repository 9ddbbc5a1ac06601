# shellcheck shell=bash
# Functions that install and start the local services rai's tests and demo need, on loopback only.
# Sourced by test.sh, stack.sh and demo.sh. Every function is idempotent: it reuses what is installed or running.
#
# State (pid files, logs, data) goes under $RAI_STACK_DIR (default: <repo>/.stack); downloads that are slow to
# repeat (moto's virtualenv) under $RAI_CACHE_DIR (default: ~/.cache/rai).

set -euo pipefail

RAI_REPO_ROOT=${RAI_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RAI_STACK_DIR=${RAI_STACK_DIR:-$RAI_REPO_ROOT/.stack}
RAI_CACHE_DIR=${RAI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rai}
RAI_TEST_IMAGE=${RAI_TEST_IMAGE:-rai-test/busybox:latest}
mkdir -p "$RAI_STACK_DIR" "$RAI_CACHE_DIR"

# Each line carries the wall-clock time, so a CI log shows where its minutes went.
log() { printf '\033[1m[stack %s]\033[0m %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '\033[31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

_apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $*: no apt-get on this machine; install it by hand"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$_apt_updated" ]; then
    log "apt-get update"
    $sudo apt-get update -qq >"$RAI_STACK_DIR/apt.log" 2>&1 || die "apt-get update failed (see $RAI_STACK_DIR/apt.log)"
    _apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >>"$RAI_STACK_DIR/apt.log" 2>&1 \
    || die "apt-get install $* failed (see $RAI_STACK_DIR/apt.log)"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  log "$what is up"
}

# --- Redis -------------------------------------------------------------------------------------------------------
ensure_redis_installed() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
  # Debian's package starts a system instance on 6379; ours runs on its own port and leaves that one alone.
  command -v redis-server >/dev/null || die "redis-server is not installed"
}

# start_redis NAME: starts a private redis-server on a free loopback port; prints its port.
start_redis() {
  local name=$1 dir="$RAI_STACK_DIR/$1" port
  mkdir -p "$dir"
  if [ -f "$dir/port" ] && redis-cli -p "$(cat "$dir/port")" ping 2>/dev/null | grep -q PONG; then
    cat "$dir/port"; return
  fi
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes --daemonize yes \
    --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
    --appendonly yes --save "" >/dev/null
  wait_for 20 "redis ($name) on 127.0.0.1:$port" redis-cli -p "$port" ping || die "redis did not start (see $dir/redis.log)"
  echo "$port" >"$dir/port"
  echo "$port"
}

stop_redis() {
  local dir="$RAI_STACK_DIR/$1"
  [ -f "$dir/port" ] || return 0
  redis-cli -p "$(cat "$dir/port")" shutdown nosave >/dev/null 2>&1 || true
  rm -f "$dir/port"
}

# --- moto (S3, SQS, STS) -----------------------------------------------------------------------------------------
ensure_moto_installed() {
  local venv="$RAI_CACHE_DIR/moto-venv"
  if [ -x "$venv/bin/moto_server" ]; then return; fi
  command -v python3 >/dev/null || apt_install python3
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv" || die "cannot make a Python virtualenv at $venv"
  fi
  log "pip install moto[server] (once, into $venv)"
  "$venv/bin/pip" install -q 'moto[server]' >"$RAI_STACK_DIR/pip.log" 2>&1 || die "pip install moto[server] failed (see $RAI_STACK_DIR/pip.log)"
  [ -x "$venv/bin/moto_server" ] || die "moto_server is missing after installing moto[server]"
}

moto_up() { python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$1/moto-api/', timeout=1)"; }

# start_moto: starts moto's server on a free loopback port; prints its port.
start_moto() {
  local dir="$RAI_STACK_DIR/moto" port
  mkdir -p "$dir"
  if [ -f "$dir/port" ] && moto_up "$(cat "$dir/port")" 2>/dev/null; then
    cat "$dir/port"; return
  fi
  port=$(free_port)
  # moto_server.py: moto's own server with a thread-safety fix to SQS receives (why: in the script).
  nohup "$RAI_CACHE_DIR/moto-venv/bin/python" "$RAI_REPO_ROOT/deploy/local/moto_server.py" -H 127.0.0.1 -p "$port" \
    >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  wait_for 60 "moto on 127.0.0.1:$port" moto_up "$port" || die "moto did not start (see $dir/moto.log)"
  echo "$port" >"$dir/port"
  echo "$port"
}

stop_moto() {
  local dir="$RAI_STACK_DIR/moto"
  [ -f "$dir/moto.pid" ] && kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
  rm -f "$dir/moto.pid" "$dir/port"
}

# --- tcpdump (the hosts-apart test captures what crosses each link) ------------------------------------------------
ensure_tcpdump_installed() {
  command -v tcpdump >/dev/null 2>&1 || apt_install tcpdump
  command -v tcpdump >/dev/null || die "tcpdump is not installed (Debian's tcpdump)"
}

# --- Chromium and its WebDriver (the staff dashboard's browser tests) ----------------------------------------------
ensure_chromium_installed() {
  { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || apt_install chromium chromium-driver
  command -v chromedriver >/dev/null || die "chromedriver is not installed (Debian's chromium-driver)"
}

webdriver_up() { python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/status', timeout=1)"; }

# start_chromedriver: starts chromedriver on a free loopback port; prints its port.
start_chromedriver() {
  local dir="$RAI_STACK_DIR/chromedriver" port
  mkdir -p "$dir"
  if [ -f "$dir/port" ] && webdriver_up "$(cat "$dir/port")" 2>/dev/null; then
    cat "$dir/port"; return
  fi
  port=$(free_port)
  nohup chromedriver --port="$port" >"$dir/chromedriver.log" 2>&1 &
  echo $! >"$dir/chromedriver.pid"
  wait_for 30 "chromedriver on 127.0.0.1:$port" webdriver_up "$port" || die "chromedriver did not start (see $dir/chromedriver.log)"
  echo "$port" >"$dir/port"
  echo "$port"
}

stop_chromedriver() {
  local dir="$RAI_STACK_DIR/chromedriver"
  [ -f "$dir/chromedriver.pid" ] && kill "$(cat "$dir/chromedriver.pid")" 2>/dev/null || true
  rm -f "$dir/chromedriver.pid" "$dir/port"
}

# --- aiosmtpd (a real SMTP server for rai-keygen mail's tests) ---------------------------------------------------
# Each test starts its own on a free port (deploy/local/smtp_sink.py), with the Python of moto's virtualenv.
ensure_aiosmtpd_installed() {
  local venv="$RAI_CACHE_DIR/moto-venv"
  "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1 && return
  log "pip install aiosmtpd (once, into $venv)"
  "$venv/bin/pip" install -q aiosmtpd >>"$RAI_STACK_DIR/pip.log" 2>&1 || die "pip install aiosmtpd failed (see $RAI_STACK_DIR/pip.log)"
}

# export_test_env REDIS_PORT MOTO_PORT WEBDRIVER_PORT: hands the services' addresses to the tests and benches.
export_test_env() {
  export RAI_TEST_REDIS_URL="redis://127.0.0.1:$1"
  export RAI_TEST_REDIS_SERVER="$(command -v redis-server)"
  export RAI_TEST_MOTO_PYTHON="$RAI_CACHE_DIR/moto-venv/bin/python"
  export RAI_TEST_AWS_ENDPOINT="http://127.0.0.1:$2"
  [ -z "${3:-}" ] || export RAI_TEST_WEBDRIVER="http://127.0.0.1:$3"
  export RAI_TEST_SMTP_PYTHON="$RAI_CACHE_DIR/moto-venv/bin/python"
  export RAI_TEST_IMAGE
  # The Debian image and deploy/package.sh's output, for the package tests (test.sh makes both).
  export RAI_TEST_DEBIAN_IMAGE RAI_TEST_DIST="$RAI_REPO_ROOT/target/packages"
  export RAI_TEST_STACK=1
  # The tests talk to moto with dummy credentials; never to AWS.
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
}

# cfn-lint (PyPI), for the CloudFormation template, in the same virtualenv as moto.
ensure_cfn_lint_installed() {
  local venv="$RAI_CACHE_DIR/moto-venv"
  [ -x "$venv/bin/cfn-lint" ] && return
  log "pip install cfn-lint (once, into $venv)"
  "$venv/bin/pip" install -q cfn-lint >>"$RAI_STACK_DIR/pip.log" 2>&1 || die "pip install cfn-lint failed (see $RAI_STACK_DIR/pip.log)"
}

# --- Docker ------------------------------------------------------------------------------------------------------
ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  command -v dockerd >/dev/null || apt_install docker.io
  if ! docker info >/dev/null 2>&1; then
    # No bridge, no iptables: job containers run with --network none, and nothing here may touch other networks.
    log "starting dockerd (no bridge, no iptables)"
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$RAI_STACK_DIR/dockerd.log" 2>&1 &
    echo $! >"$RAI_STACK_DIR/dockerd.pid"
    wait_for 60 "dockerd" docker info || die "dockerd did not start (see $RAI_STACK_DIR/dockerd.log)"
  fi
}

stop_docker_if_started() {
  [ -f "$RAI_STACK_DIR/dockerd.pid" ] || return 0
  kill "$(cat "$RAI_STACK_DIR/dockerd.pid")" 2>/dev/null || true
  rm -f "$RAI_STACK_DIR/dockerd.pid"
}

# The test image: busybox-static imported as a 2 MB image (no registry is reachable, so nothing is pulled).
ensure_test_image() {
  # An image imported before its / was made 0755 (see below) is made again.
  if docker image inspect "$RAI_TEST_IMAGE" >/dev/null 2>&1 \
    && docker image inspect -f '{{index .Config.Labels "rai.test-image"}}' "$RAI_TEST_IMAGE" 2>/dev/null | grep -qx 2; then
    return
  fi
  local bb
  bb=$(command -v busybox 2>/dev/null || true)
  if [ -z "$bb" ] || ! file_is_static "$bb"; then
    [ -x /bin/busybox ] && file_is_static /bin/busybox || apt_install busybox-static
    bb=/bin/busybox
  fi
  local root
  root=$(mktemp -d)
  # mktemp -d makes its folder 0700, which the tar's "./" carries into the image's /: a storage driver that copies
  # it as it is (vfs, the GPU engine's) then denies a job's user every path.
  chmod 755 "$root"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/build" "$root/src"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nrai:x:1000:1000:rai:/build:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nrai:x:1000:\nnobody:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  log "importing $RAI_TEST_IMAGE from busybox-static"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' -c 'LABEL rai.test-image=2' - "$RAI_TEST_IMAGE" >/dev/null
  rm -rf "$root"
  docker image inspect "$RAI_TEST_IMAGE" >/dev/null || die "could not import $RAI_TEST_IMAGE"
}

# No program interpreter: a static (or static-pie) executable, which runs with no libc in the image. (ldd cannot tell:
# it says "statically linked" and succeeds for a static-pie one.)
file_is_static() { [ -f "$1" ] && ! readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'; }

# The Debian image: a minimal Debian root made by debootstrap from Debian's packages (with systemd, to verify units
# and run systemd-sysusers/tmpfiles), kept as a tar under the cache and imported once. The package test installs
# rai's .deb files in it; jobs may use it as a test image with a shell and coreutils.
RAI_TEST_DEBIAN_SUITE=${RAI_TEST_DEBIAN_SUITE:-bookworm}
RAI_TEST_DEBIAN_IMAGE=${RAI_TEST_DEBIAN_IMAGE:-rai-test/debian:$RAI_TEST_DEBIAN_SUITE}
ensure_debian_image() {
  if docker image inspect -f '{{index .Config.Labels "rai.test-image"}}' "$RAI_TEST_DEBIAN_IMAGE" 2>/dev/null | grep -qx 1; then
    return
  fi
  local tarball="$RAI_CACHE_DIR/debian-$RAI_TEST_DEBIAN_SUITE.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    local root="$RAI_CACHE_DIR/debian-$RAI_TEST_DEBIAN_SUITE.root"
    rm -rf "$root"
    log "debootstrap $RAI_TEST_DEBIAN_SUITE (minbase + systemd) into $root"
    debootstrap --variant=minbase --include=systemd,adduser "$RAI_TEST_DEBIAN_SUITE" "$root" \
      "${RAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$RAI_STACK_DIR/debootstrap.log" 2>&1 \
      || die "debootstrap $RAI_TEST_DEBIAN_SUITE failed (see $RAI_STACK_DIR/debootstrap.log; it needs Debian's mirror)"
    # A job's user and folders, as in the busybox image; no apt lists or caches in the image.
    chroot "$root" /usr/sbin/useradd --uid 1000 --user-group --home-dir /build --no-create-home rai
    mkdir -p "$root/build" "$root/src"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "importing $RAI_TEST_DEBIAN_IMAGE from $tarball"
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' \
    -c 'LABEL rai.test-image=1' "$tarball" "$RAI_TEST_DEBIAN_IMAGE" >/dev/null
  docker image inspect "$RAI_TEST_DEBIAN_IMAGE" >/dev/null || die "could not import $RAI_TEST_DEBIAN_IMAGE"
}
