"""Identity resolution (D4): one ``customer_id`` for the same person across systems.

The member card number is the customer key in every system of the demo company, but not every
record carries it: a customer who calls the service desk often gives only a phone number. After
every load, inside the load's transaction, :func:`resolve_identities` ties such records to a
customer by deterministic rules, in this precedence:

1. **member_card**: a record that carries a customer_id keeps it. If its phone or e-mail belongs
   only to other customers, that is recorded as a ``conflict`` (never changed).
2. **phone**: the normalised 11-digit mobile (``+86 138-0000-1234`` → ``13800001234``) held by
   exactly one customer.
3. **email**: the lower-cased address held by exactly one customer.

The first rule whose value some customer holds decides. A value held by several customers (a family
sharing one phone) is ``ambiguous``: the record is not merged into any of them, and the map lists
the candidates. Customers who share a phone or e-mail are recorded as ``shared`` and stay separate
(each has its own member card). Every decision is an entry of the ``identity_map`` table, with the
matched value masked, so that ``crmlens identity explain`` can say why a record belongs to a
customer. Behaviour events are keyed by the customer's anonymised user ID (``customers.anon_id``),
never by the card or the phone.

Only the service desk's tickets carry a contact value without always carrying a card; leads carry a
phone too, but a lead's ``customer_id`` means "the customer it became when won", which a phone
match must not set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from crmlens.errors import ConfigError
from crmlens.schema import table as schema_table
from crmlens.warehouse import Warehouse, identity_store
from crmlens.warehouse.identity_store import Contact, RecordSource, ResolutionCounts

#: The tables whose records may be tied to a customer by a contact value, rules in precedence.
IDENTITY_SOURCES: tuple[RecordSource, ...] = (
    RecordSource("service_tickets", "ticket_id", (Contact("contact_phone", "phone"),)),
)

_RULE_WORDS = {"phone": "phone", "email": "e-mail", "member_card": "member card"}


def resolve_identities(
    con: duckdb.DuckDBPyConnection,
    *,
    load_id: str,
    resolved_at: datetime,
    sources: tuple[RecordSource, ...] = IDENTITY_SOURCES,
) -> ResolutionCounts:
    """Run the rules over the whole warehouse inside the caller's (the load's) transaction."""
    return identity_store.resolve(con, sources, load_id=load_id, resolved_at=resolved_at)


def explain(warehouse: Warehouse, customer_id: str) -> list[str]:
    """Sentences saying how records came to belong to ``customer_id`` (or did not).

    Raises :class:`ConfigError` when the warehouse has no such customer.
    """
    con = warehouse.raw
    if not identity_store.customer_exists(con, customer_id):
        raise ConfigError(
            f"{warehouse.path}: no customer {customer_id!r} in table customers; expected a "
            "customer_id (in the demo the member card number, e.g. M0000123)"
        )
    lines = [f"{customer_id}: the member card number is the customer_id in every system."]
    counts = identity_store.records_by_table(con, customer_id)
    entries = identity_store.entries_for(con, customer_id)
    by_contact: dict[str, int] = {}
    for e in entries:
        if e["outcome"] == "matched" and e["customer_id"] == customer_id:
            by_contact[e["source_table"]] = by_contact.get(e["source_table"], 0) + 1
    direct = {
        t: n - by_contact.get(t, 0)
        for t, n in counts.items()
        if t != "app_events" and n - by_contact.get(t, 0)
    }
    if direct:
        lines.append(
            "Carry the member card: " + ", ".join(f"{n:,} {_label(t)}" for t, n in direct.items())
        )
    if counts.get("app_events"):
        lines.append(
            f"{counts['app_events']:,} app events are keyed by this customer's anonymised user ID."
        )
    lines += [_sentence(e, customer_id) for e in entries]
    if not entries:
        lines.append(
            "No record was tied to this customer by phone or e-mail, and none is in doubt."
        )
    return lines


def _label(name: str) -> str:
    """A table's English label in lower case, e.g. ``service tickets``."""
    return schema_table(name).label_en.lower()


def _others(candidates: str | None, customer_id: str) -> str:
    return ", ".join(c for c in (candidates or "").split(";") if c and c != customer_id)


def _sentence(entry: dict[str, Any], customer_id: str) -> str:
    """One map entry as a sentence from ``customer_id``'s point of view."""
    table = schema_table(entry["source_table"]).label_en.lower().rstrip("s")
    key, value = entry["source_key"], entry["matched_value"]
    rule = _RULE_WORDS.get(entry["rule"], entry["rule"])
    when = f" (load {entry['load_id']})"
    outcome = entry["outcome"]
    if outcome == "matched":
        return f"{table} {key}: merged because {rule} {value} matched{when}."
    if outcome == "ambiguous":
        return (
            f"{table} {key}: NOT merged: its {rule} {value} belongs to several customers "
            f"({entry['candidates'].replace(';', ', ')}){when}."
        )
    if outcome == "conflict" and entry["customer_id"] == customer_id:
        return (
            f"{table} {key}: kept on its member card although its contact value {value} belongs "
            f"to {_others(entry['candidates'], customer_id)} (member card beats phone and "
            f"e-mail){when}."
        )
    if outcome == "conflict":
        return (
            f"{table} {key}: carries this customer's contact value {value} but the member card "
            f"of {entry['customer_id']}, and stays with {entry['customer_id']}{when}."
        )
    return (
        f"shares {rule} {value} with {_others(entry['candidates'], customer_id)}: not merged, "
        f"each keeps its own member card{when}."
    )


def stats(
    warehouse: Warehouse, sources: tuple[RecordSource, ...] = IDENTITY_SOURCES
) -> dict[str, Any]:
    """How the records of each source table are tied to customers, and the map's entries."""
    return identity_store.summary(warehouse.raw, sources)


def format_counts(counts: ResolutionCounts) -> str:
    """A one-line summary of a resolution, e.g. for the load report.

    >>> c = ResolutionCounts(entries={("service_tickets", "phone", "matched"): 3})
    >>> format_counts(c)
    'identity: 3 matched by phone or e-mail, 0 ambiguous (not merged), 0 conflicts, 0 shared contacts'
    """
    tables = {t for t, _, _ in counts.entries}
    matched = sum(counts.count(t, outcome="matched") for t in tables)
    ambiguous = sum(counts.count(t, outcome="ambiguous") for t in tables)
    conflicts = sum(counts.count(t, outcome="conflict") for t in tables)
    shared = counts.count("customers", outcome="shared")
    return (
        f"identity: {matched} matched by phone or e-mail, {ambiguous} ambiguous (not merged), "
        f"{conflicts} conflicts, {shared} shared contacts"
    )
