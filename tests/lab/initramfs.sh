#!/usr/bin/env bash
# Build the lab guest's initramfs: busybox init, the kernel modules the lab needs, the real iproute2 `ip`,
# `wg` and `nft` with their shared libraries, the guest side of the command channel, and any extra
# programs under test (for example target/release/netd).
#
# usage: initramfs.sh KERNEL_DIR OUT.cpio [EXTRA_PROGRAM...]
#   KERNEL_DIR  the directory kernel.sh prints
#   OUT.cpio    the initramfs to write (an uncompressed newc cpio: the guest unpacks it faster than a
#               gzip one under software emulation)
#   EXTRA_PROGRAM  copied to /usr/local/bin/<name> with the libraries ldd lists
# Env KIZUNA_LAB_MODULES adds module names to the default list.
set -euo pipefail

die() { echo "initramfs.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: initramfs.sh KERNEL_DIR OUT.cpio [EXTRA_PROGRAM...]"
kdir="$(cd "$1" && pwd)"; out="$2"; shift 2
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kver="$(cat "$kdir/kver")"
kroot="$kdir/root"
busybox=/bin/busybox
[[ -x $busybox ]] || die "no busybox at $busybox: install busybox-static"
[[ "$(ldd "$busybox" 2>&1 || true)" == *"not a dynamic"* ]] || die "$busybox is dynamically linked: install busybox-static"
for tool in cpio depmod ldd; do command -v "$tool" >/dev/null || die "$tool not found"; done

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc/lab,proc,sys,dev,tmp,run,var/log,root,lib/modules}
ln -s ../run "$stage/var/run"

cp "$busybox" "$stage/bin/busybox"
ln -s /bin/busybox "$stage/init"
# The kernel runs /sbin/modprobe when nftables or a socket needs a module that is not loaded yet.
ln -s /bin/busybox "$stage/sbin/modprobe"

# copy_program SRC DEST: the program plus every shared library ldd lists, at the same paths.
copy_program() {
  local src="$1" dest="$2" lib
  [[ -x "$src" ]] || die "program $src not found or not executable"
  mkdir -p "$(dirname "$stage$dest")"
  cp -L "$src" "$stage$dest"
  # Rust release binaries keep line tables; the guest does not need them and they cost boot time.
  if [[ "$dest" == /usr/local/bin/* ]] && command -v strip >/dev/null; then strip --strip-debug "$stage$dest" 2>/dev/null || true; fi
  while read -r lib; do
    [[ -n "$lib" && -e "$lib" ]] || continue
    if [[ ! -e "$stage$lib" ]]; then
      mkdir -p "$(dirname "$stage$lib")"
      cp -L "$lib" "$stage$lib"
    fi
  done < <(ldd "$src" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  if ldd "$src" 2>&1 | grep -q 'not found'; then die "$src needs a library that is missing: $(ldd "$src" | grep 'not found')"; fi
}

# busybox prefers its own applets to programs on PATH, so its `ip` would shadow iproute2's; dash does not.
copy_program "$(command -v dash)" /usr/bin/dash
ln -s /usr/bin/dash "$stage/bin/sh"
copy_program "$(command -v ip)" /usr/sbin/ip
copy_program "$(command -v wg)" /usr/bin/wg
copy_program "$(command -v nft)" /usr/sbin/nft
for extra in "$@"; do
  copy_program "$extra" "/usr/local/bin/$(basename "$extra")"
done
# Name databases that ip and nft read when they print or parse symbolic names.
for f in /etc/protocols /etc/services /etc/iproute2/rt_tables /etc/ethertypes; do
  [[ -e $f ]] && { mkdir -p "$(dirname "$stage$f")"; cp -L "$f" "$stage$f"; }
done
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"

# Kernel modules: the listed ones with their dependencies, plus all of netfilter so that whatever
# nftables ruleset the program under test loads finds its expressions.
mods="virtio_pci virtio_net virtio_console virtio-rng vrf wireguard veth dummy 8021q bridge macvlan ${KIZUNA_LAB_MODULES:-}"
mdir="lib/modules/$kver"
mkdir -p "$stage/$mdir"
{
  for m in $mods; do
    deps="$(modprobe -d "$kroot" -S "$kver" --show-depends "$m" 2>/dev/null)" || die "module $m not found in $kver"
    awk '$1=="insmod"{print $2}' <<<"$deps" | sed "s|^$kroot/$mdir/||"
  done
  # Every netfilter module with everything it depends on (modules.dep lists the full closure).
  awk -F': *' '$1 ~ /^kernel\/net\/(ipv4\/|ipv6\/)?netfilter\// { print $1; n = split($2, d, " "); for (i = 1; i <= n; i++) print d[i] }' \
    "$kroot/$mdir/modules.dep"
} | sort -u | while read -r rel; do
  mkdir -p "$(dirname "$stage/$mdir/$rel")"
  cp "$kroot/$mdir/$rel" "$stage/$mdir/$rel"
done
cp "$kroot/$mdir"/modules.{order,builtin,builtin.modinfo} "$stage/$mdir/"
depmod -b "$stage" "$kver"

install -m 0755 "$lab_dir/guest/rc" "$stage/etc/lab/rc"
install -m 0755 "$lab_dir/guest/agent" "$stage/etc/lab/agent"
install -m 0644 "$lab_dir/guest/inittab" "$stage/etc/inittab"

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
