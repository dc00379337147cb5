#!/usr/bin/env bash
# Runs the wgpu device-parity test on a machine without a GPU, through Debian's lavapipe
# software Vulkan driver. Needs root for apt-get (or the packages already installed) and about
# 30 CPU-minutes more build time than the CPU-only build; not part of CI for that reason.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
fi
scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Separate target dir: the wgpu feature set would otherwise rebuild the CPU artifacts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/wgpu}"
cargo test --release --features wgpu --test integration device_parity -- --nocapture
