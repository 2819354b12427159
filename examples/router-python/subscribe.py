#!/usr/bin/env python3
"""Follow Eagle Eye's hot series on ZeroMQ and pick the least loaded endpoint.

The gateway publishes multipart messages [topic, json] on a PUB socket (default
tcp://127.0.0.1:5556); the routing group's topic is eagle_eye.routing_metrics. Each message is
one endpoint's state (docs/hot-series.md). This router keeps the newest message per endpoint
and, after every message, prints the endpoint it would send the next request to, scoring as
the Gateway API Inference Extension's saturation detector does:
max(waiting / 5, kv_cache_usage / 0.8); stale or removed endpoints are not candidates.

Needs pyzmq (Debian: python3-zmq). Examples:

    python3 subscribe.py                                  # run until Ctrl-C
    python3 subscribe.py --raw --count 10 --timeout 5     # print 10 messages as JSON lines
"""

import argparse
import json
import sys

import zmq

QUEUE_THRESHOLD = 5.0
KV_THRESHOLD = 0.8


def score(msg):
    """Saturation of an endpoint: 0 idle, 1 at a threshold; None when it cannot take work."""
    if msg.get("status") != "fresh":
        return None
    metrics = msg.get("metrics", {})
    waiting = metrics.get("num_requests_waiting")
    kv = metrics.get("kv_cache_usage")
    if waiting is None and kv is None:
        return None
    return max((waiting or 0) / QUEUE_THRESHOLD, (kv or 0) / KV_THRESHOLD)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="the gateway's ZeroMQ PUB address")
    ap.add_argument("--topic", default="eagle_eye.routing_metrics", help="topic prefix to subscribe to ('' for all)")
    ap.add_argument("--count", type=int, default=0, help="exit after this many messages (0: never)")
    ap.add_argument("--timeout", type=float, default=0, help="exit with status 1 after this many seconds without a message (0: wait forever)")
    ap.add_argument("--raw", action="store_true", help="print each message as one JSON line instead of routing decisions")
    args = ap.parse_args()

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 10000)
    sock.connect(args.endpoint)
    sock.setsockopt_string(zmq.SUBSCRIBE, args.topic)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    print("subscribed to %r on %s" % (args.topic, args.endpoint), file=sys.stderr, flush=True)

    table = {}
    received = 0
    try:
        while args.count == 0 or received < args.count:
            timeout_ms = int(args.timeout * 1000) if args.timeout > 0 else None
            if not poller.poll(timeout_ms):
                print("no message for %.1fs" % args.timeout, file=sys.stderr)
                return 1
            frames = sock.recv_multipart()
            if len(frames) != 2:
                print("skipping a message of %d frames" % len(frames), file=sys.stderr)
                continue
            topic, data = frames
            msg = json.loads(data)
            received += 1
            if args.raw:
                print(json.dumps({"topic": topic.decode(), "message": msg}, sort_keys=True), flush=True)
                continue
            if msg.get("status") == "removed":
                table.pop(msg["key"], None)
            else:
                table[msg["key"]] = msg
            candidates = [(s, k) for k, m in table.items() if (s := score(table[k])) is not None]
            if candidates:
                best_score, best = min(candidates)
                ep = table[best]["endpoint"]
                print("seq %-8d %-40s -> next request to %s (score %.2f, %d candidates)" % (
                    msg["seq"], msg["key"], ",".join("%s=%s" % kv for kv in sorted(ep.items())), best_score, len(candidates)), flush=True)
            else:
                print("seq %-8d %-40s -> no endpoint can take work" % (msg["seq"], msg["key"]), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
