#!/usr/bin/env bash
# Installs the Debian packages presenced needs to build and test. Idempotent: does nothing when all
# packages are present. Runs apt-get as root, or through sudo when available.
set -euo pipefail
packages=(
  g++ cmake ninja-build make pkg-config
  libboost-json1.81-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost1.81-dev libboost-url1.81-dev libssl-dev libjwt-dev libspdlog-dev libtomlplusplus-dev libcli11-dev
  libhiredis-dev redis-server redis-tools  # cluster mode; the tests start their own redis-server
  python3 python3-websockets python3-yaml
  openssl ca-certificates  # https webhooks: the system CAs; the tests (webhooks, TLS) make certificates with openssl
  chromium  # for the dashboard's browser tests (dashboard/test); no browser is downloaded
  # make fuzz / fuzz-ci (fuzz/README.md): clang 14 with its sanitizer runtimes and libFuzzer, and
  # llvm-symbolizer for readable stack traces.
  clang-14 libclang-rt-14-dev libfuzzer-14-dev llvm-14
)
# Node.js (18 or newer) and npm for the JS client; Debian's packages when none is installed.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
