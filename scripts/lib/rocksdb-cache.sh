# Sourced by scripts/test, scripts/dev and bench/run: reuse one compiled RocksDB.
#
# RocksDB's C++ takes 20-40 minutes to compile on 2 cores, and cargo compiles it again whenever
# the feature set of librocksdb-sys's build dependencies changes (adding an unrelated crate that
# shares bindgen's dependencies is enough). So once librocksdb-sys has built it, librocksdb.a is
# copied to a cache keyed by the librocksdb-sys version and reused through ROCKSDB_LIB_DIR
# (the crate then only runs bindgen and links). Delete the cache folder to force a rebuild.
# Needs ROOT (the checkout) and CARGO_TARGET_DIR.

rocksdb_cache_dir() {
    local version
    version="$(grep -A1 '^name = "librocksdb-sys"$' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"$/\1/p')"
    # The features (lz4, zstd; no other codecs) are fixed in the workspace Cargo.toml.
    echo "$HOME/.cache/fjord/rocksdb-${version:-unknown}-lz4-zstd"
}

# Point librocksdb-sys at the cached library, if there is one (and nobody chose another).
rocksdb_use_cache() {
    local dir
    dir="$(rocksdb_cache_dir)"
    if [[ -z "${ROCKSDB_LIB_DIR:-}" && -f "$dir/librocksdb.a" ]]; then
        export ROCKSDB_LIB_DIR="$dir" ROCKSDB_STATIC=1
    fi
}

# After a build that compiled RocksDB: keep its library for the next builds.
rocksdb_save_cache() {
    local dir newest=""
    dir="$(rocksdb_cache_dir)"
    [[ -f "$dir/librocksdb.a" ]] && return 0
    # Only libraries of build scripts that finished: cargo writes `output` after a successful
    # run, so an archive left half-written by an interrupted build is never cached.
    for a in "$CARGO_TARGET_DIR"/*/build/librocksdb-sys-*/out/librocksdb.a; do
        [[ -f "$a" && -f "${a%/out/librocksdb.a}/output" ]] || continue
        [[ -z "$newest" || "$a" -nt "$newest" ]] && newest="$a"
    done
    [[ -n "$newest" ]] || return 0
    mkdir -p "$dir"
    cp "$newest" "$dir/librocksdb.a.tmp" && mv "$dir/librocksdb.a.tmp" "$dir/librocksdb.a"
    echo "rocksdb: cached $newest in $dir" >&2
}
