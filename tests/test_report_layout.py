"""`report`'s table in a file or pipe and on a narrow terminal: the group's name and every amount whole.

The journals are written directly (large totals and long service names take no sandbox to make), as an older
shipctl wrote them; `report` reads them read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.cli import invoke
from tests.journals import old_schema
from tests.screen import on_screen

SERVICES = ("FirstClassPackageInternationalService", "Priority Mail Express International", "GroundAdvantage")


def _journal(path: Path) -> Path:
    """One day of USPS labels in three services with long names, $7,067,744.57 spent, one refund pending."""
    db = sqlite3.connect(path)
    try:
        db.executescript(old_schema(bought_at=True))
        rows = []
        for i in range(30):
            service = SERVICES[i % 3]
            refund = "submitted" if i == 0 else None
            rows.append((f"R-{i}", i + 1, f"shp_{i}", service, f"{243_700 + i}.33", refund))
        db.executemany(
            "INSERT INTO rows (reference, line, state, shipment_id, carrier, service, rate, currency, "
            "refund_status, updated_at, bought_at) VALUES (?, ?, 'bought', ?, 'USPS', ?, ?, 'USD', ?, "
            "'2024-03-01T15:00:00.000+00:00', '2024-03-01T15:00:00.000+00:00')",
            [(ref, line, sid, service, rate, refund) for ref, line, sid, service, rate, refund in rows],
        )
        db.execute("INSERT INTO meta VALUES ('mode', 'production')")
        db.commit()
    finally:
        db.close()
    return path


def test_in_a_file_every_row_is_whole_on_one_line(tmp_path: Path) -> None:
    """No screen to fit: the names, `total USD` and every amount whole, no column left out, no trailing blanks
    (the table used to be squeezed into 80 columns: a name column 0 wide, `$7,311.…`)."""
    journal = _journal(tmp_path / "big.journal.db")
    done = invoke("report", "--journal", str(journal), "--by", "service", "-o", "table")
    assert done.exit_code == 0, done.stderr
    text = done.stdout
    assert "…" not in text, text
    lines = text.splitlines()
    for service in SERVICES:
        assert any(f"USPS {service}" in line for line in lines), text
    total = next(line for line in lines if "total USD" in line)
    assert "$7,067,744.57" in total and "$243,700.33" in total, text  # spend, and the refund asked for
    header = next(line for line in lines if "service" in line and "labels" in line)
    assert all(name in header for name in ("spend", "average", "median", "refunds", "refunded", "pending"))
    assert all(line == line.rstrip() for line in lines), text
    assert "leaves out" not in done.stderr


def test_on_a_narrow_terminal_figure_columns_go_before_the_name(tmp_path: Path) -> None:
    """At 80 columns the figures do not all fit: whole columns are left out, said once on stderr; the names
    fold (a long word within itself) and every figure shown is whole."""
    journal = _journal(tmp_path / "big.journal.db")
    seen = on_screen(["report", "--journal", str(journal), "--by", "service"], 80)
    assert seen.code == 0, seen.stderr
    table = seen.stdout[: seen.stdout.index("Spend per day")]
    assert "…" not in table, table
    assert all(len(line) <= 80 for line in table.splitlines()), table
    cells = "".join(line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│"))
    for service in SERVICES:
        assert f"USPS{service.replace(' ', '')}" in cells.replace(" ", ""), table
    assert "total USD" in table and "$7,067,744.57" in table
    notes = [line for line in seen.stderr.splitlines() if "leaves out" in line]
    assert len(notes) == 1 and "to fit 80 columns; -o csv has every column" in notes[0], seen.stderr
    header = next(line for line in table.splitlines() if "service" in line and "┃" in line)
    left_out = notes[0].split("leaves out ")[1].split(" to fit")[0].split(", ")
    assert "labels" in header and "spend" in header
    assert not any(f" {name} " in header for name in left_out), (header, left_out)
