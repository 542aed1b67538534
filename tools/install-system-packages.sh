#!/usr/bin/env bash
# Debian packages nasflow uses when it can have them:
# - the exact Fashion-MNIST idx files (/usr/share/datasets/fashion-mnist);
# - SLURM and munge (slurmctld, slurmd, slurm-client, munge), so that tests/test_slurm.py can start a
#   single-node cluster and run the pipeline through the SLURM executor profile.
# Without root or apt this says so and goes on: the dataset can still be downloaded by torchvision, and
# the SLURM test skips with its reason.
set -u
apt_install() {  # package...; an update first only when the package lists are stale
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
}
can_apt=false
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then can_apt=true; fi

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "Fashion-MNIST: found Debian's dataset-fashion-mnist"
elif $can_apt && apt_install dataset-fashion-mnist; then
  echo "Fashion-MNIST: installed Debian's dataset-fashion-mnist"
elif $can_apt; then
  echo "Fashion-MNIST: apt-get could not install dataset-fashion-mnist; tests that need it will skip"
else
  echo "Fashion-MNIST: not root or no apt-get, so Debian's dataset-fashion-mnist was not installed;"
  echo "  install it with 'sudo apt-get install dataset-fashion-mnist' or allow downloads (data.download=true)"
fi

if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
  echo "SLURM: found slurmctld, slurmd and munged"
elif $can_apt && apt_install slurmctld slurmd slurm-client munge; then
  echo "SLURM: installed Debian's slurmctld, slurmd, slurm-client and munge (for tests/test_slurm.py)"
else
  echo "SLURM: not installed (needs root and apt-get); tests/test_slurm.py will skip"
fi
exit 0
