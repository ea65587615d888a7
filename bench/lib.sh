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

# Stop the nodes start_fjord started (SIGTERM, then SIGKILL after 10 s) and remove their data.
stop_fjord() {
    local pid
    for pid in "${FJORD_PIDS[@]:-$FJORD_PID}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${FJORD_PIDS[@]:-$FJORD_PID}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    FJORD_PIDS=()
    rm -rf "$DATA"
}

free_ports() { # N: N distinct free ports on 127.0.0.1, one a line (all held open until printed)
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# Start N (default 1) `fjord server` nodes from $FJORD, each a combined controller + broker
# (voters 1..N), on free ports, data in a temporary dir, stopped and removed on exit. The
# configs are written here rather than taken from `fjord dev` so that the settings match
# scripts/kafka's: group.initial.rebalance.delay.ms=0 (a consumer group forms at once, as in
# Kafka's shipped server.properties), replication min(3, N) for new and internal topics.
# Sets FJORD_PIDS (node i at index i-1), FJORD_PID (node 1), FJORD_HTTP (node 1's /metrics
# address), B (every node's Kafka address, comma-separated) and exports FJORD_BOOTSTRAP; node
# i logs to $OUT/fjord.log (node 1) or $OUT/fjord-node-i.log.
start_fjord() {
    local nodes="${1:-1}" i rf voters="" kports=() rports=() hports=() logf
    DATA="$(mktemp -d /tmp/fjord-bench.XXXXXX)"
    rf=$((nodes < 3 ? nodes : 3))
    local ports
    mapfile -t ports < <(free_ports $((3 * nodes)))
    kports=("${ports[@]:0:nodes}") rports=("${ports[@]:nodes:nodes}") hports=("${ports[@]:2*nodes:nodes}")
    if ((nodes > 1)); then
        for i in $(seq "$nodes"); do voters+="${voters:+, }\"$i@127.0.0.1:${rports[i-1]}\""; done
    fi
    B="" FJORD_PIDS=()
    for i in $(seq "$nodes"); do
        mkdir -p "$DATA/node-$i"
        cat >"$DATA/node-$i/fjord.toml" <<EOT
node_id = $i
data_dir = "$DATA/node-$i/data"
kafka_addr = "127.0.0.1:${kports[i-1]}"
rpc_addr = "127.0.0.1:${rports[i-1]}"
http_addr = "127.0.0.1:${hports[i-1]}"

[controller]
voters = [$voters]

[broker]
default_replication_factor = $rf
offsets_topic_replication_factor = $rf
transaction_state_log_replication_factor = $rf
group_initial_rebalance_delay_ms = 0
EOT
        logf="$OUT/fjord.log"
        ((i == 1)) || logf="$OUT/fjord-node-$i.log"
        NO_COLOR=1 "$FJORD" server --config "$DATA/node-$i/fjord.toml" </dev/null >"$logf" 2>&1 &
        FJORD_PIDS+=($!)
        B+="${B:+,}127.0.0.1:${kports[i-1]}"
    done
    FJORD_PID=${FJORD_PIDS[0]}
    FJORD_HTTP="127.0.0.1:${hports[0]}"
    trap stop_fjord EXIT
    export FJORD_BOOTSTRAP="$B"
    local deadline=$((SECONDS + 60)) ready
    while :; do
        ready=1
        for i in $(seq "$nodes"); do
            kill -0 "${FJORD_PIDS[i-1]}" 2>/dev/null || { tail -30 "$OUT/fjord.log" >&2; die "fjord node $i exited during startup"; }
            curl -fs "http://127.0.0.1:${hports[i-1]}/readyz" >/dev/null 2>&1 || ready=0
        done
        ((ready)) && "$FJORD" topic list >/dev/null 2>&1 && break
        ((SECONDS < deadline)) || { tail -30 "$OUT/fjord.log" >&2; die "fjord not ready within 60 s"; }
        sleep 0.2
    done
    log "fjord ($nodes node(s)) pids ${FJORD_PIDS[*]} on $B, data $DATA, results $OUT"
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
