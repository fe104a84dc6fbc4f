"""Money guards under the awkward cases a review found: resumed runs, key changes, gateways, edits, stdin."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from shipctl.sandbox import Sandbox
from tests.cli import PROD_KEY, invoke, ndjson
from tests.manifests import row, write_manifest


def refs(n: int) -> Counter[str]:
    return Counter({f"ORD-{i:05d}": 1 for i in range(n)})


def bought(sb: Sandbox) -> Counter[str]:
    return Counter(e["reference"] for e in sb.ledger())


def test_a_production_rerun_asks_even_when_its_first_rows_are_already_bought(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(8)])
    assert invoke("create", str(manifest), "--yes", "-q").exit_code == 0
    assert bought(env) == refs(8)
    # The manifest grows; the rerun's first chunk is all resumed rows, so no new shipment reveals the mode.
    write_manifest(manifest, [row(i) for i in range(20)])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 2
    assert "production mode" in result.stderr and "--yes" in result.stderr
    assert bought(env) == refs(8)


def test_a_test_key_journal_is_not_resumed_with_a_production_key(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    result = invoke("create", str(manifest), "--yes", "-o", "ndjson")
    assert result.exit_code == 2
    assert "(test key)" in result.stderr and "(production key)" in result.stderr
    assert result.stdout == ""  # nothing reported as bought in production
    assert PROD_KEY not in result.stderr


def test_rows_added_while_the_purchase_waits_for_confirmation_are_not_bought(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    asked: list[int] = []

    def confirm_while_an_export_rewrites_the_file(yes: bool, count: int, totals: Any) -> bool:
        asked.append(count)
        write_manifest(manifest, [row(i) for i in range(30)])
        return True

    monkeypatch.setattr("shipctl.cli.run_create._confirm_purchase", confirm_while_an_export_rewrites_the_file)
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert asked == [3]
    assert bought(env) == refs(3)  # exactly what was confirmed
    records = ndjson(result.stdout)
    assert sum(r["status"] == "bought" for r in records) == 3
    assert {r["error_code"] for r in records if r["status"] == "skipped"} == {"NOT_CONFIRMED"}
    assert result.exit_code == 3


class _HtmlGateway:
    """A reverse proxy that forwards the first buy (so it is committed) and answers it with an HTML 502."""

    def __init__(self, upstream: str) -> None:
        self.fired = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, upstream + self.path, data=body, headers=headers, timeout=30)
                if self.path.endswith("/buy") and not outer.fired:
                    outer.fired = True
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(502)
                    self.send_header("Content-Type", "text/html")
                else:
                    page = answer.content
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = _forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def gateway(env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[_HtmlGateway]:
    proxy = _HtmlGateway(env.api_base.removesuffix("/v2"))
    monkeypatch.setenv("EASYPOST_API_BASE", proxy.api_base)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_gateway_error_page_on_buy_is_reconciled_not_failed(
    env: Sandbox, gateway: _HtmlGateway, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(i) for i in range(3)])
    failed = tmp_path / "failed.csv"
    result = invoke("create", str(manifest), "-o", "ndjson", "--concurrency", "1", "--failed", str(failed))
    assert gateway.fired
    assert result.exit_code == 0, result.stderr
    assert {r["status"] for r in ndjson(result.stdout)} == {"bought"}
    assert bought(env) == refs(3)
    assert not failed.exists()  # nothing offered for re-shipping


def test_a_bigger_export_on_stdin_does_not_rebuy_earlier_rows(env: Sandbox, tmp_path: Path) -> None:
    def csv_text(n: int) -> str:
        return write_manifest(tmp_path / f"export-{n}.csv", [row(i) for i in range(n)]).read_text()

    assert invoke("create", "-", "-q", input=csv_text(5)).exit_code == 0
    result = invoke("create", "-", "-o", "ndjson", input=csv_text(6))
    assert result.exit_code == 0, result.stderr
    assert len(ndjson(result.stdout)) == 6
    assert bought(env) == refs(6)


def test_label_files_never_collide(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "orders.csv", [row(0, reference="PO 17/A"), row(1, reference="PO_17_A"), row(2)]
    )
    labels = tmp_path / "labels"
    result = invoke("create", str(manifest), "-o", "ndjson", "--labels-dir", str(labels))
    assert result.exit_code == 0, result.stderr
    paths = {r["reference"]: Path(r["label_path"]) for r in ndjson(result.stdout)}
    assert len(set(paths.values())) == 3
    assert paths["PO_17_A"].name == "PO_17_A.png" and paths["ORD-00002"].name == "ORD-00002.png"
    assert sorted(p.name for p in labels.iterdir()) == sorted(p.name for p in paths.values())


def test_a_row_edited_after_purchase_is_not_rebought_and_is_flagged(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    write_manifest(manifest, [row(0, to_name="Someone Else"), row(1)])
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00000"]["status"] == "bought"
    assert by_ref["ORD-00000"]["error_code"] == "EDITED_AFTER_PURCHASE"
    assert bought(env) == refs(2)


def test_a_refunded_label_is_not_reported_as_plainly_bought(env: Sandbox, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "orders.csv", [row(0), row(1)])
    assert invoke("create", str(manifest), "-q").exit_code == 0
    journal = tmp_path / "orders.csv.journal.db"
    refunded = invoke("refund", "--journal", str(journal), "--reference", "ORD-00001", "-o", "ndjson")
    assert refunded.exit_code == 0, refunded.stderr
    result = invoke("create", str(manifest), "-o", "ndjson")
    assert result.exit_code == 3
    by_ref = {r["reference"]: r for r in ndjson(result.stdout)}
    assert by_ref["ORD-00001"]["error_code"] == "REFUNDED"
    assert by_ref["ORD-00000"]["error_code"] is None
    assert bought(env) == refs(2)  # nothing bought again


def test_a_label_bought_under_another_journal_is_found_by_reference_not_bought_again(
    env: Sandbox, tmp_path: Path
) -> None:
    rows = [row(i) for i in range(4)]
    first = write_manifest(tmp_path / "orders.csv", rows)
    assert invoke("create", str(first), "-q").exit_code == 0
    # The same orders, exported again as another file: a new journal that knows none of them.
    again = write_manifest(tmp_path / "orders-again.csv", [*rows, row(4)])
    result = invoke("create", str(again), "-o", "ndjson", "--check-references")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("outside this journal") == 4
    records = ndjson(result.stdout)
    assert len(records) == 5 and {r["status"] for r in records} == {"bought"}
    assert bought(env) == refs(5)  # only the new order was bought


def test_production_keys_check_references_by_default(
    env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASYPOST_API_KEY", PROD_KEY)
    rows = [row(i) for i in range(3)]
    assert invoke("create", str(write_manifest(tmp_path / "a.csv", rows)), "--yes", "-q").exit_code == 0
    result = invoke("create", str(write_manifest(tmp_path / "b.csv", rows)), "--yes", "-o", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert bought(env) == refs(3)
    # Test keys skip the lookup unless asked: the same rows under a third journal would be bought again.
