#!/usr/bin/env bash
# Installs Mesa's lavapipe (a Vulkan driver that runs on the CPU) when no Vulkan driver is
# present, so the GPU tests have a real adapter on machines without a GPU.
set -euo pipefail

if ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    echo "install-vulkan: a Vulkan driver is present"
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
        echo "install-vulkan: no Vulkan driver and not root: install mesa-vulkan-drivers yourself" >&2
        exit 1
    fi
fi
echo "install-vulkan: installing mesa-vulkan-drivers"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
