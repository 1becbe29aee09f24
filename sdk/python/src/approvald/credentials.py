"""Who the client is and how it talks to approvald: a bearer token sent with
every call, and TLS settings (CA certificate, client certificate for mutual
TLS).

The token goes in the `authorization` metadata from a client interceptor
rather than as gRPC call credentials, because grpc refuses call credentials
on a plaintext channel and approvald also accepts tokens over plaintext (on
loopback, or behind a TLS-terminating proxy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

import grpc
import grpc.aio

PathLike = Union[str, Path]


def tls_credentials(
    ca_cert: Optional[PathLike] = None,
    client_cert: Optional[PathLike] = None,
    client_key: Optional[PathLike] = None,
) -> grpc.ChannelCredentials:
    """TLS settings for `ApprovalClient(..., credentials=...)`, from PEM files.

    `ca_cert` is the CA (or self-signed certificate) to trust for the server's
    certificate; without it the system's roots are used. `client_cert` and
    `client_key` (both or neither) present a client certificate for mutual
    TLS.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together (mutual TLS needs both)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_cert),
        private_key=_read(client_key),
        certificate_chain=_read(client_cert),
    )


def _read(path: Optional[PathLike]) -> Optional[bytes]:
    return None if path is None else Path(path).read_bytes()


def _authorization(token: str) -> tuple[str, str]:
    if not token or token != token.strip():
        raise ValueError("token is empty or has surrounding whitespace")
    return ("authorization", f"Bearer {token}")


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (sync channels)."""

    def __init__(self, token: str) -> None:
        self._header = _authorization(token)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class _AsyncBearerToken:
    def __init__(self, token: str) -> None:
        self._header = _authorization(token)

    def _details(self, details: Any) -> Any:
        metadata = grpc.aio.Metadata.from_tuple((*(details.metadata or ()), self._header))
        return details._replace(metadata=metadata)


class _AsyncUnaryUnaryBearerToken(_AsyncBearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AsyncUnaryStreamBearerToken(_AsyncBearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable, details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


def async_bearer_token(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add `authorization: Bearer <token>` to every call,
    for `grpc.aio.*_channel(..., interceptors=...)` (grpc.aio takes one
    interceptor per kind of call)."""
    return [_AsyncUnaryUnaryBearerToken(token), _AsyncUnaryStreamBearerToken(token)]
