"""How each field of a record is shown in a form: input type, choices, hints.

Derived from the domain schemas, so a field added there appears in the forms
without touching a template.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date
from typing import Any

from ctis.domain.records import SCHEMAS
from ctis.domain.values import value_set

#: Field name -> value set, where the name alone does not say it.
CHOICES = {
    "sex": "sex", "province": "province", "exploitation_type": "exploitation_type",
    "labour_sector": "labour_sector", "recruiter_relation": "recruiter_relation",
    "operation_kind": "operation_kind", "offence_type": "offence_type", "outcome": "prosecution_outcome",
    "assistance_type": "assistance_type", "service": "assistance_type", "agency_kind": "agency_kind",
    "means_of_control": "means_of_control",
}  # fmt: skip
STATUS = {"victims": "victim_status", "cases": "case_status"}


@dataclass(frozen=True)
class FormField:
    name: str
    input: str  # text, date, number, select, checkboxes, yesno, textarea
    required: bool
    choices: list[tuple[str, str, str]]  # (code, English label, Khmer label)
    hint: str = ""


def _base_type(annotation: Any) -> Any:
    """``date`` for ``date | None``, and so on."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def form_fields(kind: str) -> list[FormField]:
    schema = SCHEMAS[kind]
    out = []
    for name, info in schema.model_fields.items():
        required = info.is_required()
        set_name = CHOICES.get(name) or (STATUS.get(kind) if name == "status" else None)
        base = _base_type(info.annotation)
        if set_name:
            vs = value_set(set_name)
            choices = [(v.code, v.label_en, v.label_km) for v in vs.values]
            kind_of = "checkboxes" if name == "means_of_control" else "select"
            out.append(FormField(name, kind_of, required, choices))
        elif base is date:
            out.append(FormField(name, "date", required, [], "YYYY-MM-DD"))
        elif base is bool:
            out.append(FormField(name, "yesno", required, []))
        elif base is int:
            out.append(FormField(name, "number", required, []))
        elif name in schema.references:
            target = schema.references[name]
            hint = "external ids separated by ;" if name == "operations" else f"external id ({target})"
            out.append(FormField(name, "text", required, [], hint))
        elif name in {"notes", "description", "charges", "address"}:
            out.append(FormField(name, "textarea", required, []))
        elif name in {"nationality", "country_of_exploitation"}:
            out.append(FormField(name, "text", required, [], "ISO code, e.g. KHM, THA, VNM"))
        else:
            out.append(FormField(name, "text", required, []))
    return out
