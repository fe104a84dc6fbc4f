"""The files the sandbox serves at `/labels/<id>.<ext>`, rendered when fetched, and the URLs that point at them.

A file's name is the id of what it shows: `pl_…` a postage label (`.png`, `.pdf`, `.zpl`), `form_…` a
shipment's commercial invoice, `sf_…` a SCAN form, `batch_…` a batch's merged label file (in the format its
last `label` call asked for). Objects store their URLs relative (`/labels/…`); `absolute` makes them this
server's as they are sent, so a state file keeps working on another port.
"""

from __future__ import annotations

from typing import Any

from shipctl.sandbox import forms, labels
from shipctl.sandbox.model import JSON
from shipctl.sandbox.store import Store

_PDF = "application/pdf"
_ZPL = "text/plain; charset=utf-8"


def absolute(value: Any, base: str) -> Any:
    """A stored relative URL made this server's; anything else unchanged."""
    return base + value if isinstance(value, str) and value.startswith("/") else value


def public(obj: JSON, base: str) -> JSON:
    """An object as sent: private bookkeeping (keys starting with `_`) left out, its file URLs absolute."""
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    for key in ("form_url", "label_url"):
        if key in out:
            out[key] = absolute(out[key], base)
    return out


def present_shipment(shp: JSON, base: str) -> JSON:
    """A shipment's label, forms and scan form URLs made absolute (a copy; the stored one is untouched)."""
    out = dict(shp)
    label = shp.get("postage_label")
    if label:
        out["postage_label"] = {k: absolute(v, base) if k.endswith("_url") else v for k, v in label.items()}
    if shp.get("forms"):
        out["forms"] = [public(form, base) for form in shp["forms"]]
    if shp.get("scan_form"):
        out["scan_form"] = public(shp["scan_form"], base)
    return out


def serve(store: Store, name: str) -> tuple[str, bytes] | None:
    """(content type, bytes) for `/labels/<name>`, or None when there is no such file."""
    oid, _, ext = name.partition(".")
    kind = oid.partition("_")[0]
    if kind == "pl":
        return _label(store, oid, ext)
    if kind == "form" and ext == "pdf":
        ref = store.get(oid)
        shp = store.get(ref["shipment_id"]) if ref else None
        return (_PDF, forms.commercial_invoice_pdf(shp)) if shp else None
    if kind == "sf" and ext == "pdf":
        scan_form = store.get(oid)
        return (_PDF, forms.scan_form_pdf(scan_form, scan_form.get("_carrier", ""))) if scan_form else None
    if kind == "batch":
        return _batch_label(store, oid, ext)
    return None


def _label(store: Store, pl_id: str, ext: str) -> tuple[str, bytes] | None:
    ref = store.get(pl_id)
    shp = store.get(ref["shipment_id"]) if ref else None
    if shp is None or not shp.get("postage_label"):
        return None
    text = labels.label_text(shp)
    if ext == "png":
        return "image/png", labels.render_png(text)
    if ext == "pdf":
        return _PDF, labels.render_pdf(text)
    if ext == "zpl":
        return _ZPL, labels.render_zpl(text)
    return None


def _batch_label(store: Store, batch_id: str, ext: str) -> tuple[str, bytes] | None:
    batch = store.get(batch_id)
    made = (batch or {}).get("_label")
    if not made or made["format"] != ext:
        return None
    shipments = [shp for shp in (store.get(i) for i in made["shipment_ids"]) if shp and shp.get("postage_label")]
    texts = [labels.label_text(shp) for shp in shipments]
    if ext == "pdf":
        return _PDF, labels.render_pdf_many(texts, f"shipctl sandbox batch label {batch_id}")
    return _ZPL, b"".join(labels.render_zpl(text) for text in texts)
