"""A bought shipment as `shipctl labels` needs it: its label files by format, its forms, whether it is void.

Blocking SDK calls run in the engine's worker threads, like every carrier call; what they return is converted to
plain frozen data here. Files are fetched with `shipments.download` (temporary file, then rename; the API key
sent only to the API's own origin) and converted with `shipments.label_url` (EasyPost's
`GET /shipments/:id/label?file_format=...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from shipctl.carrier.refunds import REFUND_DONE

_URL_KEYS = {"label_pdf_url": "PDF", "label_zpl_url": "ZPL", "label_epl2_url": "EPL2"}
_FILE_TYPES = {"image/png": "PNG", "application/pdf": "PDF", "application/zpl": "ZPL", "application/epl2": "EPL2"}
_EXTENSIONS = {".png": "PNG", ".pdf": "PDF", ".zpl": "ZPL", ".epl2": "EPL2"}


@dataclass(frozen=True)
class FormFile:
    """One of a shipment's `forms` (a commercial invoice, a customs declaration): its type and where it is."""

    id: str | None
    form_type: str
    url: str

    @property
    def title(self) -> str:
        return self.form_type.replace("_", " ")


@dataclass(frozen=True)
class Printable:
    """What the API says about a shipment whose label is to be printed."""

    id: str
    reference: str | None
    tracking_code: str | None
    carrier: str | None
    refund_status: str | None
    urls: Mapping[str, str] = field(default_factory=dict)
    """The label's URL per format the API has made it in (`PNG`, `PDF`, `ZPL`)."""
    forms: tuple[FormFile, ...] = ()

    @property
    def bought(self) -> bool:
        return bool(self.urls)

    @property
    def void(self) -> bool:
        """A refund asked for or done: the label must not be printed (`rejected` leaves it valid)."""
        return self.refund_status in REFUND_DONE


def _value(obj: Any, key: str) -> Any:
    """A key of an SDK object (its values live in __dict__) or of a plain dict."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, "__dict__", {}).get(key)


def url_format(url: str) -> str | None:
    """The format a label URL's file name says (`.png` -> PNG), None when it says none."""
    return _EXTENSIONS.get(PurePosixPath(urlsplit(url).path).suffix.lower())


def _label_urls(label: Any) -> dict[str, str]:
    urls: dict[str, str] = {}
    main = _value(label, "label_url")
    if main:
        kind = url_format(str(main)) or _FILE_TYPES.get(str(_value(label, "label_file_type") or "").lower())
        urls[kind or "PNG"] = str(main)  # EasyPost's label_url is the PNG unless it says otherwise
    for key, kind in _URL_KEYS.items():
        value = _value(label, key)
        if value:
            urls[kind] = str(value)
    return urls


def _forms(obj: Any) -> tuple[FormFile, ...]:
    forms = []
    for form in _value(obj, "forms") or ():
        url = _value(form, "form_url")
        if url:
            forms.append(FormFile(id=_value(form, "id"), form_type=str(_value(form, "form_type") or "form"),
                                  url=str(url)))
    return tuple(forms)


def printable_from(obj: Any) -> Printable:
    label = _value(obj, "postage_label")
    rate = _value(obj, "selected_rate")
    return Printable(
        id=str(_value(obj, "id")),
        reference=_value(obj, "reference"),
        tracking_code=_value(obj, "tracking_code"),
        carrier=_value(rate, "carrier"),
        refund_status=_value(obj, "refund_status"),
        urls=_label_urls(label) if label else {},
        forms=_forms(obj),
    )


def retrieve_printable(client: Any, shipment_id: str) -> Printable:
    """`GET /shipments/:id`: whether it is bought and not void, its label's URLs and its forms, as of now."""
    return printable_from(client.shipment.retrieve(quote(shipment_id, safe="")))
