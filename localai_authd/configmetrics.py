"""Config of the metrics listener: [metrics].

Off unless ``listen`` is set. Like every listener it stays on loopback unless it has TLS
(``tls_cert`` + ``tls_key``); ``client_ca`` then also asks scrapers for a client certificate
signed by that CA (Prometheus ``tls_config`` cert_file/key_file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .configlisten import TLS
from .configschema import Draft, ListenAddress


@dataclass(frozen=True)
class Metrics:
    listen: ListenAddress | None = None  # None: no metrics listener
    tls: TLS | None = None


def metrics(d: Draft) -> dict[str, Any]:
    t = d.table("metrics")
    problems = d.problems
    listen: ListenAddress | None = t.get("listen")
    cert, key, ca = t.get("tls_cert"), t.get("tls_key"), t.get("client_ca")
    tls = None
    if cert is not None and key is not None:
        tls = TLS(cert, key, client_ca=ca, client_cert="required" if ca else "off")
        for label, p in (("tls_cert", cert), ("tls_key", key), ("client_ca", ca)):
            if p is not None and not os.access(p, os.R_OK):
                problems.append(f"[metrics] {label}: cannot read {p}")
    elif cert is not None or key is not None:
        problems.append("[metrics]: give both tls_cert and tls_key")
    elif ca is not None:
        problems.append("[metrics] client_ca needs TLS: set tls_cert and tls_key")
    if listen is None:
        if t:
            problems.append('[metrics]: set listen (e.g. "127.0.0.1:9464") to turn metrics on')
        return {"metrics": Metrics()}
    if not listen.is_loopback and tls is None:
        problems.append(
            f"[metrics] listen = {listen} is not loopback and has no TLS: metrics beyond "
            "loopback must use TLS. Fix: set tls_cert and tls_key in [metrics], or listen "
            "on 127.0.0.1 or [::1]"
        )
    return {"metrics": Metrics(listen, tls)}
