#!/bin/sh
# Install the Debian (12, bookworm) packages that ewald needs and that are
# missing. Run as root; otherwise it prints the exact command and stops.
#   EWALD_OPTIONAL=1  also install the optional developer oracles
#                     (python3-numpy/h5py/mrcfile/torch, chromium, clang runtime)
set -e
PKGS="make gcc pkg-config libc6-dev libfftw3-dev libopenblas-dev libhdf5-dev libpng-dev libcmocka-dev libcjson-dev"
[ "${EWALD_MPI:-0}" = 1 ] && PKGS="$PKGS libopenmpi-dev openmpi-bin"
[ "${EWALD_OPTIONAL:-0}" = 1 ] && PKGS="$PKGS clang libclang-rt-14-dev python3-numpy python3-h5py python3-mrcfile python3-torch chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "ewald: all required Debian packages are installed"
    exit 0
fi
cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
    echo "ewald: missing Debian packages:$missing"
    echo "ewald: run as root:  $cmd"
    exit 1
fi
echo "ewald: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
