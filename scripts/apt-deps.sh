#!/usr/bin/env bash
# Install the Debian packages convlayer uses, only those missing: the Fashion-MNIST IDX files
# (the default offline dataset); with "browser", Chromium for the web page's end-to-end tests; with
# "mpi" (or "distributed"), Open MPI for data-parallel training (mpirun; headers to build mpi4py).
# Usage: scripts/apt-deps.sh [browser] [mpi]
set -euo pipefail
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
for extra in "$@"; do
  case "$extra" in
    browser) [ -x /usr/bin/chromium ] || packages+=(chromium) ;;
    mpi|distributed)
      command -v mpirun >/dev/null || packages+=(openmpi-bin)
      [ -f /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] || [ -n "$(command -v mpicc)" ] \
        || packages+=(libopenmpi-dev) ;;
    *) echo "apt-deps.sh: unknown extra '$extra' (use browser, mpi)" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "apt-get not found: install ${packages[*]} by hand (convlayer can download the datasets instead)." >&2
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
