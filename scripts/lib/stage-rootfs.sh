#!/usr/bin/env bash
# Lays out the root filesystem of the fjord runtime image from one built binary:
#
#   stage-rootfs.sh BINARY OUT_DIR [--keep-debug]
#
# OUT_DIR/rootfs/  what goes to / (owned by root in the image):
#     usr/local/bin/fjord                  the binary (debug info stripped unless --keep-debug)
#     <each library ldd reports>, the dynamic loader among them, at the path ldd names
#     etc/passwd, etc/group                root and fjord (65532), no shell
#     etc/nsswitch.conf                    hosts from /etc/hosts, then DNS
#     etc/fjord/fjord.toml                 the image's default config (deploy/docker/fjord.toml)
#     tmp/                                 mode 1777
# OUT_DIR/data/    an empty directory, copied to /var/lib/fjord owned by 65532 (COPY --chown),
#                  so that neither this script nor the host needs root.
#
# Both deploy/docker/Dockerfile (in its builder stage) and scripts/build-image (on the host) run
# this script, so the two ways of building give the same image. OUT_DIR is emptied first.
set -euo pipefail

die() { echo "stage-rootfs: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: stage-rootfs.sh BINARY OUT_DIR [--keep-debug]"
binary=$1 out=$2 keep_debug=${3:-}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
default_config="$here/deploy/docker/fjord.toml"

[[ -f "$binary" && -x "$binary" ]] || die "$binary is not an executable file"
[[ -f "$default_config" ]] || die "$default_config missing"
command -v ldd >/dev/null || die "ldd not found (Debian: apt-get install libc-bin)"
case "$out" in
    "" | / | "$HOME") die "refusing to empty OUT_DIR '$out'" ;;
esac

rm -rf "$out"
root="$out/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/fjord" "$root/tmp" "$out/data"
chmod 1777 "$root/tmp"

install -m 0755 "$binary" "$root/usr/local/bin/fjord"
if [[ "$keep_debug" != "--keep-debug" ]] && command -v objcopy >/dev/null; then
    # Symbols stay (panics still name functions); DWARF line tables go: a release binary
    # shrinks by about half, a debug one by far more.
    objcopy --strip-debug "$root/usr/local/bin/fjord"
fi

# Exactly what the binary loads: `ldd` lists the libraries (NAME => PATH) and the loader (PATH).
ldd_out=$(ldd "$binary" 2>&1) || {
    # A statically linked binary needs no library at all.
    grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out" && ldd_out="" \
        || die "ldd $binary failed: $ldd_out"
}
if grep -q 'not found' <<<"$ldd_out"; then
    die "$binary needs libraries this machine lacks: $(grep 'not found' <<<"$ldd_out" | tr -s '\t\n' ' ')"
fi
libs=()
while read -r line; do
    case "$line" in
        *"=> /"*) path=${line#*=> }; libs+=("${path%% (*}") ;;
        /*) libs+=("${line%% (*}") ;;
        *) ;; # linux-vdso: provided by the kernel
    esac
done <<<"$ldd_out"
for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    # -L: Debian's /lib64/ld-linux-x86-64.so.2 and lib*.so.N are symlinks; copy the file.
    cp -L "$lib" "$root$lib"
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
fjord:x:65532:65532:fjord:/var/lib/fjord:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
fjord:x:65532:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
install -m 0644 "$default_config" "$root/etc/fjord/fjord.toml"

echo "stage-rootfs: $out/rootfs: fjord + ${#libs[@]} libraries ($(du -sh "$root" | cut -f1))"
