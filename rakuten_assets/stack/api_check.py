"""End-to-end checks of a running model server (`make test-api`, the end of `make demo`).

Each check is a real request and says what it saw; nothing here imports the server's code, so
it checks the HTTP contract as a client sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rakuten_assets.data.categories import CODES
from rakuten_assets.stack.http_json import http

# Listings a shopper could paste, one per kind of product, French first like the catalogue.
SAMPLE_LISTINGS: tuple[dict[str, str | None], ...] = (
    {
        "designation": "Harry Potter à l'école des sorciers - J.K. Rowling - Folio Junior",
        "description": "Livre de poche en bon état, quelques pages cornées.",
    },
    {
        "designation": "Pompe de filtration pour piscine hors sol 4 m3/h",
        "description": "<p>Pompe compatible Intex et Bestway, tuyaux fournis.</p>",
    },
    {
        "designation": "Figurine Pop Funko Marvel Spider-Man 10 cm",
        "description": None,
    },
    {
        "designation": "Manette sans fil pour PS4 double vibration noire",
        "description": "Compatible PlayStation 4, câble de charge USB inclus.",
    },
    {
        "designation": "Chaussettes antidérapantes bébé lot de 6 paires 0-6 mois",
        "description": "Coton doux, motifs animaux.",
    },
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ApiReport:
    checks: list[Check]
    predictions: list[tuple[dict[str, Any], dict[str, Any]]]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def _valid_answer(answer: Any) -> bool:
    return (
        isinstance(answer, dict)
        and answer.get("prdtypecode") in CODES
        and 0.0 <= float(answer.get("confidence", -1)) <= 1.0
        and bool(answer.get("category"))
        and bool(answer.get("model_version"))
    )


def check_api(
    url: str,
    api_key: str | None = None,
    listings: tuple[dict[str, str | None], ...] = SAMPLE_LISTINGS,
) -> ApiReport:
    """Health, info, one prediction, a batch, a refused bad request and the metrics page."""
    base = url.rstrip("/")
    checks: list[Check] = []
    predictions: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def record(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    def request(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        try:
            return http(method, base + path, body, timeout=30, **kwargs)
        except OSError as error:
            return 0, f"no answer: {getattr(error, 'reason', error)}"

    status, body = request("GET", "/health")
    record(
        "GET /health",
        status == 200,
        f"HTTP {status}: model v{body.get('model_version')}, status {body.get('status')}"
        if isinstance(body, dict)
        else f"HTTP {status}: {body}",
    )
    status, body = request("GET", "/info")
    workers = body.get("workers", []) if isinstance(body, dict) else []
    loaded = [w for w in workers if w.get("version")]
    record(
        "GET /info",
        status == 200 and bool(workers) and len(loaded) == len(workers),
        f"HTTP {status}: {body.get('model_name')}, {len(loaded)}/{len(workers)} worker(s) on "
        + ", ".join(sorted({f"v{w['version']} (partition {w.get('partition')})" for w in loaded}))
        if isinstance(body, dict)
        else f"HTTP {status}: {body}",
    )
    headers = {"X-API-Key": api_key} if api_key else {}
    status, body = request("POST", "/predict", listings[0], headers=headers)
    record(
        "POST /predict",
        status == 200 and _valid_answer(body),
        f"HTTP {status}: {body.get('prdtypecode')} {body.get('category')} "
        f"({float(body.get('confidence', 0)):.2f})"
        if isinstance(body, dict)
        else f"HTTP {status}: {body}",
    )
    status, body = request("POST", "/predict", list(listings), headers=headers)
    batch_ok = (
        status == 200
        and isinstance(body, list)
        and len(body) == len(listings)
        and all(_valid_answer(answer) for answer in body)
    )
    record(
        "POST /predict (batch)",
        batch_ok,
        f"HTTP {status}: {len(body) if isinstance(body, list) else 0} answers "
        f"for {len(listings)} listings",
    )
    if batch_ok:
        predictions = list(zip(listings, body, strict=True))
    status, body = request("POST", "/predict", {"designation": ""}, headers=headers)
    record(
        "POST /predict refuses an empty designation",
        status == 422,
        f"HTTP {status}" + (f": {str(body)[:100]}" if status != 422 else " (as expected)"),
    )
    status, body = request("GET", "/metrics")
    record(
        "GET /metrics",
        status == 200 and "rakuten_predictions_total" in str(body),
        f"HTTP {status}: "
        + ("rakuten_* metrics present" if "rakuten_predictions_total" in str(body) else "missing"),
    )
    return ApiReport(checks, predictions)
