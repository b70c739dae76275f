#!/usr/bin/env bash
# Fetch Debian's cloud kernel (real VRF and WireGuard modules) for the QEMU lab, without installing it.
#
# Resolves the meta package linux-image-cloud-amd64 to its versioned package, downloads the .deb with
# `apt-get download`, unpacks it with `dpkg -x`, and runs `depmod -b` because the package ships no
# modules.dep. The result is cached under tests/lab/.cache/kernel/<package>_<version>/ so later runs are
# instant. Prints that directory on stdout; it holds:
#   vmlinuz        the kernel image
#   kver           the kernel release (uname -r inside the guest)
#   root/          the unpacked package (root/lib/modules/<kver>/ with modules.dep)
# Needs: apt (after `apt-get update`), dpkg, kmod (depmod). Run as root or as any user that can write the cache.
set -euo pipefail

meta="${KIZUNA_LAB_KERNEL_META:-linux-image-cloud-amd64}"
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KIZUNA_LAB_CACHE:-$lab_dir/.cache}/kernel"

die() { echo "kernel.sh: $*" >&2; exit 1; }
command -v apt-cache >/dev/null || die "apt-cache not found (this needs a Debian host)"
command -v depmod >/dev/null || die "depmod not found: install the Debian package 'kmod'"

# The meta package depends on exactly one versioned image package, e.g. linux-image-6.1.0-48-cloud-amd64.
resolve() {
  apt-cache show --no-all-versions "$meta" 2>/dev/null \
    | sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-cloud-amd64\).*/\1/p' | head -n1
}
pkg="$(resolve)"
if [[ -z "$pkg" && $(id -u) == 0 ]]; then
  # A fresh machine may not have package lists yet.
  apt-get update -q >&2 || true
  pkg="$(resolve)"
fi
[[ -n "$pkg" ]] || die "cannot resolve $meta to a versioned linux-image package (run apt-get update?)"
ver="$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p' | head -n1)"
[[ -n "$ver" ]] || die "no candidate version for $pkg"

out="$cache/${pkg}_${ver}"
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi

echo "kernel.sh: fetching $pkg $ver" >&2
tmp="$(mktemp -d "$cache.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache.tmp.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/deb" "$tmp/root"
# apt-get download writes into the current directory; as root it warns that _apt cannot write there.
(cd "$tmp/deb" && apt-get download -q "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
deb="$(ls "$tmp/deb"/*.deb)"
dpkg -x "$deb" "$tmp/root"

kver="$(ls "$tmp/root/lib/modules" | head -n1)"
[[ -n "$kver" ]] || die "$deb holds no lib/modules/<version>"
depmod -b "$tmp/root" "$kver"
[[ -s "$tmp/root/lib/modules/$kver/modules.dep" ]] || die "depmod produced no modules.dep"
cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
echo "$kver" >"$tmp/kver"
rm -rf "$tmp/deb"
touch "$tmp/.complete"

mkdir -p "$cache"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
