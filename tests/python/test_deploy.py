"""The container deployment in deploy/: Kubernetes manifests, compose files, the image.

Offline checks: every manifest under deploy/k8s validates strictly against Kubernetes'
schemas (kubernetes-validate bundles them), and the wiring a schema cannot see holds (probe
ports and paths, node ids, voters, volume names, listener names and ports). The compose files
are parsed by docker-compose / `docker compose` when one is installed, and their per-node
listeners and published ports agree. With Docker, scripts/build-image builds the image from
the test binary and a container of it runs as the fjord user and stops on SIGTERM.
"""

import json
import os
import re
import shutil
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import REPO, fjord_bin

K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "deploy" / "compose"
DOCKER = REPO / "deploy" / "docker"
COMPOSE_FILES = {3: COMPOSE / "docker-compose.yml", 5: COMPOSE / "docker-compose.5.yml"}
FJORD_UID = 65532
# The oldest Kubernetes the manifests target (the pod-index label is 1.28+) and the newest
# whose schemas the pinned kubernetes-validate bundles.
K8S_VERSIONS = ["1.28.0", "1.37.0"]


def load_k8s():
    """Every resource of every manifest, as (file name, resource)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def k8s_resource(kind: str, name: str) -> dict:
    found = [d for _, d in load_k8s() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(found)}"
    return found[0]


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def listeners(entries) -> dict:
    """["NAME://HOST:PORT", ...] (a list or a comma-separated string) -> {NAME: (HOST, PORT)}."""
    if isinstance(entries, str):
        entries = [e for e in entries.split(",") if e.strip()]
    out = {}
    for entry in entries:
        name, rest = entry.strip().split("://", 1)
        host, port = rest.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


# ---------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_strictly(version):
    import kubernetes_validate
    docs = load_k8s()
    kinds = sorted(d["kind"] for _, d in docs)
    assert kinds == [
        "ConfigMap",
        "PodDisruptionBudget",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {doc['kind']} {'.'.join(map(str, e.path))}: {e.message}")
    # The validator is strict: a misspelt field fails (so the loop above can fail).
    sts = json.loads(json.dumps(k8s_resource("StatefulSet", "fjord")))
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpget"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, version, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "namespace" not in kustomization, "the manifests are namespace-agnostic"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    for _, doc in load_k8s():
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_kustomize_builds_the_manifests():
    if not shutil.which("kubectl"):
        pytest.fail("kubectl (with its built-in kustomize) is not installed: install kubectl")
    import kubernetes_validate
    r = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    built = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(d["kind"] for _, d in load_k8s())
    for doc in built:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    (sts,) = [d for d in built if d["kind"] == "StatefulSet"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "fjord:dev"


def test_k8s_statefulset_wiring():
    sts = k8s_resource("StatefulSet", "fjord")
    headless = k8s_resource("Service", sts["spec"]["serviceName"])
    client = k8s_resource("Service", "fjord")
    pdb = k8s_resource("PodDisruptionBudget", "fjord")
    config_map = k8s_resource("ConfigMap", "fjord-config")
    file = tomllib.loads(config_map["data"]["fjord.toml"])
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = container["env"]
    env_by_name = {e["name"]: e for e in env}
    replicas = spec["replicas"]

    # Peers resolve each other before any is ready; pods start together.
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert spec["podManagementPolicy"] == "Parallel"
    pod_labels = spec["template"]["metadata"]["labels"]
    for selector in (
        spec["selector"]["matchLabels"],
        headless["spec"]["selector"],
        client["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    for svc in (headless, client):
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, f"{svc['metadata']['name']}: {p}"
    assert pdb["spec"]["maxUnavailable"] == 1

    # Ports the node binds (from the ConfigMap) are the ports the pod declares.
    assert ports["http"] == port_of(file["http_addr"])
    assert ports["rpc"] == port_of(file["rpc_addr"])
    (kafka_listener,) = listeners(file["listeners"]).items()
    assert ports["kafka"] == kafka_listener[1][1]

    # Probes and preStop use the HTTP port and the right endpoints.
    probes = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "http"), probe
    pre_stop = container["lifecycle"]["preStop"]["httpGet"]
    assert (pre_stop["path"], pre_stop["port"]) == ("/shutdown", "http")
    assert pod["terminationGracePeriodSeconds"] >= 30

    # Node id = pod ordinal; voters = every pod, by its headless name, ids 0..replicas-1.
    node_id = env_by_name["FJORD_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert node_id == "metadata.labels['apps.kubernetes.io/pod-index']"
    suffix = f".{headless['metadata']['name']}.$(POD_NAMESPACE).svc"
    voters = env_by_name["FJORD_VOTERS"]["value"].split(",")
    assert voters == [
        f"{i}@{sts['metadata']['name']}-{i}{suffix}:{ports['rpc']}" for i in range(replicas)
    ]
    assert env_by_name["FJORD_ADVERTISED_RPC_ADDR"]["value"] == f"$(POD_NAME){suffix}:{ports['rpc']}"
    advertised = listeners(env_by_name["FJORD_ADVERTISED_LISTENERS"]["value"])
    assert advertised == {kafka_listener[0]: (f"$(POD_NAME){suffix}", ports["kafka"])}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        assert env_by_name[name]["valueFrom"]["fieldRef"]["fieldPath"] == field
    # $(VAR) expands only variables defined earlier in the list.
    for i, e in enumerate(env):
        for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
            assert ref in [x["name"] for x in env[:i]], f"{e['name']} uses $({ref}) before it is set"

    # The data volume: the claim template is what is mounted at the configured data_dir.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[file["data_dir"]] == claim["metadata"]["name"]
    config_volume = next(v for v in pod["volumes"] if v["name"] == mounts["/etc/fjord"])
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    config_env = env_by_name.get("FJORD_CONFIG", {}).get("value", "/etc/fjord/fjord.toml")
    assert config_env == "/etc/fjord/fjord.toml"

    # Non-root, as the image's user.
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == sc["runAsGroup"] == sc["fsGroup"] == FJORD_UID
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert "limits" in container["resources"] and "requests" in container["resources"]
    # Cluster-wide replication defaults.
    assert file["broker"]["default_replication_factor"] == 3
    assert file["broker"]["min_insync_replicas"] == 2
    assert file["broker"]["offsets_topic_replication_factor"] == 3


# ---------------------------------------------------------------- Dockerfiles


def dockerfile_tail(path: Path) -> list:
    """The instructions after the last COPY, comments dropped, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    last_copy = max(i for i, l in enumerate(lines) if l.startswith("COPY "))
    return lines[last_copy + 1 :]


