#!/usr/bin/env bash
# gpu-deps.sh: fetches the Debian packages the build needs into .gpu-deps/ (ignored by git via
# .git/info/exclude), so they can be carried to the GPU machine, which has no package manager and
# no network. Run it here, in the repository root, once per checkout:
#     bash scripts/gpu-deps.sh
# then name `.gpu-deps` in the device tool's `carry` (scripts/gpu-check.sh unpacks them into
# /tmp, never into /). The core library needs PCRE2 (tokenizer), jansson (JSON) and libcrypto
# (SHA-256 of model files); pkg-config finds them. libmicrohttpd builds the server there (gpu-check
# step 6); its own dependencies (GnuTLS) are taken from the machine.
set -eu
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> .git/info/exclude
mkdir -p .gpu-deps
cd .gpu-deps
packages="libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
          libjansson-dev libjansson4 libssl-dev libssl3 pkgconf pkgconf-bin libpkgconf3
          libmicrohttpd-dev libmicrohttpd12"
apt-get download $packages
ls -l
du -sh .
