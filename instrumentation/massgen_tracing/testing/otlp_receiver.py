"""A real OTLP trace receiver on loopback (HTTP/protobuf and gRPC) that keeps what it receives.

For tests and `massgen-trace doctor` checks: decodes every export request into flat span dicts.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _any(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]
    start_time_ns: int
    end_time_ns: int


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = {kv.key: _any(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(ReceivedSpan(
                    trace_id=sp.trace_id.hex(),
                    span_id=sp.span_id.hex(),
                    parent_span_id=sp.parent_span_id.hex() or None,
                    name=sp.name,
                    attributes={kv.key: _any(kv.value) for kv in sp.attributes},
                    events=[(e.name, {kv.key: _any(kv.value) for kv in e.attributes}) for e in sp.events],
                    status_code=sp.status.code,
                    resource=resource,
                    start_time_ns=sp.start_time_unix_nano,
                    end_time_ns=sp.end_time_unix_nano,
                ))
    return out


class OtlpReceiver:
    """`with OtlpReceiver() as r:` serves OTLP/HTTP at `r.http_endpoint` (…/v1/traces) and OTLP/gRPC at
    `r.grpc_endpoint`; `r.spans` holds everything received, `r.wait_for(n)` waits for n spans."""

    def __init__(self, host: str = "127.0.0.1", *, grpc: bool = True):
        self.host = host
        self.spans: list[ReceivedSpan] = []
        self.requests = {"http": 0, "grpc": 0}
        self._cond = threading.Condition()
        self._http: ThreadingHTTPServer | None = None
        self._grpc: Any = None
        self._want_grpc = grpc
        self.http_port = 0
        self.grpc_port = 0

    def _add(self, via: str, req: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = decode(req)
        with self._cond:
            self.requests[via] += 1
            self.spans.extend(spans)
            self._cond.notify_all()

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                receiver._add("http", req)
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # silence request log
                pass

        self._http = ThreadingHTTPServer((self.host, 0), Handler)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        if self._want_grpc:
            import grpc
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

            class Servicer(trace_service_pb2_grpc.TraceServiceServicer):  # generated stubs are untyped
                def Export(self, request: Any, context: Any) -> Any:  # gRPC naming
                    receiver._add("grpc", request)
                    return trace_service_pb2.ExportTraceServiceResponse()

            self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            add = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # untyped generated stub
            add(Servicer(), self._grpc)  # type: ignore[no-untyped-call]  # generated, untyped
            self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:0")
            self._grpc.start()
        return self

    @property
    def http_endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}/v1/traces"

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.spans) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.spans)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
