"""Apply ``sql/readonly_role.sql`` (written for psql) through psycopg.

The file uses psql variables: ``:"role"``, ``:"schema"`` and psql's own ``:"DBNAME"`` (the
database connected to). Here each becomes a quoted identifier composed with psycopg's sql module,
so the file stays the one definition of the role's rights, for DBAs (psql) and for tests alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql

SQL_FILE = Path(__file__).with_name("sql") / "readonly_role.sql"
_VARIABLE = re.compile(r':"(\w+)"')


def render(role: str, schema: str, dbname: str, text: str | None = None) -> sql.Composed:
    """The file's statements with its psql variables bound (comments dropped)."""
    text = SQL_FILE.read_text() if text is None else text
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    values = {"role": role, "schema": schema, "DBNAME": dbname}
    parts: list[sql.Composable] = []
    position = 0
    for match in _VARIABLE.finditer(body):
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{SQL_FILE.name} uses an unknown variable {name!r}")
        parts += [sql.SQL(body[position : match.start()]), sql.Identifier(values[name])]
        position = match.end()
    parts.append(sql.SQL(body[position:]))
    return sql.Composed(parts)


def apply(conn: psycopg.Connection, role: str, schema: str) -> None:
    """Grant ``role`` read-only access to the payments tables in ``schema`` (the role must exist)."""
    dbname = conn.execute("SELECT current_database()").fetchone()[0]
    with conn.transaction():
        conn.execute(render(role, schema, dbname))
