#!/usr/bin/env bash
# Install the Debian 12 packages cslim builds against (skips what is present).
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev  # GEMM (the OpenMP build shares our thread pool)
  libcjson-dev      # JSON (safetensors headers, configs, tokenizer.json)
  libutf8proc-dev   # Unicode categories and NFC for the tokenizer
  libpng-dev        # PNG images (Qwen3-VL)
  libjpeg-dev       # JPEG images (libjpeg-turbo)
  libyaml-dev       # recipes (YAML, msModelSlim schema)
  libcmocka-dev     # unit tests
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
