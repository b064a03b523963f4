#!/bin/sh
# Installs the C library the way cargo-c lays it out: the header in
# PREFIX/include/bitnet_kernels/, in PREFIX/lib/ libbitnet_kernels.a and the shared library
# under its SONAME (libbitnet_kernels.so.0.<minor> for 0.x versions, .so.<major> from 1.0,
# as build.rs sets it) with the link libbitnet_kernels.so -> that file for the linker, and
# PREFIX/lib/pkgconfig/bitnet_kernels.pc.
#
# Usage (after `cargo build --release`):
#   sh pkgconfig/install.sh PREFIX [LIBDIR]      # LIBDIR: where the built libraries are,
#                                                # default target/release
set -eu
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [LIBDIR]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
libsrc=${2:-$root/target/release}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
if [ "$major" = 0 ]; then soname=libbitnet_kernels.so.0.$minor; else soname=libbitnet_kernels.so.$major; fi
for f in libbitnet_kernels.a libbitnet_kernels.so; do
    [ -f "$libsrc/$f" ] || { echo "$libsrc/$f is missing: run cargo build --release first" >&2; exit 1; }
done
install -d "$prefix/include/bitnet_kernels" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/bitnet_kernels.h" "$prefix/include/bitnet_kernels/"
install -m 644 "$libsrc/libbitnet_kernels.a" "$prefix/lib/"
install -m 755 "$libsrc/libbitnet_kernels.so" "$prefix/lib/$soname"
ln -sf "$soname" "$prefix/lib/libbitnet_kernels.so"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" \
    "$root/pkgconfig/bitnet_kernels.pc.in" >"$prefix/lib/pkgconfig/bitnet_kernels.pc"
echo "installed bitnet_kernels $version into $prefix"
