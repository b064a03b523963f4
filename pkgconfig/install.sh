#!/bin/sh
# Installs the C library the way cargo-c lays it out:
#   PREFIX/include/bitnet_kernels/bitnet_kernels.h
#   PREFIX/lib/libbitnet_kernels.a
#   PREFIX/lib/libbitnet_kernels.so.0.<minor>     the shared library under its SONAME (0.x
#                                                 versions; .so.<major> from 1.0, as build.rs
#                                                 sets it), and the link
#   PREFIX/lib/libbitnet_kernels.so -> that file  for the linker
#   PREFIX/lib/pkgconfig/bitnet_kernels.pc        shared: -L, -lbitnet_kernels and an rpath
#   PREFIX/lib/pkgconfig/bitnet_kernels_static.pc the archive and its system libraries
#
# Usage (after `cargo build --release`):
#   sh pkgconfig/install.sh PREFIX [LIBDIR]      # LIBDIR: where the built libraries are,
#                                                # default target/release
# Then, unless PREFIX/lib/pkgconfig is already on pkg-config's search path:
#   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
#   cc app.c $(pkg-config --cflags --libs bitnet_kernels)          # shared
#   cc app.c $(pkg-config --cflags --libs bitnet_kernels_static)   # static
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
# The system libraries Rust's standard library needs in a static link on Linux (glibc), as
# `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs` prints
# them; tests/capi.rs links the example with exactly this list.
native_static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
for f in libbitnet_kernels.a libbitnet_kernels.so; do
    [ -f "$libsrc/$f" ] || { echo "$libsrc/$f is missing: run cargo build --release first" >&2; exit 1; }
done
install -d "$prefix/include/bitnet_kernels" "$prefix/lib/pkgconfig"
install -m 644 "$root/include/bitnet_kernels.h" "$prefix/include/bitnet_kernels/"
install -m 644 "$libsrc/libbitnet_kernels.a" "$prefix/lib/"
install -m 755 "$libsrc/libbitnet_kernels.so" "$prefix/lib/$soname"
ln -sf "$soname" "$prefix/lib/libbitnet_kernels.so"
for pc in bitnet_kernels bitnet_kernels_static; do
    sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" \
        -e "s|@NATIVE_STATIC_LIBS@|$native_static_libs|" \
        "$root/pkgconfig/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
echo "installed bitnet_kernels $version into $prefix"
case ":${PKG_CONFIG_PATH:-}:" in
*":$prefix/lib/pkgconfig:"*) ;;
*) echo "pkg-config finds it once PREFIX/lib/pkgconfig is on its path:"
   echo "  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}" ;;
esac