def test_both_dockerfiles_build_the_same_runtime_image():
    source = DOCKER / "Dockerfile"
    local = DOCKER / "Dockerfile.local"
    tail = dockerfile_tail(source)
    assert tail == dockerfile_tail(local)
    assert f"USER {FJORD_UID}:{FJORD_UID}" in tail
    assert 'VOLUME ["/var/lib/fjord"]' in tail
    assert 'ENTRYPOINT ["/usr/local/bin/fjord"]' in tail
    assert any(l.startswith("HEALTHCHECK") and '"health", "--ready"' in l for l in tail)
    exposed = {int(p) for l in tail if l.startswith("EXPOSE") for p in l.split()[1:]}
    assert {9092, 9094, 19092, 9644} <= exposed
    # The data directory is handed to the fjord user in both.
    for path in (source, local):
        assert f"--chown={FJORD_UID}:{FJORD_UID}" in path.read_text()
    assert "stage-rootfs.sh" in source.read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "target/" in ignored and ".git" in ignored


# ---------------------------------------------------------------- compose


def interpolate(value, env: dict):
    """Compose's ${NAME}, ${NAME:-default} and ${NAME-default} in every string of value."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m):
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", sub, value)


def load_compose(path: Path, env=None) -> dict:
    return interpolate(yaml.safe_load(path.read_text()), env or {})


def compose_commands():
    """The compose tools installed here: `docker compose` (v2 plugin), `docker-compose`."""
    found = []
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if r.returncode == 0:
            found.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    return found


@pytest.mark.parametrize("nodes", sorted(COMPOSE_FILES))
def test_compose_file_is_accepted_by_compose(nodes):
    tools = compose_commands()
    if not tools:
        pytest.fail("neither `docker compose` nor docker-compose is installed (Debian: apt-get install docker-compose; scripts/test does it as root)")
    for tool in tools:
        r = subprocess.run(
            tool + ["-f", str(COMPOSE_FILES[nodes]), "config", "--services"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, f"{' '.join(tool)} config: {r.stderr}"
        assert sorted(r.stdout.split()) == [f"fjord-{i}" for i in range(1, nodes + 1)]


@pytest.mark.parametrize("nodes", sorted(COMPOSE_FILES))
def test_compose_nodes_advertise_what_they_publish(nodes):
    compose = load_compose(COMPOSE_FILES[nodes])
    shared = tomllib.loads((COMPOSE / "fjord.toml").read_text())
    bound = listeners(shared["listeners"])
    rpc_port = port_of(shared["rpc_addr"])
    http_port = port_of(shared["http_addr"])
    services = compose["services"]
    assert sorted(services) == [f"fjord-{i}" for i in range(1, nodes + 1)]
    voters = ",".join(f"{i}@fjord-{i}:{rpc_port}" for i in range(1, nodes + 1))
    data_volumes = set()
    for n in range(1, nodes + 1):
        svc = services[f"fjord-{n}"]
        env = svc["environment"]
        assert svc["image"] == "fjord:dev"
        assert svc["hostname"] == f"fjord-{n}"
        # Fault tests kill and pause nodes: nothing may bring them back behind their back.
        assert svc["restart"] == "no"
        assert "container_name" not in svc, "names come from the project (see the file's header)"
        assert "depends_on" not in svc, "no node can be healthy before a quorum runs"
        assert env["FJORD_NODE_ID"] == str(n)
        assert env["FJORD_VOTERS"] == voters
        assert env["FJORD_ADVERTISED_RPC_ADDR"] == f"fjord-{n}:{rpc_port}"
        advertised = listeners(env["FJORD_ADVERTISED_LISTENERS"])
        assert advertised == {
            "INTERNAL": (f"fjord-{n}", bound["INTERNAL"][1]),
            "EXTERNAL": ("localhost", 29090 + n),
        }
        published = {}
        for p in svc["ports"]:
            ip, host_port, container_port = p.split(":")
            assert ip == "127.0.0.1"
            published[int(host_port)] = int(container_port)
        # Host port 2909N reaches the EXTERNAL listener that advertises it; 2964N the HTTP port.
        assert published == {29090 + n: bound["EXTERNAL"][1], 29640 + n: http_port}
        mounts = dict(v.split(":")[1::-1] for v in svc["volumes"])
        data_volume = mounts[shared["data_dir"]]
        assert data_volume in compose["volumes"]
        data_volumes.add(data_volume)
        assert (COMPOSE / mounts["/etc/fjord/fjord.toml"]).resolve() == COMPOSE / "fjord.toml"
        assert svc["healthcheck"]["test"] == ["CMD", "/usr/local/bin/fjord", "health", "--ready"]
    assert len(data_volumes) == nodes
    assert shared["broker"] == {
        "default_replication_factor": 3,
        "min_insync_replicas": 2,
        "offsets_topic_replication_factor": 3,
    }
    # The env knobs the file documents.
    other = load_compose(
        COMPOSE_FILES[nodes],
        {"FJORD_IMAGE": "reg/fjord:1", "FJORD_EXTERNAL_HOST": "h.example", "FJORD_PUBLISH_IP": "0.0.0.0"},
    )
    svc = other["services"]["fjord-2"]
    assert svc["image"] == "reg/fjord:1"
    assert "EXTERNAL://h.example:29092" in svc["environment"]["FJORD_ADVERTISED_LISTENERS"]
    assert "0.0.0.0:29092:9094" in svc["ports"]


def test_compose_files_never_share_data_volumes():
    three = set(load_compose(COMPOSE_FILES[3])["volumes"])
    five = set(load_compose(COMPOSE_FILES[5])["volumes"])
    assert not three & five


# ---------------------------------------------------------------- the image, with Docker


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def docker(*args, check=True, timeout=60) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r


@pytest.mark.timeout(120)
def test_image_runs_as_fjord_user_and_stops_on_sigterm():
    if not docker_available():
        pytest.fail("no Docker daemon reachable (`docker info` fails): scripts/test starts dockerd as root; otherwise start a Docker engine")
    binary = fjord_bin()
    tag = "fjord:pytest"
    r = subprocess.run(
        [str(REPO / "scripts" / "build-image"), "--binary", str(binary), "--tag", tag],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, f"scripts/build-image: {r.stdout}{r.stderr}"

    version = docker("run", "--rm", tag, "--version").stdout
    assert version.startswith("fjord "), version
    assert docker("image", "inspect", "-f", "{{.Config.User}}", tag).stdout.strip() == "65532:65532"

    # The default command: a single node from the image's own config, as PID 1.
    name = f"fjord-pytest-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::9092", tag)
    try:
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            status = docker("inspect", "-f", "{{.State.Health.Status}} {{.State.Running}}", name).stdout
            if status.split()[:1] == ["healthy"] or "false" in status:
                break
            time.sleep(0.5)
        logs = docker("logs", name, check=False)
        assert status.split()[0] == "healthy", f"{status}\n{logs.stdout}{logs.stderr}"
        pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        uid_line = next(
            l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Uid:")
        )
        assert uid_line.split()[1:] == [str(FJORD_UID)] * 4, uid_line

        # docker stop sends SIGTERM; fjord must exit by itself, well before the SIGKILL at 20 s.
        started = time.monotonic()
        docker("stop", "-t", "20", name, timeout=40)
        stop_seconds = time.monotonic() - started
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code == "0", f"exit {exit_code} after {stop_seconds:.1f}s (137 = SIGKILL)"
        assert stop_seconds < 15, f"stop took {stop_seconds:.1f}s"
    finally:
        docker("rm", "-f", "-v", name, check=False)


# ---------------------------------------------------------------- the SASL_SSL variants

SASL_SSL_COMPOSE = COMPOSE / "docker-compose.sasl-ssl.yml"
K8S_SASL_SSL = REPO / "deploy" / "k8s-sasl-ssl"


def check_secure_config(conf: dict, certs_dir: str):
    """What both SASL_SSL variants promise: every listener but a loopback PLAINTEXT one is
    SASL_SSL with SCRAM-SHA-512 only, the authorizer is on with User:admin a super user, and
    the TLS files are where the certificates are mounted."""
    protocols = dict(e.split(":") for e in conf["listener_security_protocol_map"])
    bound = listeners(conf["listeners"])
    assert sorted(protocols) == sorted(bound), "every listener is in the map (as Kafka requires)"
    for name, (host, _) in bound.items():
        if protocols[name] == "PLAINTEXT":
            # ANONYMOUS is a super user below: only the container's own loopback may be it.
            assert host == "127.0.0.1", f"{name} is PLAINTEXT on {host}"
        else:
            assert protocols[name] == "SASL_SSL", name
    assert conf["sasl"]["enabled_mechanisms"] == ["SCRAM-SHA-512"]
    broker = conf["broker"]
    assert broker["authorizer_enable"] is True
    assert broker["allow_everyone_if_no_acl_found"] is False
    assert set(broker["super_users"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    assert conf["ssl"] == {"keystore_location": f"{certs_dir}/node.pem", "key_location": f"{certs_dir}/node.key"}
    assert conf["rpc_ssl"] == {**conf["ssl"], "truststore_location": f"{certs_dir}/ca.pem"}


def test_sasl_ssl_compose_file_is_accepted_by_compose(tmp_path):
    # (docker-compose 1.x reads env_file at `config`; the certificates it only names.)
    (tmp_path / "admin.env").write_text("FJORD_ADMIN_PASSWORD=x\n")
    tools = compose_commands()
    if not tools:
        pytest.fail("neither `docker compose` nor docker-compose is installed (Debian: apt-get install docker-compose; scripts/test does it as root)")
    for tool in tools:
        r = subprocess.run(
            tool + ["-f", str(SASL_SSL_COMPOSE), "config", "--services"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "FJORD_SECRETS_DIR": str(tmp_path)},
        )
        assert r.returncode == 0, f"{' '.join(tool)} config: {r.stderr}"
        assert sorted(r.stdout.split()) == ["fjord-1", "fjord-2", "fjord-3", "fjord-init"]


def test_sasl_ssl_compose_wiring():
    compose = load_compose(SASL_SSL_COMPOSE)
    shared = tomllib.loads((COMPOSE / "fjord-sasl-ssl.toml").read_text())
    check_secure_config(shared, "/etc/fjord/certs")
    bound = listeners(shared["listeners"])
    http_port = port_of(shared["http_addr"])
    services = compose["services"]
    plain = load_compose(COMPOSE_FILES[3])
    # Other host ports than docker-compose.yml: both run at once.
    plain_ports = {p.split(":")[1] for s in plain["services"].values() for p in s["ports"]}
    for n in (1, 2, 3):
        svc = services[f"fjord-{n}"]
        env = svc["environment"]
        assert env["FJORD_NODE_ID"] == str(n)
        advertised = listeners(env["FJORD_ADVERTISED_LISTENERS"])
        assert advertised == {
            "INTERNAL": (f"fjord-{n}", bound["INTERNAL"][1]),
            "EXTERNAL": ("localhost", 29190 + n),
        }
        published = {int(p.split(":")[1]): int(p.split(":")[2]) for p in svc["ports"]}
        assert published == {29190 + n: bound["EXTERNAL"][1], 29740 + n: http_port}
        assert not {str(p) for p in published} & plain_ports
        mounts = dict(v.split(":")[1::-1] for v in svc["volumes"])
        assert (COMPOSE / mounts["/etc/fjord/fjord.toml"]).resolve() == COMPOSE / "fjord-sasl-ssl.toml"
        # The node's own certificate (its SANs name fjord-N: sasl-ssl-setup --node fjord-N).
        assert mounts["/etc/fjord/certs/node.pem"] == f"./sasl-ssl/node-fjord-{n}.pem"
        assert mounts["/etc/fjord/certs/node.key"] == f"./sasl-ssl/node-fjord-{n}.key"
        assert mounts["/etc/fjord/certs/ca.pem"] == "./sasl-ssl/ca.pem"
    init = services["fjord-init"]
    assert init["network_mode"] == "service:fjord-1", "127.0.0.1 must be fjord-1's loopback"
    assert init["depends_on"]["fjord-1"]["condition"] == "service_healthy"
    cmd = init["command"]
    assert cmd[:2] == ["user", "add"] and cmd[2] == "admin"
    assert cmd[cmd.index("--mechanism") + 1] == "SCRAM-SHA-512"
    assert cmd[cmd.index("-b") + 1] == "127.0.0.1:{}".format(bound["LOCAL"][1])
    assert init["env_file"] == "./sasl-ssl/admin.env"
    assert cmd[cmd.index("--password-env") + 1] == "FJORD_ADMIN_PASSWORD"


def test_sasl_ssl_setup_writes_what_the_variants_mount(tmp_path):
    setup = COMPOSE / "sasl-ssl-setup"
    r = subprocess.run([str(setup), "--dir", str(tmp_path / "c")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c = tmp_path / "c"
    assert sorted(p.name for p in c.iterdir()) == sorted(
        ["admin.env", "admin.properties", "ca.key", "ca.pem"]
        + [f"node-fjord-{n}.{e}" for n in (1, 2, 3) for e in ("pem", "key")]
    )
    # The container's uid (not the file's owner) must read the key; the directory guards it.
    assert (c / "node-fjord-1.key").stat().st_mode & 0o004
    assert (c / "ca.key").stat().st_mode & 0o077 == 0
    assert c.stat().st_mode & 0o077 == 0
    password = (c / "admin.env").read_text()
    assert re.fullmatch(r"FJORD_ADMIN_PASSWORD=[A-Za-z0-9_=-]{32}\n", password)
    # The admin's `fjord --command-config` file: the same password, the CA by absolute path.
    props = (c / "admin.properties").read_text()
    assert "sasl.password=" + password.split("=", 1)[1] in props
    assert "ssl.truststore.location=%s\n" % (c / "ca.pem") in props
    assert (c / "admin.properties").stat().st_mode & 0o077 == 0
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(c / "node-fjord-2.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "DNS:fjord-2" in sans and "DNS:localhost" in sans
    subprocess.run(
        ["openssl", "verify", "-CAfile", str(c / "ca.pem"), str(c / "node-fjord-3.pem")], check=True, capture_output=True
    )
    # Run again: the same CA and password (a running cluster's clients keep working).
    ca_before = (c / "ca.pem").read_text()
    assert subprocess.run([str(setup), "--dir", str(c)], capture_output=True, timeout=60).returncode == 0
    assert (c / "ca.pem").read_text() == ca_before
    assert (c / "admin.env").read_text() == password

    k = tmp_path / "k"
    r = subprocess.run([str(setup), "--dir", str(k), "--k8s-namespace", "streams"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(k / "node-fjord.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout
    for name in ["fjord-0.fjord-headless.streams.svc", "fjord-2.fjord-headless.streams.svc", "fjord.streams.svc"]:
        assert f"DNS:{name}" in sans, sans


def k8s_sasl_ssl_built() -> list:
    if not shutil.which("kubectl"):
        pytest.fail("kubectl (with its built-in kustomize) is not installed: install kubectl")
    r = subprocess.run(["kubectl", "kustomize", str(K8S_SASL_SSL)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_k8s_sasl_ssl_overlay_builds_and_validates():
    import kubernetes_validate
    built = k8s_sasl_ssl_built()
    assert sorted(d["kind"] for d in built) == sorted(d["kind"] for _, d in load_k8s())
    for version in K8S_VERSIONS:
        for doc in built:
            kubernetes_validate.validate(doc, version, strict=True)
    kustomization = yaml.safe_load((K8S_SASL_SSL / "kustomization.yaml").read_text())
    assert "namespace" not in kustomization
    assert kustomization["resources"] == ["../k8s"]


def test_k8s_sasl_ssl_wiring():
    built = k8s_sasl_ssl_built()
    (cm,) = [d for d in built if d["kind"] == "ConfigMap"]
    (sts,) = [d for d in built if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The Secret has its own directory: nothing can be mounted inside the ConfigMap's.
    certs = "/etc/fjord-tls"
    assert mounts[certs]["readOnly"] is True
    secret = volumes[mounts[certs]["name"]]["secret"]
    assert secret["secretName"] == "fjord-tls"
    assert {i["path"] for i in secret["items"]} == {"ca.pem", "node.pem", "node.key"}
    # Owner root, group fsGroup (65532): the fjord user reads it through its group.
    assert secret["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == FJORD_UID
    conf = tomllib.loads(cm["data"]["fjord.toml"])
    check_secure_config(conf, certs)
    env = {e["name"]: e.get("value") for e in container["env"]}
    advertised = listeners(env["FJORD_ADVERTISED_LISTENERS"].replace("$(POD_NAME)", "fjord-0").replace("$(POD_NAMESPACE)", "ns"))
    bound = listeners(conf["listeners"])
    assert advertised == {"SASL_SSL": ("fjord-0.fjord-headless.ns.svc", bound["SASL_SSL"][1])}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["kafka"] == bound["SASL_SSL"][1]
    assert ports["rpc"] == port_of(conf["rpc_addr"]) and ports["http"] == port_of(conf["http_addr"])
    # The probes stay plain HTTP on the http port.
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
