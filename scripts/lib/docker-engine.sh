# Sourced by scripts/test: make sure a Docker engine answers, starting one if needed.
#
# Machines of the `polyglot` kind have the docker client but no engine running. As root, this
# installs Debian's docker.io (and docker-compose) when they are missing, starts `dockerd` with
# its own log file, and stops it again when the sourcing script exits. Anyone else gets the
# exact reason and nothing is skipped: the compose tests and the Jepsen run need the engine.
# Needs DOCKERD_LOG (where dockerd writes).

# Set when this script started the engine (so only that one is stopped).
DOCKERD_PID=""

docker_engine_stop() {
    [[ -n "$DOCKERD_PID" ]] || return 0
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=""
}

# Returns 0 once `docker info` answers; prints why not and returns 1 otherwise.
docker_engine_ensure() {
    docker info >/dev/null 2>&1 && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "no Docker engine answers \`docker info\`, and starting one needs root:" \
            "start Docker (e.g. sudo systemctl start docker) or run scripts/test as root" >&2
        return 1
    fi
    local pkgs=()
    command -v dockerd >/dev/null || pkgs+=(docker.io)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || pkgs+=(docker-compose)
    command -v iptables >/dev/null || pkgs+=(iptables)
    if ((${#pkgs[@]})); then
        echo "docker: apt-get install ${pkgs[*]}" >&2
        # (With stale package lists, as on a machine whose other packages were all present.)
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
            { apt-get update -qq >&2 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; }; } \
            || { echo "apt-get install ${pkgs[*]} failed" >&2; return 1; }
    fi
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    echo "docker: starting dockerd (log: $DOCKERD_LOG)" >&2
    dockerd >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 150); do
        if docker info >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            DOCKERD_PID=""
            echo "dockerd exited at start; the end of $DOCKERD_LOG:" >&2
            tail -n 20 "$DOCKERD_LOG" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "dockerd did not answer within 30 s; the end of $DOCKERD_LOG:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    docker_engine_stop
    return 1
}
