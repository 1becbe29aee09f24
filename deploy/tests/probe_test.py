"""Runs approvald the way a rendered Deployment declares it, and probes it the
way the kubelet would.

    python probe_test.py MANIFEST.yaml APPROVALD_BIN [--redis-cluster]
    python probe_test.py MANIFEST.yaml --podman IMAGE

From MANIFEST (a `helm template` output or deploy/kubernetes/approvald.yaml)
it reads the approvald Deployment: the container's command/args, its env and
envFrom (resolved against the ConfigMaps in the same manifest), its probes and
its shutdown timings. It then starts approvald with exactly that environment
(and nothing inherited from this shell), except for the rewrites a local run
cannot avoid, each printed as it is made:

  * APPROVALD_LISTEN, APPROVALD_METRICS_LISTEN and (with TLS)
    APPROVALD_HEALTH_LISTEN: the pod binds 0.0.0.0 on fixed ports; here they
    become 127.0.0.1 on free ports (tests only talk to 127.0.0.1, and other
    tests on this machine may hold the fixed ports). The probes' declared port
    must be the port approvald serves health on in the pod without TLS or
    credentials: APPROVALD_LISTEN's without TLS, APPROVALD_HEALTH_LISTEN's with
    it. It is mapped to the local free port.
  * Secret volumes: each mountPath of a Secret volume becomes a temporary
    folder, and every env value under it (APPROVALD_REDIS_URL_FILE,
    APPROVALD_AUTH_CONFIG, APPROVALD_TLS_*_FILE) is rewritten to match. The
    files hold the Secret's data when the manifest has the Secret (inline
    auth.config); otherwise what such a Secret would hold: the Redis URL of
    the test's redis-server, an auth.toml with one token made by
    `approvald new-token`, a self-signed server certificate and key and a
    client CA made with openssl.
  * The configuration file (APPROVALD_CONFIG, or APPROVALD_AUTH_CONFIG):
    the manifest's Secret when it has it (an inline file; a test token is
    added when the file turns authentication on), otherwise one made here
    (a token when the insecure flag is absent; for APPROVALD_CONFIG also a
    policy needing two approvals and one webhook per Secret volume no env
    value names). The webhook secret_file paths inside it are such volumes'
    files (each gets a `whsec_` secret made here) and are rewritten like the
    env values; a Secret volume nothing names fails the test.
  * The Redis URL: the Secret (or bundled Redis service) it refers to does
    not exist here; it points at a redis-server this test starts on a free
    127.0.0.1 port (in APPROVALD_REDIS_URL, or the file of
    APPROVALD_REDIS_URL_FILE), or with --redis-cluster at a Redis Cluster
    of three primaries with a replica each (redis+cluster://), stopped and
    started as a whole for the Redis-down checks.

With `--podman IMAGE`, approvald runs in that container image instead, the
way the kubelet would start the container (scripts/suites/62-container.sh):
the container spec becomes a `podman run` (see `Container` below) with the
pod's user and group, fsGroup, read-only root filesystem, dropped
capabilities, no privilege escalation, default seccomp profile, resource
limits and env; each Secret volume is a folder mounted read-only at its
mountPath, its files in the volume's mode and owned by the fsGroup, so the
env paths stay as rendered. Host networking stands in for the pod network,
so the listen addresses are rewritten as above. The running container is
checked to have what the spec asked for (from /proc of its process and
`podman inspect`) before the probes run.

With TLS, the main port is also checked to speak TLS (a plaintext call
fails, a TLS one with the test certificate succeeds); with authentication, an
API call without credentials is UNAUTHENTICATED and one with the token is OK;
without, one without credentials is OK. Then one write, CreateApproval: of
the type of a policy of the configuration file that needs several approvals,
whose required_approvals the new approval must carry (the mounted file is in
force), or else of a type of its own; with APPROVALD_REDIS_WAIT_REPLICAS the
log must say which promise the wait for replicas gives.

Each probe is one grpc.health.v1 Check, on a fresh connection, with the
declared service name and timeoutSeconds, succeeding only on SERVING: what the
kubelet's native gRPC probe does. The promises checked:

  1. startup, readiness and liveness probes succeed once approvald is up;
  2. Redis stopped: readiness fails (NOT_SERVING), liveness still succeeds;
  3. Redis back: readiness succeeds again;
  4. SIGTERM: readiness turns NOT_SERVING at once (seen on a Watch opened
     before), the declared readiness probe fails, and the process exits 0
     within its shutdown grace, itself within terminationGracePeriodSeconds
     minus the preStop pause.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STATUS = health_pb2.HealthCheckResponse.ServingStatus.Name

results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} - {what}", flush=True)
    if not ok:
        raise SystemExit(finish())


def finish():
    print(f"probes: {results['passed']} passed, {results['failed']} failed", flush=True)
    return 1 if results["failed"] else 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_data(doc):
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    data.update(doc.get("stringData") or {})
    return data


def seconds(duration):
    """The humantime durations the chart writes: "10s", "2m", "500ms"."""
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * factor
    raise ValueError(f"unexpected duration {duration!r}")


# --- reading the manifest -------------------------------------------------


class Pod:
    """The approvald container of the rendered Deployment, resolved."""

    def __init__(self, manifest):
        docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
        deployments = [d for d in docs if d["kind"] == "Deployment"]
        assert len(deployments) == 1, f"expected one Deployment in {manifest}"
        self.spec = deployments[0]["spec"]["template"]["spec"]
        [self.container] = [c for c in self.spec["containers"] if c["name"] == "approvald"]
        self.config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        self.secrets = {d["metadata"]["name"]: secret_data(d) for d in docs if d["kind"] == "Secret"}
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        # mountPath -> the Secret volume mounted there (the only kind approvald gets).
        self.secret_mounts = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert "secret" in volume, f"volume {mount['name']}: only Secret volumes are expected ({volume})"
            assert mount.get("readOnly"), f"volume {mount['name']} is mounted writable"
            self.secret_mounts[mount["mountPath"]] = volume["secret"]
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = self.container.get("lifecycle", {}).get("preStop", {})
        self.pre_stop_sleep = pre_stop.get("sleep", {}).get("seconds", 0)

    def args(self):
        # No command: the image's ENTRYPOINT, which is approvald itself.
        assert "command" not in self.container, "the container overrides the image's entrypoint"
        return list(self.container.get("args", []))

    def volume(self, mount_path):
        """The Secret volume mounted at mount_path: (its secret, file mode of `name`)."""
        secret = self.secret_mounts[mount_path]
        modes = {i["path"]: i["mode"] for i in secret.get("items", []) if "mode" in i}
        return secret, modes, secret.get("defaultMode", 0o644)

    def env(self):
        """envFrom first, then env (which wins), as the kubelet builds it."""
        env, secret_refs = {}, []
        for source in self.container.get("envFrom", []):
            name = source["configMapRef"]["name"]
            env.update({source.get("prefix", "") + k: v for k, v in self.config_maps[name].items()})
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "secretKeyRef" in var.get("valueFrom", {}):
                secret_refs.append(var["name"])
            else:
                raise AssertionError(f"env {var['name']}: unsupported source {var}")
        return env, secret_refs

    def probe(self, kind):
        probe = self.container[f"{kind}Probe"]
        port = probe["grpc"]["port"]
        port = self.ports[port] if isinstance(port, str) else port
        return {
            "port": port,
            "service": probe["grpc"].get("service", ""),
            "timeout": probe.get("timeoutSeconds", 1),
            "period": probe.get("periodSeconds", 10),
            "failures": probe.get("failureThreshold", 3),
        }


# --- the processes --------------------------------------------------------


class Redis:
    def __init__(self, port, workdir):
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on 127.0.0.1:{self.port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class RedisCluster:
    """A Redis Cluster of three primaries with one replica each on free
    loopback ports (`redis-cli --cluster create`), stopped and started as a
    whole like `Redis`: the nodes keep their cluster configuration
    (nodes.conf) across a restart and form the same cluster again."""

    def __init__(self, workdir):
        self.ports = [self.free_node_port() for _ in range(6)]
        self.workdir, self.procs, self.created = workdir, [], False

    @staticmethod
    def free_node_port():
        """A free port at most 55535 whose cluster bus port (+10000) is free
        too: Redis refuses cluster mode on higher ports."""
        for _ in range(1000):
            port = free_port()
            if port > 55535:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
        raise AssertionError("no free port pair (p, p + 10000) for a cluster node")

    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def cli(self, port, *args):
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                              timeout=10).stdout

    def start(self):
        for port in self.ports:
            folder = os.path.join(self.workdir, f"cluster-{port}")
            os.makedirs(folder, exist_ok=True)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                 "--save", "", "--appendonly", "no", "--dir", folder, "--logfile", "redis.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait(lambda: all(self.cli(p, "PING").strip() == "PONG" for p in self.ports), "every node answers PING")
        if not self.created:
            out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                                  "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True,
                                 timeout=60)
            if out.returncode != 0:
                self.stop()
                raise AssertionError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
            self.created = True

        def healthy():
            infos = [self.cli(p, "INFO", "replication") for p in self.ports]
            replicas_up = sum("role:slave" in i and "master_link_status:up" in i for i in infos)
            return replicas_up == 3 and all("cluster_state:ok" in self.cli(p, "CLUSTER", "INFO") for p in self.ports)
        self.wait(healthy, "cluster_state:ok on every node, every replica linked to its primary")
        print(f"redis cluster: 3 primaries + 3 replicas on 127.0.0.1:{','.join(map(str, self.ports))}", flush=True)

    def wait(self, ready, what, budget=60):
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)
        logs = ""
        for port in self.ports:
            path = os.path.join(self.workdir, f"cluster-{port}", "redis.log")
            if os.path.exists(path):
                logs += f"--- node {port} ---\n" + "".join(open(path).readlines()[-5:])
        self.stop()
        raise AssertionError(f"Redis Cluster: not {what} within {budget}s\n{logs}")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(10)
        self.procs = []


def make_tls(folder):
    """A self-signed server certificate for 127.0.0.1/localhost, and a client CA."""
    os.makedirs(folder, exist_ok=True)
    files = {}
    for name, cn, san in (("server", "localhost", "DNS:localhost,IP:127.0.0.1"), ("client-ca", "probe-test client CA", None)):
        crt, key = os.path.join(folder, f"{name}.crt"), os.path.join(folder, f"{name}.key")
        cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", key, "-out", crt, "-days", "1", "-subj", f"/CN={cn}"]
        if san:
            cmd += ["-addext", f"subjectAltName={san}"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files[name] = (open(crt).read(), open(key).read())
    return files


def new_token(launcher):
    out = subprocess.run(launcher.command(["new-token"]), check=True, capture_output=True, text=True, env=launcher.tool_env).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields["token"].strip(), fields["sha256"].strip()


def has_auth_section(text):
    """Whether a configuration file turns authentication on (as approvald
    decides: [[tokens]], [jwt] or [certificates])."""
    data = tomllib.loads(text)
    return bool(data.get("tokens")) or "jwt" in data or "certificates" in data


def token_section(digest):
    return f'\n[[tokens]]\nprincipal = "probe-test"\nroles = ["admin"]\nsha256 = "{digest}"\n'


def made_config(launcher, auth_on, webhook_files, made):
    """What the configuration file Secret (configFile.existingSecret) would
    hold, for the Secrets the chart mounts beside it: a token when
    authentication is on, a policy that needs two approvals, and one webhook
    endpoint per mounted webhook secret (at a closed port: deliveries fail
    and are retried, which never touches a decision)."""
    text = "# made by probe_test.py\n"
    if auth_on:
        token, digest = new_token(launcher)
        made["token"] = token
        text += token_section(digest)
    text += '\n[[policies]]\napproval_types = ["probe:quorum"]\nrequired_approvals = 2\n'
    for i, path in enumerate(webhook_files):
        text += (f'\n[[webhooks]]\nname = "probe-{i}"\nurl = "http://127.0.0.1:{free_port()}/"\n'
                 f'secret_file = "{path}"\n')
    return text


def mount_secrets(pod, env, launcher, workdir, redis_url):
    """Maps every Secret volume to a local folder holding what the Secret
    would, and rewrites the env values under its mountPath (bare binary) or
    mounts the folder there (container). A Secret volume no env value names
    must hold files the configuration file names (webhook secret_file). Returns
    what the test needs to talk to approvald: the server certificate, the
    token, and a policy of the configuration file that needs several approvals."""
    made = {"cert": None, "token": None, "quorum": None}
    tls = None
    config_vars = [v for v in ("APPROVALD_CONFIG", "APPROVALD_AUTH_CONFIG") if v in env]
    check(len(config_vars) <= 1, f"at most one configuration file ({config_vars})")
    config_var = config_vars[0] if config_vars else None
    insecure = "APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED" in env
    # mountPath -> local folder, for every Secret volume; those no env value
    # names wait for the configuration file.
    local_of, unnamed, config = {}, [], None

    def write(target, content, mount_path, what, origin):
        with open(target, "w") as f:
            f.write(content)
        if launcher.container:
            # Mounted at mountPath: the path stays; the file gets the
            # volume's mode and the fsGroup, as the kubelet writes it.
            _, modes, default_mode = pod.volume(mount_path)
            name = os.path.relpath(target, local_of[mount_path])
            mode, group = modes.get(name, default_mode), launcher.fs_group
            os.chmod(target, mode)
            if group is not None:
                os.chown(target, 0, group)
            print(f"secret: {what}: {target} mounted at {mount_path} "
                  f"(mode {mode:04o}, owner 0:{group}; {origin})", flush=True)
        else:
            os.chmod(target, 0o440)
            print(f"rewrite: {what} -> {target} ({origin})", flush=True)

    for mount_path, secret in pod.secret_mounts.items():
        local = os.path.join(workdir, "secrets", secret["secretName"])
        os.makedirs(local, exist_ok=True)
        local_of[mount_path] = local
        users = {k: v for k, v in env.items() if v.startswith(mount_path.rstrip("/") + "/")}
        if not users:
            unnamed.append(mount_path)
            continue
        check(True, f"Secret {secret['secretName']} mounted at {mount_path} is used by the env ({sorted(users)})")
        for var, path in sorted(users.items()):
            name = path[len(mount_path.rstrip("/")) + 1:]
            items = secret.get("items")
            if items:
                check(name in [i["path"] for i in items],
                      f"{var}: {name} is one of the items of Secret {secret['secretName']}")
            target = os.path.join(local, name)
            if not launcher.container:
                env[var] = target
            if var == config_var:
                # Written last: it names the files of the other volumes.
                config = dict(var=var, path=path, target=target, mount_path=mount_path,
                              text=pod.secrets.get(secret["secretName"], {}).get(name))
                continue
            if secret["secretName"] in pod.secrets:
                content, origin = pod.secrets[secret["secretName"]][name], "the manifest's Secret"
            elif var == "APPROVALD_REDIS_URL_FILE":
                content, origin = redis_url, "the test's Redis URL"
            elif var in ("APPROVALD_TLS_CERT_FILE", "APPROVALD_TLS_KEY_FILE", "APPROVALD_TLS_CLIENT_CA_FILE"):
                tls = tls or make_tls(os.path.join(workdir, "pki"))
                if var == "APPROVALD_TLS_CERT_FILE":
                    content, origin = tls["server"][0], "a self-signed certificate (openssl) for 127.0.0.1"
                    made["cert"] = content
                elif var == "APPROVALD_TLS_KEY_FILE":
                    content, origin = tls["server"][1], "its key"
                else:
                    content, origin = tls["client-ca"][0], "a CA certificate (openssl)"
            else:
                check(False, f"{var}={path}: no idea what Secret {secret['secretName']} holds")
            write(target, content, mount_path, f"{var} {path}", origin)
        if launcher.container:
            os.chmod(local, 0o755)
            launcher.mount(local, mount_path)

    # The configuration file, and the files it names in the other volumes.
    check(config is not None or not unnamed,
          f"Secret volumes no env value names ({unnamed or 'none'}) have a configuration file to name their files")
    if config is not None:
        if config["text"] is not None:
            text, origin = config["text"], "the manifest's Secret"
            if has_auth_section(text):
                # Inline file with authentication: keep it, and add the test's token.
                token, digest = new_token(launcher)
                made["token"] = token
                text += token_section(digest)
                origin += " + a token made by `approvald new-token`"
        elif config["var"] == "APPROVALD_AUTH_CONFIG":
            token, digest = new_token(launcher)
            made["token"] = token
            text, origin = token_section(digest), "an auth.toml with one token made by `approvald new-token`"
        else:
            files = []
            for mount_path in unnamed:
                secret, _, _ = pod.volume(mount_path)
                files += [f"{mount_path.rstrip('/')}/{i['path']}" for i in secret.get("items", [])]
            text = made_config(launcher, not insecure, files, made)
            origin = ("a file with " + ("a token made by `approvald new-token`, " if not insecure else "")
                      + f"a 2-approval policy and {len(files)} webhook(s) on the mounted secrets")
        data = tomllib.loads(text)
        for policy in data.get("policies", []):
            exact = [t for t in policy.get("approval_types", []) if "*" not in t]
            if policy.get("required_approvals", 1) > 1 and exact and made["quorum"] is None:
                made["quorum"] = (exact[0], policy["required_approvals"])
        config_dir = os.path.dirname(config["path"])
        for i, hook in enumerate(data.get("webhooks", [])):
            named = hook.get("secret_file")
            if named is None:
                continue
            path = named if os.path.isabs(named) else os.path.normpath(os.path.join(config_dir, named))
            [mount_path] = [m for m in local_of if path.startswith(m.rstrip("/") + "/")] or [None]
            check(mount_path in unnamed,
                  f"webhooks[{i}].secret_file {named} ({path}) is in a Secret volume of its own ({mount_path})")
            secret, _, _ = pod.volume(mount_path)
            name = path[len(mount_path.rstrip("/")) + 1:]
            check(name in [it["path"] for it in secret.get("items", [{"path": name}])],
                  f"webhooks[{i}].secret_file: {name} is one of the items of Secret {secret['secretName']}")
            target = os.path.join(local_of[mount_path], name)
            whsec = "whsec_" + base64.b64encode(os.urandom(32)).decode()
            write(target, whsec + "\n", mount_path, f"webhooks[{i}].secret_file {path}",
                  "a Standard Webhooks secret made here")
            if not launcher.container:
                text = text.replace(f'"{named}"', f'"{target}"')
            unnamed.remove(mount_path)
        check(not unnamed, f"every Secret volume is named by the env or the configuration file (left: {unnamed})")
        for mount_path in local_of:
            if launcher.container and mount_path not in [m for _, m in launcher.mounts]:
                os.chmod(local_of[mount_path], 0o755)
                launcher.mount(local_of[mount_path], mount_path)
        write(config["target"], text, config["mount_path"], f"{config['var']} {config['path']}", origin)
    return made


# --- how approvald is started -----------------------------------------------


class Bare:
    """The binary as a child process, with exactly the container's env."""

    container = False
    tool_env = {}

    def __init__(self, binary):
        self.binary = binary

    def command(self, args):
        return [self.binary, *args]

    def start(self, args, env, log):
        return subprocess.Popen(self.command(args), env=env, stdout=log, stderr=subprocess.STDOUT)

    def verify(self):
        pass

    def sigterm(self, server):
        server.send_signal(signal.SIGTERM)

    def stop(self, server):
        if server.poll() is None:
            server.kill()
            server.wait(10)


