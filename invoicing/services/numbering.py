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

from django.db import connection
from django.db.models import Model
from django.db.models.expressions import RawSQL
from django.db.models.sql import UpdateQuery

from ..models import NumberSequence

_TAKE = (
    "WITH n AS (UPDATE invoicing_numbersequence SET last_value = last_value + 1 WHERE name = %s "
    "RETURNING prefix, last_value) "
)
_NUMBER = (
    "(SELECT n.prefix || CASE WHEN n.last_value < 1000000 THEN lpad(n.last_value::text, 6, '0') "
    "ELSE n.last_value::text END FROM n)"
)


def numbered_save(instance: Model, *, sequence: str, fields: Sequence[str], prefix: str) -> str:
    """Take the next number of ``sequence`` into ``instance.number`` and save ``fields`` (``number`` among
    them) in one ``UPDATE``; returns the number. Call inside a transaction: the sequence row stays locked until
    it ends, so a rollback gives the number back (no gaps, no duplicates). ``prefix``: the sequence's when its
    row does not exist yet (created on first use, as ``number_next`` does)."""
    model = type(instance)
    meta = model._meta
    values = []
    for name in fields:
        field = meta.get_field(name)
        value = RawSQL(_NUMBER, ()) if name == "number" else field.pre_save(instance, False)
        values.append((field, None, value))
    query = UpdateQuery(model)
    query.add_filter("pk", instance.pk)
    query.add_update_fields(values)
    sql, params = query.get_compiler(connection.alias).as_sql()
    number_column = connection.ops.quote_name(meta.get_field("number").column)
    # No sequence row: nothing is updated (the number is never written empty); it is created and taken again.
    statement = f"{_TAKE}{sql} AND EXISTS (SELECT 1 FROM n) RETURNING {number_column}"
    with connection.cursor() as cursor:
        for _attempt in range(2):
            cursor.execute(statement, [sequence, *params])
            row = cursor.fetchone()
            if row is not None:
                instance.number = row[0]
                return row[0]
            NumberSequence.objects.get_or_create(name=sequence, defaults={"prefix": prefix})
    raise RuntimeError(f"number sequence {sequence!r} unavailable")  # pragma: no cover
