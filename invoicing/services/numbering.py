"""A finalized document's gapless number taken and written in one statement.

``invoices.number_next`` takes a number (``UPDATE ... RETURNING``) and the caller then saves the document: two
round trips while the sequence row is locked, and every concurrent finalization queues on that lock until the
commit. ``numbered_save`` sends both as one statement -- a data-modifying ``WITH`` that advances the sequence,
and the document's ``UPDATE`` reading the number from it -- so the lock is held for one round trip less, and the
document is the same: the number is ``prefix`` + the value zero-padded to six digits (``INV-000042``; wider
values keep all their digits), as ``number_next`` formats it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from django.db import connection
from django.db.models import Field, Model

from core.prepared import prepared_cursor
from core.rows import field_values

from ..models import NumberSequence

_TAKE = (
    "WITH n AS (UPDATE invoicing_numbersequence SET last_value = last_value + 1 WHERE name = %s "
    "RETURNING prefix, last_value) "
)
_NUMBER = (
    "(SELECT n.prefix || CASE WHEN n.last_value < 1000000 THEN lpad(n.last_value::text, 6, '0') "
    "ELSE n.last_value::text END FROM n)"
)


@cache
def _statement(model: type[Model], fields: tuple[str, ...]) -> tuple[str, tuple[Field, ...]]:
    """The statement for ``model`` and ``fields`` (built once): the sequence's ``UPDATE`` in a ``WITH``, then the
    row's, ``number`` read from it; the other fields' values and the primary key are its parameters."""
    meta = model._meta
    q = connection.ops.quote_name
    valued = tuple(meta.get_field(name) for name in fields if name != "number")
    sets = [f"{q(f.column)} = %s" for f in valued]
    number_column = q(meta.get_field("number").column)
    if "number" in fields:
        sets.append(f"{number_column} = {_NUMBER}")
    # No sequence row: nothing is updated (the number is never written empty); it is created and taken again.
    return (
        f"{_TAKE}UPDATE {q(meta.db_table)} SET {', '.join(sets)} WHERE {q(meta.pk.column)} = %s "
        f"AND EXISTS (SELECT 1 FROM n) RETURNING {number_column}",
        valued,
    )


def numbered_save(instance: Model, *, sequence: str, fields: Sequence[str], prefix: str) -> str:
    """Take the next number of ``sequence`` into ``instance.number`` and save ``fields`` (``number`` among
    them) in one ``UPDATE``; returns the number. Call inside a transaction: the sequence row stays locked until
    it ends, so a rollback gives the number back (no gaps, no duplicates). ``prefix``: the sequence's when its
    row does not exist yet (created on first use, as ``number_next`` does). The values written are the ones
    ``save(update_fields=...)`` writes (each field's ``pre_save``, then ``get_db_prep_save``)."""
    statement, valued = _statement(type(instance), tuple(fields))
    params = field_values(instance, valued, add=False)
    with prepared_cursor() as cursor:  # planned once per connection (core.prepared)
        for _attempt in range(2):
            cursor.execute(statement, [sequence, *params, instance.pk])
            row = cursor.fetchone()
            if row is not None:
                instance.number = row[0]
                return row[0]
            NumberSequence.objects.get_or_create(name=sequence, defaults={"prefix": prefix})
    raise RuntimeError(f"number sequence {sequence!r} unavailable")  # pragma: no cover