def quantity(value, binary_units):
    """A Kubernetes quantity ("512Mi", "1", "100m", "1G") as a number."""
    value = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    if not binary_units and value.endswith("m"):
        return float(value[:-1]) / 1000
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


class Container:
    """The container spec as a `podman run`: what the kubelet would ask the
    container runtime for, minus the pod network (host networking here).
    Every securityContext field is translated or refused, so a new field in
    the chart cannot go untested silently."""

    container = True
    # podman needs its configuration (CONTAINERS_CONF) and PATH.
    tool_env = {k: v for k, v in os.environ.items() if k in ("PATH", "CONTAINERS_CONF", "HOME", "XDG_RUNTIME_DIR")}

    POD_FIELDS = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "supplementalGroups", "seccompProfile",
                  "fsGroupChangePolicy"}
    CONTAINER_FIELDS = {"allowPrivilegeEscalation", "privileged", "readOnlyRootFilesystem", "runAsNonRoot",
                        "runAsUser", "runAsGroup", "capabilities", "seccompProfile"}

    def __init__(self, pod, image):
        self.pod, self.image = pod, image
        self.name = f"approvald-probe-{os.getpid()}"
        self.mounts = []
        psc = pod.spec.get("securityContext", {})
        csc = pod.container.get("securityContext", {})
        assert set(psc) <= self.POD_FIELDS, f"pod securityContext: no translation for {set(psc) - self.POD_FIELDS}"
        assert set(csc) <= self.CONTAINER_FIELDS, \
            f"container securityContext: no translation for {set(csc) - self.CONTAINER_FIELDS}"
        inspect = json.loads(subprocess.run(["podman", "image", "inspect", image], check=True, capture_output=True,
                                            text=True, env=self.tool_env).stdout)[0]["Config"]
        self.image_config = inspect
        user = csc.get("runAsUser", psc.get("runAsUser"))
        group = csc.get("runAsGroup", psc.get("runAsGroup"))
        image_user = (inspect.get("User") or "0").split(":")
        self.uid = int(user if user is not None else image_user[0])
        self.gid = int(group if group is not None else (image_user[1] if len(image_user) > 1 else 0))
        self.fs_group = psc.get("fsGroup")
        self.groups = sorted({g for g in [self.fs_group, *psc.get("supplementalGroups", [])] if g is not None})
        self.non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot", False))
        self.read_only = csc.get("readOnlyRootFilesystem", False)
        self.no_new_privs = csc.get("allowPrivilegeEscalation") is False
        self.privileged = csc.get("privileged", False)
        caps = csc.get("capabilities", {})
        assert set(caps) <= {"add", "drop"}, f"capabilities: {caps}"
        self.cap_drop, self.cap_add = caps.get("drop", []), caps.get("add", [])
        seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {"type": "RuntimeDefault"}))
        assert seccomp["type"] in ("RuntimeDefault", "Unconfined"), f"seccompProfile {seccomp}: not translated"
        self.seccomp = seccomp["type"]
        resources = pod.container.get("resources", {})
        limits, requests = resources.get("limits", {}), resources.get("requests", {})
        assert set(limits) <= {"cpu", "memory"} and set(requests) <= {"cpu", "memory"}, f"resources {resources}"
        self.memory = int(quantity(limits["memory"], True)) if "memory" in limits else None
        self.memory_request = int(quantity(requests["memory"], True)) if "memory" in requests else None
        self.cpus = quantity(limits["cpu"], False) if "cpu" in limits else None
        # The kubelet's cpu.shares for a request: millicores * 1024 / 1000.
        self.cpu_shares = max(2, int(quantity(requests["cpu"], False) * 1024)) if "cpu" in requests else None

    def mount(self, local, mount_path):
        self.mounts.append((local, mount_path))

    def command(self, args):
        """A one-off run of the image (new-token): no network, nothing else."""
        return ["podman", "run", "--rm", "--pull=never", "--network=none", self.image, *args]

    def run_flags(self, env):
        flags = ["--name", self.name, "--pull=never", "--network=host", "--rm",
                 f"--user={self.uid}:{self.gid}", f"--stop-timeout={self.pod.grace}"]
        flags += [f"--group-add={g}" for g in self.groups]
        if self.read_only:
            # Kubernetes mounts no tmpfs on a read-only root: neither here.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if self.no_new_privs:
            flags += ["--security-opt=no-new-privileges"]
        if self.privileged:
            flags += ["--privileged"]
        if self.seccomp == "Unconfined":
            flags += ["--security-opt=seccomp=unconfined"]
        flags += [f"--cap-drop={c}" for c in self.cap_drop] + [f"--cap-add={c}" for c in self.cap_add]
        if self.memory is not None:
            flags += [f"--memory={self.memory}"]
        if self.memory_request is not None:
            flags += [f"--memory-reservation={self.memory_request}"]
        if self.cpus is not None:
            flags += [f"--cpus={self.cpus:g}"]
        if self.cpu_shares is not None:
            flags += [f"--cpu-shares={self.cpu_shares}"]
        flags += [f"--volume={local}:{path}:ro" for local, path in self.mounts]
        flags += [f"--env={k}={v}" for k, v in sorted(env.items())]
        return flags

    def start(self, args, env, log):
        cmd = ["podman", "run", *self.run_flags(env), self.image, *args]
        print("podman: " + " ".join(a for a in cmd if not a.startswith("--env=")) + " (+ the env above)", flush=True)
        return subprocess.Popen(cmd, env=self.tool_env, stdout=log, stderr=subprocess.STDOUT)

    def inspect(self, template):
        return subprocess.run(["podman", "inspect", "-f", template, self.name], capture_output=True, text=True,
                              env=self.tool_env).stdout.strip()

    def verify(self):
        """The running container (past its startup probe) has what the spec asked for."""
        pid = self.inspect("{{.State.Pid}}")
        check(pid not in ("", "0"), f"container {self.name} runs (host pid {pid or 'none'})")
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        ids = lambda key: [int(x) for x in status[key].split()]
        check(set(ids("Uid")) == {self.uid} and set(ids("Gid")) == {self.gid},
              f"runs as {self.uid}:{self.gid} (Uid {status['Uid'].split()}, Gid {status['Gid'].split()})")
        check(not self.non_root or self.uid != 0, f"runAsNonRoot: uid {self.uid} is not root")
        check(set(self.groups) <= set(ids("Groups")),
              f"fsGroup/supplementalGroups {self.groups} in the process's groups ({status['Groups'].split()})")
        if self.cap_drop == ["ALL"] and not self.cap_add:
            check(all(int(status[k], 16) == 0 for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb")),
                  "every capability dropped (CapPrm, CapEff, CapBnd, CapAmb all 0)")
        if self.no_new_privs:
            check(status["NoNewPrivs"].strip() == "1", "allowPrivilegeEscalation false: NoNewPrivs 1")
        if self.seccomp == "RuntimeDefault":
            check(status["Seccomp"].strip() == "2", "seccompProfile RuntimeDefault: a seccomp filter (Seccomp 2)")
        root = [line.split() for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] == "/"]
        if self.read_only:
            check(root and root[-1][5].split(",")[0] == "ro",
                  f"readOnlyRootFilesystem: / is mounted {root[-1][5] if root else '?'}")
            tmpfs = [line.split()[4] for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] in ("/tmp", "/var/tmp", "/run")]
            check(tmpfs == [], f"no writable tmpfs added on the read-only root ({tmpfs})")
        for local, path in self.mounts:
            mount = [line.split() for line in open(f"/proc/{pid}/mountinfo") if line.split()[4] == path]
            check(mount and mount[-1][5].split(",")[0] == "ro", f"Secret volume at {path} mounted read-only")
        if self.memory is not None:
            got = int(self.inspect("{{.HostConfig.Memory}}") or 0)
            check(got == self.memory, f"memory limit {self.memory} bytes (podman: {got})")
        if self.cpus is not None:
            got = int(self.inspect("{{.HostConfig.NanoCpus}}") or 0)
            if got == 0:  # podman may record --cpus as a CFS quota instead
                quota, period = (int(self.inspect(t) or 0) for t in ("{{.HostConfig.CpuQuota}}", "{{.HostConfig.CpuPeriod}}"))
                got = quota * 10**9 // period if period else 0
            check(got == int(self.cpus * 10**9), f"CPU limit {self.cpus:g} (podman: {got / 10**9:g})")
        exposed = set(self.image_config.get("ExposedPorts") or {})
        for name, number in sorted(self.pod.ports.items()):
            check(f"{number}/tcp" in exposed, f"container port {name} {number}/tcp is EXPOSEd by the image ({sorted(exposed)})")

    def sigterm(self, server):
        # What the kubelet's StopContainer does first (then SIGKILL after the
        # grace period, which the test's exit limit stays far inside).
        subprocess.run(["podman", "kill", "--signal", "TERM", self.name], check=True, capture_output=True,
                       env=self.tool_env)

    def stop(self, server):
        if server.poll() is None:
            subprocess.run(["podman", "rm", "--force", "--time", "0", self.name], capture_output=True,
                           env=self.tool_env)
            server.wait(30)


