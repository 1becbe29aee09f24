"""Runs approvald the way a rendered Deployment declares it, and probes it the
way the kubelet would.

    python probe_test.py MANIFEST.yaml APPROVALD_BIN

From MANIFEST (a `helm template` output or deploy/kubernetes/approvald.yaml)
it reads the approvald Deployment: the container's command/args, its env and
envFrom (resolved against the ConfigMaps in the same manifest), its probes and
its shutdown timings. It then starts approvald with exactly that environment
(and nothing inherited from this shell), except for three rewrites a local run
cannot avoid, each printed as it is made:

  * APPROVALD_LISTEN and APPROVALD_METRICS_LISTEN: the pod binds 0.0.0.0 on
    fixed ports; here they become 127.0.0.1 on free ports (tests only talk to
    127.0.0.1, and other tests on this machine may hold the fixed ports).
    The probes' declared port must be the port APPROVALD_LISTEN binds in the
    pod; it is mapped to the local free port.
  * APPROVALD_REDIS_URL: the Secret (or bundled Redis service) it refers to
    does not exist here; it points at a redis-server this test starts on a
    free 127.0.0.1 port.

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

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

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
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = self.container.get("lifecycle", {}).get("preStop", {})
        self.pre_stop_sleep = pre_stop.get("sleep", {}).get("seconds", 0)

    def argv(self, binary):
        # No command: the image's ENTRYPOINT, which is approvald itself.
        assert "command" not in self.container, "the container overrides the image's entrypoint"
        return [binary, *self.container.get("args", [])]

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


def main(manifest, binary):
    pod = Pod(manifest)
    print(f"manifest: {manifest}", flush=True)
    env, secret_refs = pod.env()
    startup, readiness, liveness = (pod.probe(k) for k in ("startup", "readiness", "liveness"))

    # The probes must reach the port approvald binds in the pod.
    pod_host, pod_port = env["APPROVALD_LISTEN"].rsplit(":", 1)
    for name, p in (("startup", startup), ("readiness", readiness), ("liveness", liveness)):
        check(p["port"] == int(pod_port) == pod.ports["grpc"],
              f"{name} probe port {p['port']} is the gRPC port approvald listens on in the pod ({env['APPROVALD_LISTEN']})")
    check(pod_host in ("0.0.0.0", "[::]"), f"approvald listens on every pod address ({pod_host})")
    check(startup["service"] == "liveness" and liveness["service"] == "liveness",
          "startup and liveness probes ask for the 'liveness' health service")
    check(readiness["service"] == "approval.v1.ApprovalService",
          "readiness probe asks for 'approval.v1.ApprovalService' (follows Redis)")
    grace = seconds(env["APPROVALD_SHUTDOWN_GRACE"])
    check(pod.pre_stop_sleep + grace < pod.grace,
          f"preStop pause {pod.pre_stop_sleep}s + shutdown grace {grace:g}s < terminationGracePeriodSeconds {pod.grace}s")

    grpc_port, metrics_port, redis_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}"
    print(f"rewrite: APPROVALD_LISTEN {env['APPROVALD_LISTEN']} -> 127.0.0.1:{grpc_port} "
          f"(probe port {readiness['port']} -> {grpc_port})")
    print(f"rewrite: APPROVALD_METRICS_LISTEN {env['APPROVALD_METRICS_LISTEN']} -> 127.0.0.1:{metrics_port}")
    env["APPROVALD_LISTEN"] = f"127.0.0.1:{grpc_port}"
    env["APPROVALD_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    check(secret_refs == [] or secret_refs == ["APPROVALD_REDIS_URL"],
          f"the only value taken from a Secret is the Redis URL ({secret_refs or 'none'})")
    print(f"rewrite: APPROVALD_REDIS_URL {env.get('APPROVALD_REDIS_URL', '<from Secret>')} -> {redis_url}", flush=True)
    env["APPROVALD_REDIS_URL"] = redis_url
    print("env: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())), flush=True)

    with tempfile.TemporaryDirectory() as workdir:
        redis = Redis(redis_port, workdir)
        redis.start()
        log = open(os.path.join(workdir, "approvald.log"), "w+")
        # Exactly the container's environment: nothing inherited from here.
        server = subprocess.Popen(pod.argv(binary), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            run(pod, server, redis, grpc_port, startup, readiness, liveness, grace)
        except BaseException:
            log.seek(0)
            print("--- approvald log ---\n" + log.read()[-4000:], file=sys.stderr)
            raise
        finally:
            if server.poll() is None:
                server.kill()
            redis.stop()
    return finish()


def run(pod, server, redis, port, startup, readiness, liveness, grace):
    budget = startup["period"] * startup["failures"]
    status = wait_for(startup, port, "SERVING", budget)
    check(status == "SERVING", f"startup probe (service {startup['service']!r}): {status} within its {budget}s budget")
    status = wait_for(readiness, port, "SERVING", 10)
    check(status == "SERVING", f"readiness probe (service {readiness['service']!r}): {status}")
    status = health(port, liveness["service"], liveness["timeout"])
    check(status == "SERVING", f"liveness probe (service {liveness['service']!r}): {status}")

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
    server.send_signal(signal.SIGTERM)
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
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
