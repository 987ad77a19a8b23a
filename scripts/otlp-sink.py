#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for load runs: answers every `POST /v1/traces` with
200 and counts the requests, bytes and spans it received (the spans are counted by walking
the protobuf: ExportTraceServiceRequest.resource_spans(1) -> ScopeSpans(2) -> Span(2)).

usage: scripts/otlp-sink.py PORT [STATS_FILE]

Writes `requests bytes spans` to STATS_FILE after every request (default: none) and prints
the totals on SIGTERM or Ctrl-C. Used by scripts/trace-overhead.sh; not a collector.
"""
import http.server
import signal
import sys
import threading

totals = {"requests": 0, "bytes": 0, "spans": 0}
lock = threading.Lock()


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, bytes) of each length-delimited field; skips the other wire types."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, i = varint(buf, i)
            yield number, buf[i:i + length]
            i += length
        elif wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            return


def count_spans(body):
    return sum(
        1
        for n1, resource_spans in fields(body) if n1 == 1
        for n2, scope_spans in fields(resource_spans) if n2 == 2
        for n3, _ in fields(scope_spans) if n3 == 2
    )


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        spans = count_spans(body) if self.path == "/v1/traces" else 0
        with lock:
            totals["requests"] += 1
            totals["bytes"] += len(body)
            totals["spans"] += spans
            if STATS:
                with open(STATS, "w") as f:
                    f.write(f"{totals['requests']} {totals['bytes']} {totals['spans']}\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    global STATS
    port = int(sys.argv[1])
    STATS = sys.argv[2] if len(sys.argv) > 2 else None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def stop(*_):
        print(f"otlp-sink: {totals['requests']} requests, {totals['bytes']} bytes, "
              f"{totals['spans']} spans", flush=True)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


STATS = None
if __name__ == "__main__":
    main()
