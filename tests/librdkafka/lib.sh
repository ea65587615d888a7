# Shared by tests/librdkafka/run and tests/librdkafka/survey (sourced, not run).
#
# librdkafka's own regression suite (the tests/ directory of the librdkafka source that the
# rdkafka-sys crate vendors) built outside the clone, and one single-node `fjord server` for it.

LRK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$LRK_DIR/../.." && pwd)"
# The Kafka version the test-runner is told to assume (enables the modern code paths).
export TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.1.0}"

die() { printf 'librdkafka: %s\n' "$*" >&2; exit 1; }
say() { printf 'librdkafka: %s\n' "$*" >&2; }

# rdkafka-sys version from Cargo.lock, e.g. "4.10.0+2.12.1" (librdkafka 2.12.1).
rdkafka_sys_version() {
    awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
        "$REPO/Cargo.lock"
}

fjord_bin() {
    local b="${FJORD_BIN:-}"
    [[ -z "$b" && -n "${CARGO_TARGET_DIR:-}" ]] && b="$CARGO_TARGET_DIR/debug/fjord"
    [[ -z "$b" ]] && b="$HOME/.cache/fjord/target/debug/fjord"
    [[ -x "$b" ]] || die "fjord binary not found at $b (build it: cargo build --bins, or set FJORD_BIN)"
    printf '%s\n' "$b"
}

# configure only "tries" its optional libraries: without their -dev packages it quietly
# builds less (no zstd codec, and the tests that parse stats JSON skip without RapidJSON), so
# they are installed up front (as root; otherwise the missing ones are named).
LRK_APT_PKGS=(build-essential python3 libssl-dev zlib1g-dev libzstd-dev rapidjson-dev)
lrk_system_packages() {
    local missing=() p
    for p in "${LRK_APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing system packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
}

# Sets LRK_TESTS (the built tests/ directory with test-runner). Copies the vendored source
# out of the cargo registry into ~/.cache/fjord/librdkafka-tests/<rdkafka-sys version> and
# builds it once; a stamp file marks a finished build, so a version change builds anew.
lrk_build() {
    local ver src home t0
    ver="$(rdkafka_sys_version)"
    [[ -n "$ver" ]] || die "rdkafka-sys not found in $REPO/Cargo.lock"
    # Named by the librdkafka version ("2.12.1").
    home="${FJORD_LIBRDKAFKA_HOME:-$HOME/.cache/fjord/librdkafka-tests}/${ver#*+}"
    LRK_TESTS="$home/tests"
    [[ -f "$home/.fjord-built" && -x "$LRK_TESTS/test-runner" ]] && return 0

    src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$ver"/librdkafka 2>/dev/null | head -1)"
    if [[ -z "$src" ]] && command -v cargo >/dev/null; then
        # Not unpacked yet (nothing built the tests crate): cargo fetch unpacks it.
        say "rdkafka-sys $ver not in the cargo registry: cargo fetch"
        (cd "$REPO" && cargo fetch --locked >&2) || die "cargo fetch failed"
        src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$ver"/librdkafka 2>/dev/null | head -1)"
    fi
    [[ -n "$src" && -d "$src/tests" ]] ||
        die "librdkafka source of rdkafka-sys $ver not in the cargo registry (run: cargo fetch)"
    lrk_system_packages
    say "building librdkafka $ver and its test-runner in $home (once; ~5 min on 2 cores)"
    t0=$SECONDS
    rm -rf "$home"
    mkdir -p "$(dirname "$home")"
    cp -r "$src" "$home"
    # (Logs are named fjord-*.log: configure loads every ./configure.* file as a module.)
    # No Kerberos (GSSAPI) and no libcurl (OIDC): Fjord has no SASL. SSL, zlib and zstd are
    # used when their -dev packages are installed (zstd is needed for test 0017's zstd codec).
    (cd "$home" && ./configure --disable-gssapi --disable-curl >"$home/fjord-configure.log" 2>&1) ||
        die "configure failed: see $home/fjord-configure.log"
    (cd "$home" && make -j2 libs >"$home/fjord-build.log" 2>&1 && make -j2 -C tests build >>"$home/fjord-build.log" 2>&1) ||
        die "build failed: see $home/fjord-build.log"
    touch "$home/.fjord-built"
    say "built in $((SECONDS - t0))s"
}

