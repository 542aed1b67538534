#!/usr/bin/env bash
# Debian packages nasflow uses when it can have them: the exact Fashion-MNIST idx files
# (/usr/share/datasets/fashion-mnist). Without root or apt this says so and goes on: the dataset can
# still be downloaded by torchvision where the machine has the internet.
set -u
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "Fashion-MNIST: found Debian's dataset-fashion-mnist"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; then
    echo "Fashion-MNIST: installed Debian's dataset-fashion-mnist"
    exit 0
  fi
  echo "Fashion-MNIST: apt-get could not install dataset-fashion-mnist; tests that need it will skip"
else
  echo "Fashion-MNIST: not root or no apt-get, so Debian's dataset-fashion-mnist was not installed;"
  echo "  install it with 'sudo apt-get install dataset-fashion-mnist' or allow downloads (data.download=true)"
fi
exit 0
