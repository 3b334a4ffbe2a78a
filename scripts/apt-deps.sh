#!/usr/bin/env bash
# Install the Debian packages convlayer uses, only those missing: the Fashion-MNIST IDX files
# (the default offline dataset) and, with "browser", Chromium for the web page's end-to-end tests.
set -euo pipefail
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
if [ "${1:-}" = "browser" ] && [ ! -x /usr/bin/chromium ]; then packages+=(chromium); fi
[ ${#packages[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "apt-get not found: install ${packages[*]} by hand (convlayer can download the datasets instead)." >&2
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