# Starts one `fjord server` (single node, auto-created topics get 4 partitions as the suite
# assumes, Kafka's default 3 s initial rebalance delay: 0113 counts rebalance callbacks that
# assume both consumers join within it) with every port 0 and reads the Kafka port back. Sets FJORD_PID, FJORD_LOG,
# FJORD_BOOTSTRAP. $1: a fresh directory for its config and data; $2: the test scenario,
# "default" or "noautocreate" (auto.create.topics.enable=false, as the suite's scenarios/).
fjord_start() {
    local dir="$1" scenario="${2:-default}" bin log_dir deadline port autocreate=true
    bin="$(fjord_bin)"
    mkdir -p "$dir"
    [[ "$scenario" == noautocreate ]] && autocreate=false
    cat >"$dir/fjord.toml" <<TOML
node_id = 1
data_dir = "$dir/data"
kafka_addr = "127.0.0.1:0"
rpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"

[controller]

[broker]
auto_create_topics_enable = $autocreate
num_partitions = 4
offsets_topic_replication_factor = 1
transaction_state_log_replication_factor = 1
offsets_topic_num_partitions = 4
group_initial_rebalance_delay_ms = ${LRK_REBALANCE_DELAY_MS:-3000}
TOML
    log_dir="${FJORD_E2E_LOG_DIR:-/tmp/fjord-e2e-logs}"
    mkdir -p "$log_dir"
    FJORD_LOG="$log_dir/librdkafka-fjord-$$-$(date +%s).log"
    : >"$FJORD_LOG"
    NO_COLOR=1 "$bin" server --config "$dir/fjord.toml" >"$FJORD_LOG" 2>&1 &
    FJORD_PID=$!
    deadline=$((SECONDS + 30))
    port=""
    while [[ -z "$port" ]]; do
        kill -0 "$FJORD_PID" 2>/dev/null || { tail -30 "$FJORD_LOG" >&2; die "fjord exited during startup"; }
        ((SECONDS < deadline)) || { fjord_stop; tail -30 "$FJORD_LOG" >&2; die "fjord not ready within 30s"; }
        port="$(sed -n 's/.*fjord node ready.*kafka_listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$FJORD_LOG" | head -1)"
        [[ -n "$port" ]] || sleep 0.1
    done
    FJORD_BOOTSTRAP="127.0.0.1:$port"
    # Ready when Metadata lists the node itself.
    until FJORD_BOOTSTRAP="$FJORD_BOOTSTRAP" timeout 10 "$bin" topic list >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { fjord_stop; tail -30 "$FJORD_LOG" >&2; die "fjord answers no Metadata within 30s"; }
        sleep 0.2
    done
}

# SIGTERM, then SIGKILL after 20 s.
fjord_stop() {
    [[ -n "${FJORD_PID:-}" ]] || return 0
    if kill -0 "$FJORD_PID" 2>/dev/null; then
        kill -TERM "$FJORD_PID" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$FJORD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FJORD_PID" 2>/dev/null || true
    fi
    wait "$FJORD_PID" 2>/dev/null || true
    FJORD_PID=""
}

# Runs the test-runner for one test number against $FJORD_BOOTSTRAP.
# $1 test number, $2 timeout in seconds, $3 output file, further args go to test-runner.
lrk_run_test() {
    local num="$1" secs="$2" out="$3" conf
    shift 3
    conf="$(dirname "$out")/test.conf"
    printf 'bootstrap.servers=%s\n' "$FJORD_BOOTSTRAP" >"$conf"
    # KAFKA_PATH-dependent tests call $KAFKA_PATH/bin/*.sh with $BROKERS.
    (cd "$LRK_TESTS" &&
        LD_LIBRARY_PATH="../src:../src-cpp" RDKAFKA_TEST_CONF="$conf" TESTS="$num" \
        BROKERS="$FJORD_BOOTSTRAP" TEST_LEVEL="${TEST_LEVEL:-2}" \
        timeout -k 10 "$secs" ./test-runner -p1 "$@" >"$out" 2>&1)
}