def health(port, service, timeout):
    """One kubelet-style probe: fresh connection, one Check, SERVING or not."""
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return STATUS(reply.status)
        except grpc.RpcError as e:
            return e.code().name


def wait_for(probe, port, want, budget):
    """Probes every period until the status is `want` or `budget` seconds pass."""
    deadline = time.monotonic() + budget
    while True:
        status = health(port, probe["service"], probe["timeout"])
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(min(probe["period"], 0.5))


def main(manifest, launcher_of, cluster=False):
    pod = Pod(manifest)
    launcher = launcher_of(pod)
    print(f"manifest: {manifest}", flush=True)
    env, secret_refs = pod.env()
    startup, readiness, liveness = (pod.probe(k) for k in ("startup", "readiness", "liveness"))

    # The probes must reach a port where approvald serves health in the pod
    # without TLS or credentials: the gRPC port, or the health-only port
    # when the gRPC port speaks TLS.
    tls_on = "APPROVALD_TLS_CERT_FILE" in env
    probed = "APPROVALD_HEALTH_LISTEN" if tls_on else "APPROVALD_LISTEN"
    check(not tls_on or "APPROVALD_HEALTH_LISTEN" in env,
          f"TLS is {'on: a plaintext health port is declared' if tls_on else 'off: probes use the gRPC port'}")
    pod_host, pod_port = env[probed].rsplit(":", 1)
    port_name = "health" if tls_on else "grpc"
    for name, p in (("startup", startup), ("readiness", readiness), ("liveness", liveness)):
        check(p["port"] == int(pod_port) == pod.ports[port_name],
              f"{name} probe port {p['port']} is the container port {port_name!r}, where {probed}={env[probed]} serves plaintext health")
    check(pod_host in ("0.0.0.0", "[::]"), f"{probed}: every pod address ({pod_host})")
    check(env["APPROVALD_LISTEN"].rsplit(":", 1)[1] == str(pod.ports["grpc"]),
          f"APPROVALD_LISTEN {env['APPROVALD_LISTEN']} is the container port 'grpc' ({pod.ports['grpc']})")
    check(startup["service"] == "liveness" and liveness["service"] == "liveness",
          "startup and liveness probes ask for the 'liveness' health service")
    check(readiness["service"] == "approval.v1.ApprovalService",
          "readiness probe asks for 'approval.v1.ApprovalService' (follows Redis)")
    grace = seconds(env["APPROVALD_SHUTDOWN_GRACE"])
    check(pod.pre_stop_sleep + grace < pod.grace,
          f"preStop pause {pod.pre_stop_sleep}s + shutdown grace {grace:g}s < terminationGracePeriodSeconds {pod.grace}s")

    grpc_port, metrics_port, redis_port = free_port(), free_port(), free_port()
    health_port = free_port() if tls_on else grpc_port
    redis_url = f"redis://127.0.0.1:{redis_port}"
    cluster_dir = tempfile.TemporaryDirectory() if cluster else None
    if cluster:
        redis_cluster = RedisCluster(cluster_dir.name)
        redis_url = redis_cluster.url()
    print(f"rewrite: APPROVALD_LISTEN {env['APPROVALD_LISTEN']} -> 127.0.0.1:{grpc_port}"
          + ("" if tls_on else f" (probe port {readiness['port']} -> {grpc_port})"))
    print(f"rewrite: APPROVALD_METRICS_LISTEN {env['APPROVALD_METRICS_LISTEN']} -> 127.0.0.1:{metrics_port}")
    env["APPROVALD_LISTEN"] = f"127.0.0.1:{grpc_port}"
    env["APPROVALD_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    if tls_on:
        print(f"rewrite: APPROVALD_HEALTH_LISTEN {env['APPROVALD_HEALTH_LISTEN']} -> 127.0.0.1:{health_port} "
              f"(probe port {readiness['port']} -> {health_port})")
        env["APPROVALD_HEALTH_LISTEN"] = f"127.0.0.1:{health_port}"
    check(secret_refs == [], f"no value comes from a Secret through the environment ({secret_refs or 'none'})")
    check(("APPROVALD_REDIS_URL" in env) != ("APPROVALD_REDIS_URL_FILE" in env),
          "the Redis URL is given once: APPROVALD_REDIS_URL (bundled Redis) or APPROVALD_REDIS_URL_FILE (a Secret)")
    if "APPROVALD_REDIS_URL" in env:
        print(f"rewrite: APPROVALD_REDIS_URL {env['APPROVALD_REDIS_URL']} -> {redis_url}", flush=True)
        env["APPROVALD_REDIS_URL"] = redis_url

    with tempfile.TemporaryDirectory() as workdir:
        made = mount_secrets(pod, env, launcher, workdir, redis_url)
        if "APPROVALD_REDIS_URL_FILE" in env:
            print(f"rewrite: the Redis URL in {env['APPROVALD_REDIS_URL_FILE']} -> {redis_url}", flush=True)
        check(tls_on == (made["cert"] is not None), f"TLS {'on' if tls_on else 'off'}, as the env says")
        # approvald turns authentication on exactly when its configuration
        # file has an authentication section; the chart sets the insecure
        # flag exactly when it is off.
        auth_on = made["token"] is not None
        check(auth_on != ("APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED" in env),
              f"authentication {'on (the configuration file has an authentication section)' if auth_on else 'off (no authentication section; insecure flag set)'}, never both")
        print("env: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())), flush=True)
        redis = redis_cluster if cluster else Redis(redis_port, workdir)
        redis.start()
        log = open(os.path.join(workdir, "approvald.log"), "w+")
        # Exactly the container's environment: nothing inherited from here.
        server = launcher.start(pod.args(), env, log)
        try:
            run(pod, server, launcher, redis, health_port, startup, readiness, liveness, grace,
                api=dict(port=grpc_port, cert=made["cert"], token=made["token"], quorum=made["quorum"]))
            if "APPROVALD_REDIS_WAIT_REPLICAS" in env:
                log.seek(0)
                said = [line for line in log.read().splitlines() if "--redis-wait-replicas" in line]
                check(any(f"--redis-wait-replicas {env['APPROVALD_REDIS_WAIT_REPLICAS']}:" in line for line in said),
                      f"APPROVALD_REDIS_WAIT_REPLICAS={env['APPROVALD_REDIS_WAIT_REPLICAS']}: the write waited for "
                      f"the replicas, and approvald said which promise it gives "
                      f"({json.loads(said[0])['fields']['message'][:90] + '...' if said else 'nothing logged'})")
        except BaseException:
            log.seek(0)
            print("--- approvald log ---\n" + log.read()[-4000:], file=sys.stderr)
            raise
        finally:
            launcher.stop(server)
            redis.stop()
    return finish()


def field(buf, number):
    """The last value of field `number` in a protobuf message (varint or
    length-delimited), or None: enough to read one field of a reply."""
    def varint(i):
        value = shift = 0
        while True:
            byte = buf[i]
            value |= (byte & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if byte < 0x80:
                return value, i
    found, i = None, 0
    while i < len(buf):
        key, i = varint(i)
        kind = key & 7
        if kind == 0:
            value, i = varint(i)
        elif kind == 2:
            n, i = varint(i)
            value, i = buf[i:i + n], i + n
        elif kind in (1, 5):
            value, i = buf[i:i + (8 if kind == 1 else 4)], i + (8 if kind == 1 else 4)
        else:
            raise ValueError(f"wire type {kind}")
        if key >> 3 == number:
            found = value
    return found


def create_approval(port, cert, token, approval_type):
    """CreateApproval(approval_type, agent_id "probe-test"): (status name,
    the approval's required_approvals)."""
    def string(number, text):
        data = text.encode()
        return bytes([number << 3 | 2, len(data)]) + data
    request = string(1, approval_type) + string(2, "probe-test")
    status, reply = call_api(port, cert, token, "CreateApproval", request)
    if status != "OK":
        return status, None
    approval = field(reply, 1)  # CreateApprovalResponse.approval
    return status, field(approval, 16) or 1  # Approval.required_approvals (proto3: 0 is absent)


def call_api(port, cert, token, method="ListApprovals", request=b""):
    """One call on the main port (plaintext or TLS, with or without a bearer
    token), ListApprovals by default: the status code's name, and with
    `method` given, the reply's bytes too."""
    target = f"127.0.0.1:{port}"
    options = [("grpc.enable_http_proxy", 0)]
    if cert:
        options.append(("grpc.ssl_target_name_override", "localhost"))
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=cert.encode()), options)
    else:
        channel = grpc.insecure_channel(target, options)
    with channel:
        call = channel.unary_unary(f"/approval.v1.ApprovalService/{method}",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        metadata = [("authorization", f"Bearer {token}")] if token else None
        try:
            reply = call(request, timeout=5, metadata=metadata)
            status = "OK"
        except grpc.RpcError as e:
            reply, status = None, e.code().name
    return status if method == "ListApprovals" else (status, reply)


def check_api(api):
    """The main port as clients see it: TLS when configured, auth when configured."""
    port, cert, token = api["port"], api["cert"], api["token"]
    if cert:
        status = call_api(port, None, None)
        check(status == "UNAVAILABLE", f"TLS: a plaintext call to the gRPC port fails ({status})")
    if token:
        status = call_api(port, cert, None)
        check(status == "UNAUTHENTICATED", f"auth: ListApprovals without credentials: {status}")
        status = call_api(port, cert, token)
        check(status == "OK", f"auth: ListApprovals with the test's token{' over TLS' if cert else ''}: {status}")
    else:
        status = call_api(port, cert, None)
        check(status == "OK", f"no auth (insecure flag): ListApprovals without credentials{' over TLS' if cert else ''}: {status}")
    # A write (which waits for the replicas APPROVALD_REDIS_WAIT_REPLICAS
    # asks for). Where the configuration file has a policy needing several
    # approvals, of its type: the mounted file is the one in force, its
    # policy is copied onto the new approval.
    approval_type, needed = api["quorum"] or ("probe:write", 1)
    status, required = create_approval(port, cert, token, approval_type)
    check(status == "OK" and required == needed,
          f"{'policy of the configuration file: ' if api['quorum'] else 'a write: '}"
          f"CreateApproval {approval_type!r}: {status}, required_approvals {required}"
          f"{f' (the file says {needed})' if api['quorum'] else ''}")


def run(pod, server, launcher, redis, port, startup, readiness, liveness, grace, api):
    budget = startup["period"] * startup["failures"]
    status = wait_for(startup, port, "SERVING", budget)
    check(status == "SERVING", f"startup probe (service {startup['service']!r}): {status} within its {budget}s budget")
    launcher.verify()
    status = wait_for(readiness, port, "SERVING", 10)
    check(status == "SERVING", f"readiness probe (service {readiness['service']!r}): {status}")
    status = health(port, liveness["service"], liveness["timeout"])
    check(status == "SERVING", f"liveness probe (service {liveness['service']!r}): {status}")
    check_api(api)

    redis.stop()
    status = wait_for(readiness, port, "NOT_SERVING", 15)
    check(status == "NOT_SERVING", f"Redis stopped: readiness probe {status}")
    for _ in range(3):
        status = health(port, liveness["service"], liveness["timeout"])
        if status != "SERVING":
            break
        time.sleep(0.5)
    check(status == "SERVING", f"Redis stopped: liveness probe still {status} (no restart loop)")
    status = health(port, startup["service"], startup["timeout"])
    check(status == "SERVING", f"Redis stopped: startup probe still {status}")

    redis.start()
    status = wait_for(readiness, port, "SERVING", 15)
    check(status == "SERVING", f"Redis back: readiness probe {status}")

    # A Watch opened before SIGTERM sees the transition itself.
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=readiness["service"]), timeout=30)
    seen = []

    def follow():
        try:
            for reply in watch:
                seen.append(STATUS(reply.status))
        except grpc.RpcError:
            pass

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    check(seen[:1] == ["SERVING"], f"health Watch on {readiness['service']!r} before SIGTERM: {seen}")

    sent = time.monotonic()
    launcher.sigterm(server)
    deadline = sent + 2
    while "NOT_SERVING" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    check("NOT_SERVING" in seen,
          f"SIGTERM: readiness NOT_SERVING after {time.monotonic() - sent:.2f}s (Watch saw {seen})")
    status = health(port, readiness["service"], readiness["timeout"])
    check(status != "SERVING", f"SIGTERM: declared readiness probe fails ({status})")
    watch.cancel()
    channel.close()

    limit = min(grace + 1, pod.grace - pod.pre_stop_sleep)
    try:
        code = server.wait(limit)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - sent
    check(code == 0, f"SIGTERM: approvald exited with code {code} after {took:.2f}s "
                     f"(limit {limit:g}s: shutdown grace + 1s, within terminationGracePeriodSeconds - preStop)")


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and not sys.argv[2].startswith("-") and sys.argv[3:] in ([], ["--redis-cluster"]):
        binary = sys.argv[2]
        sys.exit(main(sys.argv[1], lambda pod: Bare(binary), cluster=sys.argv[3:] == ["--redis-cluster"]))
    if len(sys.argv) == 4 and sys.argv[2] == "--podman":
        image = sys.argv[3]
        sys.exit(main(sys.argv[1], lambda pod: Container(pod, image)))
    sys.exit(__doc__)
