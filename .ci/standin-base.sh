#!/usr/bin/env bash
# Local stand-ins for the two Debian images the image test needs, on machines that reach no
# registry of base images (the CI machines reach PyPI and Debian's mirrors, not Docker Hub):
# there `docker pull python:3.11.7-slim-bookworm` fails, and without the Dockerfile's base
# there is no image to test. Where an image is already present or can be pulled, it is used
# as it is and nothing is built.
#
#   python:X.Y.Z-slim-bookworm  (the Dockerfile's FROM) what the official image holds, from
#       parts this machine has, under the same tag so that the Dockerfile stays as users build
#       it: Debian bookworm from Debian's packages (debootstrap minbase) with the shared
#       libraries CPython's extension modules link; this machine's own CPython, which must be
#       exactly X.Y.Z, copied into /usr/local without its site-packages, test suite and IDLE,
#       then pip and setuptools from its own ensurepip (the official image's are the same
#       releases: pip 23.2.1 and setuptools 65.5 for 3.11.7); this machine's CA bundle with
#       PIP_CERT pointing at it, since pip may reach the index through a TLS-terminating proxy
#       whose CA only the system bundle holds.
#       Not Debian's own python3.11: bookworm's is 3.11.2, not the tag's 3.11.7 (and a Debian
#       python left in /usr/lib would confuse the copied interpreter's prefix search).
#   debian:bookworm  the same Debian root file system without Python: where
#       .ci/image-test.sh installs Debian's python3.11 as a new user of Debian 12 would.
#
# Usage (root: debootstrap and chroot need it):
#   .ci/standin-base.sh              # the Dockerfile's base and debian:bookworm
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (default python3.11:
# the interpreter to copy).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)   # python:3.11.7-slim-bookworm
DEBIAN=debian:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3.11}

present_or_pulled() {
  docker image inspect "$1" >/dev/null 2>&1 && { echo "standin-base: $1 is present"; return 0; }
  if docker pull --quiet "$1" >/dev/null 2>&1; then echo "standin-base: pulled $1"; return 0; fi
  echo "standin-base: $1 cannot be pulled here: building a local stand-in under that tag"
  return 1
}

need_base=1 need_debian=1
present_or_pulled "$BASE" && need_base=0
present_or_pulled "$DEBIAN" && need_debian=0
[ $need_base$need_debian = 00 ] && exit 0

version=${BASE#*:}
version=${version%%-*}                                              # 3.11.7
suite=${BASE##*-}                                                   # bookworm
[ "$suite" = bookworm ] || { echo "standin-base: $BASE is not a bookworm image" >&2; exit 1; }
have=$("$PYTHON" -c 'import platform; print(platform.python_version())')
if [ $need_base = 1 ] && [ "$have" != "$version" ]; then
  echo "standin-base: $BASE needs CPython $version; $PYTHON here is $have" >&2
  exit 1
fi
prefix=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
minor=${version%.*}                                                 # 3.11

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/standin-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

# What CPython's extension modules link besides libc (ldd of lib-dynload: _ssl, _hashlib,
# _sqlite3, _ctypes, _lzma, _bz2, readline, _curses, _uuid, nis, pyexpat, zlib), as the
# official slim image installs them; tkinter's X libraries are left out, as there.
libraries=libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,libnsl2,libreadline8,libsqlite3-0
libraries=$libraries,libssl3,libtirpc3,libuuid1,zlib1g
debootstrap --variant=minbase --include="ca-certificates,netbase,tzdata,$libraries" \
  "$suite" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
# The machine's CA bundle: the proxy's CA, if any, is in it (Debian's package has not got it).
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"

import_rootfs() {  # TAG CMD ENV...
  local tag=$1 cmd=$2 changes=()
  shift 2
  for variable in "$@"; do changes+=(--change "ENV $variable"); done
  tar -C "$rootfs" -c . | docker import "${changes[@]}" --change "CMD $cmd" - "$tag" >/dev/null
  echo "standin-base: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=si --round=nearest)B)"
}

path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ $need_debian = 1 ] && import_rootfs "$DEBIAN" '["bash"]' "PATH=$path"
[ $need_base = 1 ] || exit 0

# CPython into /usr/local, as the official image has it: the interpreter, its shared library
# and headers, the standard library without what a slim image drops.
mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/lib" "$rootfs/usr/local/include"
cp -a "$prefix/bin/python$minor" "$rootfs/usr/local/bin/"
ln -s "python$minor" "$rootfs/usr/local/bin/python3"
ln -s python3 "$rootfs/usr/local/bin/python"
cp -a "$prefix"/lib/libpython3*.so* "$rootfs/usr/local/lib/"
cp -a "$prefix/include/python$minor" "$rootfs/usr/local/include/"
tar -C "$prefix/lib" -c \
  --exclude="python$minor/site-packages/*" --exclude="python$minor/test" \
  --exclude="python$minor/idlelib" --exclude="python$minor/turtledemo" \
  --exclude="python$minor/config-$minor-*/*.a" \
  "python$minor" | tar -C "$rootfs/usr/local/lib" -x
# The interpreter's RUNPATH names the prefix it was built for: ld.so.cache finds the library.
chroot "$rootfs" ldconfig
# (its output only if it fails: pip's warning about running as root is no news here)
out=$(chroot "$rootfs" "/usr/local/bin/python$minor" -m ensurepip --default-pip 2>&1) \
  || { echo "$out" >&2; exit 1; }
chroot "$rootfs" /usr/local/bin/python -c \
  'import bz2, ctypes, decimal, lzma, readline, sqlite3, ssl, uuid, venv, zlib'
import_rootfs "$BASE" '["python3"]' "PATH=$path" LANG=C.UTF-8 "PYTHON_VERSION=$version" \
  PIP_CERT=/etc/ssl/certs/ca-certificates.crt
