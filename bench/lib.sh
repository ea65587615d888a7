# What the benchmarks share (sourced by bench/run and bench/transactions; they set ROOT,
# CARGO_TARGET_DIR, CACHE and OUT, and define log and die).

# Build fjord --release; sets ROCKSDB_NOTE to say which RocksDB it links. RocksDB's C++ takes
# ~25 minutes to compile again for the release profile, so the library cached by
# scripts/lib/rocksdb-cache.sh (compiled by the dev profile, at -O0) is linked when there is
# one, unless BENCH_BUILD_ROCKSDB=1: RocksDB-bound work (controller metadata) is then slower
# than in a fully optimized build; the record log itself does not go through RocksDB.
build_fjord() {
    # shellcheck source=scripts/lib/rocksdb-cache.sh
    source "$ROOT/scripts/lib/rocksdb-cache.sh"
    ROCKSDB_NOTE="RocksDB: release build"
    if [[ "${BENCH_BUILD_ROCKSDB:-0}" == 1 ]]; then
        unset ROCKSDB_LIB_DIR ROCKSDB_STATIC
    else
        rocksdb_use_cache
        [[ -n "${ROCKSDB_LIB_DIR:-}" ]] && ROCKSDB_NOTE="RocksDB: cached static lib (dev profile, -O0)"
    fi
    log "cargo build --release --bin fjord ($ROCKSDB_NOTE)"
    cargo build --release -p fjord-server --bin fjord
}

# Stop the node start_fjord started (SIGTERM, then SIGKILL after 10 s) and remove its data.
stop_fjord() {
    if kill -0 "$FJORD_PID" 2>/dev/null; then
        kill -TERM "$FJORD_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$FJORD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FJORD_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}

# Start `fjord dev` from $FJORD on a free port with its data in a temporary dir, stopped and
# removed on exit; sets FJORD_PID, B (its bootstrap address) and exports FJORD_BOOTSTRAP.
start_fjord() {
    DATA="$(mktemp -d /tmp/fjord-bench.XXXXXX)"
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    B="127.0.0.1:$PORT"
    NO_COLOR=1 "$FJORD" dev --data-dir "$DATA/data" --kafka-addr "$B" \
        </dev/null >"$OUT/fjord.log" 2>&1 &
    FJORD_PID=$!
    trap stop_fjord EXIT
    export FJORD_BOOTSTRAP="$B"
    deadline=$((SECONDS + 30))
    until "$FJORD" topic list >/dev/null 2>&1; do
        kill -0 "$FJORD_PID" 2>/dev/null || { tail -30 "$OUT/fjord.log" >&2; die "fjord exited during startup"; }
        ((SECONDS < deadline)) || { tail -30 "$OUT/fjord.log" >&2; die "fjord not ready within 30 s"; }
        sleep 0.1
    done
    log "fjord pid $FJORD_PID on $B, data $DATA, results $OUT"
}

# librdkafka's load tool, built once from the librdkafka source vendored by rdkafka-sys into
# $CACHE (about 1.5 minutes); sets PERF. RDKAFKA_PERFORMANCE names one of your own.
build_rdkafka_performance() {
    PERF="${RDKAFKA_PERFORMANCE:-}"
    if [[ -z "$PERF" ]]; then
        src=""
        for d in "$HOME"/.cargo/registry/src/*/rdkafka-sys-*/librdkafka; do
            [[ -f "$d/examples/rdkafka_performance.c" ]] && src="$d"
        done
        if [[ -z "$src" ]]; then
            cargo fetch --quiet
            for d in "$HOME"/.cargo/registry/src/*/rdkafka-sys-*/librdkafka; do
                [[ -f "$d/examples/rdkafka_performance.c" ]] && src="$d"
            done
        fi
        [[ -n "$src" ]] || die "librdkafka source (rdkafka-sys) not found in ~/.cargo/registry"
        ver="$(basename "$(dirname "$src")")"
        PERF="$CACHE/$ver/examples/rdkafka_performance"
        if [[ ! -x "$PERF" ]]; then
            log "building rdkafka_performance from $src (about 1.5 minutes)"
            rm -rf "$CACHE/$ver.tmp"
            cp -r "$src" "$CACHE/$ver.tmp"
            (
                cd "$CACHE/$ver.tmp"
                ./configure --disable-gssapi >"$OUT/rdkafka-configure.log" 2>&1
                make -j"$(nproc)" -C src librdkafka.a >"$OUT/rdkafka-make.log" 2>&1
                make -C examples rdkafka_performance >>"$OUT/rdkafka-make.log" 2>&1
            ) || die "building rdkafka_performance failed; see $OUT/rdkafka-*.log"
            rm -rf "${CACHE:?}/$ver"
            mv "$CACHE/$ver.tmp" "$CACHE/$ver"
        fi
    fi
    [[ -x "$PERF" ]] || die "no rdkafka_performance at $PERF"
}
