"""Live fixtures: the suite (scripts/suites/40-sdk-python.sh) starts Redis and
two approvald replicas on it and passes their addresses in the environment;
tests that kill a replica start their own extra one on the same Redis."""

import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from approvald import ApprovalClient


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run scripts/suites/40-sdk-python.sh", returncode=2)
    return value


@pytest.fixture(scope="session")
def addr_a() -> str:
    return _env("APPROVALD_ADDR_A")


@pytest.fixture(scope="session")
def addr_b() -> str:
    return _env("APPROVALD_ADDR_B")


@pytest.fixture
def client(addr_a):
    with ApprovalClient(addr_a, agent_id="pytest-agent") as c:
        yield c


@pytest.fixture
def client_b(addr_b):
    with ApprovalClient(addr_b, agent_id="pytest-human") as c:
        yield c


@pytest.fixture
def kind() -> str:
    """An approval type no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(
    addr: str, within: float = 30.0, credentials: "grpc.ChannelCredentials | None" = None
) -> None:
    ends = time.monotonic() + within
    channel = (
        grpc.insecure_channel(addr)
        if credentials is None
        else grpc.secure_channel(addr, credentials)
    )
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < ends:
            try:
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service="approval.v1.ApprovalService"), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"approvald at {addr} did not become SERVING within {within}s")


class Replica:
    """One more approvald process on the suite's Redis."""

    def __init__(self, prefix: "str | None" = None, *extra: str) -> None:
        """On the suite's Redis, under the suite's prefix (so it shares the
        other replicas' state) unless given another; `extra` flags added."""
        self.addr = f"127.0.0.1:{_free_port()}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [
                _env("APPROVALD_BIN"),
                "--listen", self.addr,
                "--metrics-listen", f"127.0.0.1:{_free_port()}",
                "--redis-url", _env("APPROVALD_REDIS_URL"),
                "--redis-prefix", prefix or _env("APPROVALD_REDIS_PREFIX"),
                "--shutdown-grace", "2s",
                "--default-timeout", f"{_env('APPROVALD_DEFAULT_TIMEOUT_SECONDS')}s",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_serving(self.addr)

    def shut_down(self) -> None:
        """SIGTERM, as Kubernetes does, and wait for the process to end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def extra_replica():
    replica = Replica()
    yield replica
    replica.shut_down()


def eventually(check, within: float = 20.0, every: float = 0.05):
    """check()'s first truthy result, polled for at most `within` seconds."""
    ends = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > ends:
            raise AssertionError(f"not true within {within}s: {check}")
        time.sleep(every)


def new_token() -> tuple[str, str]:
    """A token and its sha256, as `approvald new-token` prints them."""
    output = subprocess.run(
        [_env("APPROVALD_BIN"), "new-token"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    return fields["token"].strip(), fields["sha256"].strip()


class SecuredServer:
    """An approvald of its own (in-memory store) with authentication on, and
    when `tls` is set TLS with a self-signed certificate for "localhost" and
    mutual TLS (a client certificate for "ci-runner", a requester).

    Principals: "release-bot" (requester), "alice" (approver of deploy:*),
    "carol" (both: requests and may decide others' deploy:* approvals).
    """

    def __init__(self, folder, tls: bool = False) -> None:
        self.bot_token, bot_sha = new_token()
        # Any string is a token: the file holds the hex sha256 of it.
        self.alice_token = f"alice-{uuid.uuid4().hex}"
        self.carol_token = f"carol-{uuid.uuid4().hex}"
        sha = lambda token: hashlib.sha256(token.encode()).hexdigest()  # noqa: E731
        (folder / "auth.toml").write_text(
            "\n".join(
                f'[[tokens]]\nprincipal = "{p}"\nroles = {r}\nsha256 = "{h}"\n'
                for p, r, h in [
                    ("release-bot", '["requester"]', bot_sha),
                    ("alice", '["approver:deploy:*"]', sha(self.alice_token)),
                    ("carol", '["requester", "approver:deploy:*"]', sha(self.carol_token)),
                ]
            )
        )
        port = _free_port()
        args = [
            _env("APPROVALD_BIN"),
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{_free_port()}",
            "--auth-config", str(folder / "auth.toml"),
            "--shutdown-grace", "1s",
        ]
        self.credentials = None
        self.ca_cert = self.client_cert = self.client_key = None
        if tls:
            self.ca_cert, key = _self_signed(folder, "server", "localhost", "DNS:localhost")
            # Mutual TLS: client certificates signed by a CA of their own; the
            # certificate's CN is the principal.
            clients_ca, clients_ca_key = _self_signed(folder, "clients-ca", "clients-ca")
            self.client_cert, self.client_key = _signed(
                folder, "ci-runner", clients_ca, clients_ca_key
            )
            with (folder / "auth.toml").open("a") as auth:
                auth.write(
                    '\n[certificates]\nprincipal = "cn"\n'
                    '[[certificates.clients]]\nprincipal = "ci-runner"\nroles = ["requester"]\n'
                )
            args += [
                "--tls-cert-file", str(self.ca_cert),
                "--tls-key-file", str(key),
                "--tls-client-ca-file", str(clients_ca),
            ]
            # The certificate names localhost, not 127.0.0.1.
            self.addr = f"localhost:{port}"
            self.credentials = grpc.ssl_channel_credentials(self.ca_cert.read_bytes())
        else:
            self.addr = f"127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_serving(self.addr, credentials=self.credentials)
        except AssertionError:
            self.stop()
            self.log.seek(0)
            raise AssertionError(self.log.read().decode(errors="replace")) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


_NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _self_signed(folder, name: str, cn: str, san: str = ""):
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    extra = ["-addext", f"subjectAltName={san}"] if san else []
    _openssl("req", "-x509", *_NEW_KEY, "-days", "1", "-subj", f"/CN={cn}", *extra,
             "-keyout", str(key), "-out", str(cert))
    return cert, key


def _signed(folder, cn: str, ca_cert, ca_key):
    """A client certificate for `cn`, signed by the CA."""
    cert, key, csr = folder / f"{cn}.pem", folder / f"{cn}.key", folder / f"{cn}.csr"
    ext = folder / f"{cn}.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")
    _openssl("req", *_NEW_KEY, "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return cert, key


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = SecuredServer(tmp_path_factory.mktemp("auth"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secured_tls(tmp_path_factory):
    server = SecuredServer(tmp_path_factory.mktemp("tls"), tls=True)
    yield server
    server.stop()


@pytest.fixture
def deploy_kind() -> str:
    """A type under deploy:*, which alice and carol may decide."""
    return f"deploy:{uuid.uuid4().hex[:12]}"
