"""localai-authd started from another source tree and/or on uvloop: A/B runs of the bench.

    PYTHONPATH=OTHER_SRC .venv/bin/python bench/authd_variant.py [--gc-relaxed] [--uvloop] ARGS...

Run with the product's interpreter. The harness sets PYTHONPATH (it wins over the editable
install's path entry) and, for --uvloop, adds a directory holding only the bench's uvloop.
"""

import sys

args = sys.argv[1:]
freeze = args[:1] == ["--gc-freeze"]
if freeze:
    args = args[1:]
if args[:1] == ["--gc-relaxed"]:
    # Experiment: fewer cyclic-GC passes (young-generation threshold 700 → 50,000).
    import gc

    args = args[1:]
    gc.set_threshold(50_000, 20, 20)
if args[:1] == ["--gc-stats"]:
    # Experiment: how long the cyclic GC stops the loop, by generation (printed at exit).
    import atexit
    import gc
    import time

    args = args[1:]
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def _gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    def _report() -> None:
        for g, xs in pauses.items():
            if xs:
                xs.sort()
                print(
                    f"gc gen{g}: {len(xs)} passes, p50 {xs[len(xs) // 2] * 1e6:.0f} µs, "
                    f"max {xs[-1] * 1e6:.0f} µs, total {sum(xs) * 1e3:.0f} ms",
                    file=sys.stderr,
                )

    gc.callbacks.append(_gc)
    atexit.register(_report)
if args[:1] == ["--uvloop"]:
    args = args[1:]
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from localai_authd.daemon import main  # noqa: E402

if freeze:
    # Experiment: what startup leaves behind (modules, classes, functions: most of the
    # heap) is moved out of the collector's sight, so a full pass only walks what requests
    # create. Approximated here after the imports; in the daemon it belongs after startup.
    import gc

    import localai_authd.control.server
    import localai_authd.gateway.app
    import localai_authd.keys.vault  # noqa: F401

    gc.collect()
    gc.freeze()
sys.exit(main(args))
