"""docs/architecture.md and docs/runbook.md against the code they describe.

* The three star schemas in architecture.md are exactly what scripts/schema_diagram.py generates
  from include/registry.py, and say what PostgreSQL really has once include.ddl created the
  warehouse (columns in order, types, NULL, primary, foreign and unique keys).
* The column-lineage flowcharts are exactly what scripts/lineage_diagram.py generates, and
  every warehouse column traced back through their arrows reaches exactly the source columns
  the registry declares.
* The system picture names every task group of the real DAG with its number of tasks; the key
  layout of the buckets is the one include.lake and include.state write.
* Every `airflow` command of runbook.md is accepted by Airflow's own CLI parser, every SQL query
  of it runs against a real warehouse (and totesys) schema, and every alert the project can raise
  has its entry.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.registry import SOURCE_TABLES, WAREHOUSE, WAREHOUSE_TABLES
from scripts import lineage_diagram, schema_diagram
from tests.conftest import ROOT
from tests.expected import registry_inputs

ARCHITECTURE = ROOT / "docs" / "architecture.md"
RUNBOOK = ROOT / "docs" / "runbook.md"


def fenced(text: str, language: str) -> list[str]:
    """The contents of the fenced blocks whose info string is ``language`` ("" for plain ones)."""
    blocks: list[str] = []
    current: list[str] | None = None
    info = ""
    for line in text.splitlines():
        stripped = line.strip()
        if current is None:
            if stripped.startswith("```"):
                current, info = [], stripped[3:].strip()
        elif stripped == "```":
            if info == language:
                blocks.append(textwrap.dedent("\n".join(current)) + "\n")
            current = None
        else:
            current.append(line)
    assert current is None, "a fenced block is not closed"
    return blocks


# ------------------------------------------------------------------------------------------
# mermaid erDiagram, read back
# ------------------------------------------------------------------------------------------

_ENTITY = re.compile(r"^    (\w+) \{$")
_ATTRIBUTE = re.compile(
    r'^        (?P<type>[A-Za-z][\w()\[\]-]*) (?P<name>\w+)(?: (?P<keys>(?:PK|FK|UK)(?:, (?:PK|FK|UK))*))?(?: "(?P<note>[^"]*)")?$'
)
_RELATION = re.compile(r'^    (?P<one>\w+) \|\|--o\{ (?P<many>\w+) : "(?P<label>\w+)"$')


def parse_er(block: str) -> tuple[dict[str, list[dict]], list[tuple[str, str, str]]]:
    """(entities: name -> attributes, relationships: (dimension, fact, column)); fails on any
    line mermaid's erDiagram grammar (as used here) would not accept."""
    lines = block.rstrip("\n").splitlines()
    assert lines[0] == "erDiagram"
    entities: dict[str, list[dict]] = {}
    relations: list[tuple[str, str, str]] = []
    current: str | None = None
    for line in lines[1:]:
        if current is not None:
            if line == "    }":
                current = None
                continue
            m = _ATTRIBUTE.match(line)
            assert m, f"not an attribute line: {line!r}"
            keys = set(m["keys"].split(", ")) if m["keys"] else set()
            notes = m["note"].split(", ") if m["note"] else []
            entities[current].append({"type": m["type"], "name": m["name"], "keys": keys, "notes": notes})
        elif m := _ENTITY.match(line):
            current = m.group(1)
            assert current not in entities, f"{current} drawn twice"
            entities[current] = []
        elif m := _RELATION.match(line):
            relations.append((m["one"], m["many"], m["label"]))
        else:
            raise AssertionError(f"not an erDiagram line: {line!r}")
    assert current is None, "an entity is not closed"
    return entities, relations


def stars_in(text: str) -> dict[str, tuple[dict[str, list[dict]], list[tuple[str, str, str]]]]:
    """The star diagrams of a document, keyed by their fact table."""
    out = {}
    for block in fenced(text, "mermaid"):
        if block.startswith("erDiagram"):
            entities, relations = parse_er(block)
            facts = [n for n in entities if WAREHOUSE[n].kind == "fact"]
            assert len(facts) == 1, facts
            out[facts[0]] = (entities, relations)
    return out


# ------------------------------------------------------------------------------------------
# architecture.md: the star schemas
# ------------------------------------------------------------------------------------------


def assert_up_to_date(script: str) -> None:
    """``python <script> --check`` says docs/architecture.md holds what it generates."""
    done = subprocess.run([sys.executable, script, "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_architecture_md_holds_exactly_the_generated_star_schemas():
    text = ARCHITECTURE.read_text()
    assert schema_diagram.generated_part(text) == schema_diagram.render()
    assert text.count(schema_diagram.BEGIN) == 1
    assert text.count(schema_diagram.END) == 1
    # The command the document names says the same.
    assert_up_to_date("scripts/schema_diagram.py")
    # One star per fact, titled as the spec names them, in this order.
    titles = re.findall(r"^### (\w+): `(\w+)`$", schema_diagram.generated_part(text), flags=re.MULTILINE)
    assert titles == [("Sales", "fact_sales_order"), ("Purchases", "fact_purchase_orders"), ("Payments", "fact_payment")]
    assert set(stars_in(text)) == {t.name for t in WAREHOUSE_TABLES if t.kind == "fact"}


def test_architecture_md_holds_the_generated_lineage_and_it_traces_every_column_to_its_sources():
    text = ARCHITECTURE.read_text()
    part = schema_diagram.generated_part(text, lineage_diagram.BEGIN, lineage_diagram.END)
    assert part == lineage_diagram.render()
    assert_up_to_date("scripts/lineage_diagram.py")
    charts = [b for b in fenced(part, "mermaid") if b.startswith("flowchart")]
    assert len(charts) == len(WAREHOUSE_TABLES)
    arrows: dict[str, set[str]] = {}  # node -> the nodes with an arrow into it
    for chart in charts:
        for source, target in re.findall(r"^\s*(\w+) (?:-- \"[^\"]*\" )?--> (\w+)$", chart, flags=re.MULTILINE):
            arrows.setdefault(target, set()).add(source)

    def trace(node: str) -> set[tuple[str, str]]:
        if node.startswith("src_"):
            table, column = node.removeprefix("src_").split("__")
            return {(table, column)}
        return set().union(*(trace(n) for n in arrows.get(node, ())))

    for t in WAREHOUSE_TABLES:
        for c in t.columns:
            assert trace(f"{t.name}__{c.name}") == registry_inputs(t, c), f"{t.name}.{c.name}"


def test_the_check_fails_when_the_document_drifts_and_write_repairs_it(tmp_path, monkeypatch):
    doc = tmp_path / "architecture.md"
    original = ARCHITECTURE.read_text()
    drifted = original.replace("        integer units_sold\n", "", 1)
    assert drifted != original
    doc.write_text(drifted)
    monkeypatch.setattr(schema_diagram, "DOC", doc)
    monkeypatch.setattr(schema_diagram, "ROOT", tmp_path)
    assert schema_diagram.main(["--check"]) == 1
    assert schema_diagram.main(["--write"]) == 0
    assert schema_diagram.main(["--check"]) == 0
    assert doc.read_text() == original  # only the generated part changed, back to the truth
    doc.write_text(original.replace(schema_diagram.END, ""))
    with pytest.raises(ValueError, match="no generated part"):
        schema_diagram.main(["--check"])


def test_the_star_diagrams_say_what_postgresql_has(new_database):
    """Every entity of every star against information_schema of a warehouse include.ddl built."""
    import psycopg

    from include.ddl import ensure_warehouse_schema

    url = new_database("docs_stars")
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_warehouse_schema(conn, "public")
        columns: dict[str, list[tuple]] = {}
        for table, name, data_type, precision, scale, nullable, default in conn.execute(
            "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            columns.setdefault(table, []).append((name, data_type, precision, scale, nullable == "YES", default))
        constraints: dict[tuple[str, str], set[str]] = {}
        references: dict[tuple[str, str], str] = {}
        for table, column, kind, target in conn.execute(
            "SELECT tc.table_name, kcu.column_name, tc.constraint_type, ccu.table_name "
            "FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name) "
            "JOIN information_schema.constraint_column_usage ccu USING (constraint_schema, constraint_name) "
            "WHERE tc.table_schema = 'public'"
        ):
            constraints.setdefault((table, column), set()).add({"PRIMARY KEY": "PK", "FOREIGN KEY": "FK", "UNIQUE": "UK"}[kind])
            if kind == "FOREIGN KEY":
                references[(table, column)] = target

    sql_type = {"varchar": "character varying", "time": "time without time zone", "serial": "integer"}
    stars = stars_in(ARCHITECTURE.read_text())
    drawn = set()
    for fact, (entities, relations) in stars.items():
        for table, attributes in entities.items():
            drawn.add(table)
            real = columns[table]
            assert [a["name"] for a in attributes] == [c[0] for c in real], table
            for a, (name, data_type, precision, scale, nullable, default) in zip(attributes, real, strict=True):
                where = f"{table}.{name}"
                assert sql_type.get(a["type"], a["type"]) == data_type, where
                assert (a["type"] == "serial") == bool(default and default.startswith("nextval(")), where
                if data_type == "numeric":
                    assert f"numeric({precision},{scale})" in a["notes"], where
                assert ("nullable" in a["notes"]) == nullable, where
                assert a["keys"] == constraints.get((table, name), set()), where
        # One relationship per foreign key of the fact, to the table it references.
        fks = {(references[(fact, c)], fact, c) for (t, c) in references if t == fact}
        assert Counter(relations) == Counter(fks), fact
    # Every table of the star schemas is in some picture; nothing else is.
    assert drawn == {t.name for t in WAREHOUSE_TABLES}


def test_the_payments_star_holds_what_the_payments_api_reads():
    entities, _ = stars_in(ARCHITECTURE.read_text())["fact_payment"]
    grant = (ROOT / "payments_api" / "sql" / "readonly_role.sql").read_text()
    granted = set(re.findall(r':"schema"\.(\w+)', re.search(r"^GRANT SELECT ON TABLE (.+) TO", grant, re.MULTILINE).group(1)))
    assert granted == {"fact_payment", "dim_currency", "dim_counterparty"}
    assert granted <= set(entities)


# ------------------------------------------------------------------------------------------
# architecture.md: the system, the DAG, the buckets
# ------------------------------------------------------------------------------------------


def test_every_mermaid_block_is_well_formed():
    for path in (ARCHITECTURE, RUNBOOK):
        for block in fenced(path.read_text(), "mermaid"):
            kind = block.split("\n", 1)[0]
            assert kind in ("erDiagram", "flowchart LR", "flowchart TB"), kind
            if kind.startswith("flowchart"):
                lines = [ln.strip() for ln in block.splitlines()]
                assert sum(ln.startswith("subgraph ") for ln in lines) == lines.count("end"), path.name
                for ln in lines:
                    assert ln.count('"') % 2 == 0, f"unbalanced quotes: {ln}"
                    assert "<" not in re.sub(r"<br/>", "", ln), f"raw < (write &lt;): {ln}"


def test_the_system_picture_names_every_task_group_of_the_dag(totes_dag):
    text = ARCHITECTURE.read_text()
    groups = Counter(t.task_id.split(".", 1)[0] for t in totes_dag.tasks if "." in t.task_id)
    assert set(groups) == {"ingest", "transform", "load", "check"}
    system = fenced(text, "mermaid")[0]
    for group, tasks in groups.items():
        assert f'["{group}: {tasks} tasks"]' in system, f"the system picture does not show {group} ({tasks} tasks)"
    for task in totes_dag.tasks:
        if "." not in task.task_id:
            assert task.task_id in system, task.task_id
    # The task-group picture lists every table by name.
    groups_picture = fenced(text, "mermaid")[1]
    for table in (*SOURCE_TABLES, *WAREHOUSE_TABLES):
        assert re.search(rf"\b{table.name}\b", groups_picture), table.name
    assert f"the {sum(not t.is_fact for t in WAREHOUSE_TABLES)} dimensions" in groups_picture
    assert f"the {sum(t.is_fact for t in WAREHOUSE_TABLES)} facts" in groups_picture


def test_the_bucket_key_layout_is_the_one_the_code_writes():
    from include import lake, state

    text = ARCHITECTURE.read_text()
    layout = "\n".join(b for b in fenced(text, "") if "date=<YYYY-MM-DD>" in b)
    end = datetime(2024, 11, 15, 15, 0, tzinfo=UTC)
    run_id = "scheduled__2024-11-15T15:00:00+00:00"
    prefix = lake.run_prefix("address", end, run_id)
    assert prefix == "address/date=2024-11-15/run=scheduled__2024-11-15T15-00-00-00-00/"
    assert "`scheduled__2024-11-15T15-00-00-00-00`" in text
    generic = "<source table>/date=<YYYY-MM-DD>/run=<run id>/"
    assert f"{generic}{lake.part_key('', 0)}" in layout
    assert f"{generic}{lake.manifest_key('')}" in layout
    assert lake.quarantine_prefix("address", end, run_id) == lake.QUARANTINE + prefix
    assert f"{lake.QUARANTINE}{generic}rows.csv.gz" in layout
    assert f"{state.STATE_PREFIX}<source table>.parquet" in layout
    # The names of the quarantined objects are those the stages write.
    stages = "\n".join(p.read_text() for p in (ROOT / "include").rglob("*.py"))
    for name in ("rows.csv.gz", "reason.json", "transform-rejects.parquet", "transform-rejects.json", "load-rejects.jsonl"):
        assert name in layout, name
        assert f'{name}"' in stages, f"no stage writes {name}"


# ------------------------------------------------------------------------------------------
# runbook.md
# ------------------------------------------------------------------------------------------

_PREFIXES = (
    r"\.venv/bin/python -m devtools\.stack airflow ",
    r"python -m devtools\.stack airflow ",
    r"docker compose --profile debug run --rm airflow-cli airflow ",
    r"airflow ",
)


def airflow_commands(text: str) -> list[list[str]]:
    """The arguments of every `airflow ...` command of the runbook's bash blocks and code spans."""
    candidates = []
    for block in fenced(text, "bash"):
        candidates += re.sub(r"\\\n\s*", " ", block).splitlines()
    candidates += re.findall(r"`([^`\n]*airflow [^`\n]*)`", text)
    commands = []
    for line in candidates:
        line = line.split(" #", 1)[0].strip()
        for prefix in _PREFIXES:
            m = re.match(rf"^(?:{prefix})(.*)$", line)
            if m:
                if m.group(1) != "...":  # "every `airflow ...` below": a placeholder, not a command
                    commands.append(shlex.split(m.group(1)))
                break
    return commands


def test_every_airflow_command_of_the_runbook_parses_with_airflows_cli():
    from airflow.cli.cli_parser import get_parser

    from include.config import DAG_ID
    from include.registry import FILE_FEEDS

    dag_ids = {DAG_ID, *(f.dag_id for f in FILE_FEEDS)}  # the DAGs the runbook may name
    commands = airflow_commands(RUNBOOK.read_text())
    parser = get_parser()
    for args in commands:
        try:
            parsed = parser.parse_args(args)
        except SystemExit as exc:  # argparse's way of saying no
            raise AssertionError(f"airflow {shlex.join(args)} is not a valid command") from exc
        if getattr(parsed, "dag_id", None):
            assert parsed.dag_id in dag_ids, args
    joined = [" ".join(a) for a in commands]
    # The ones the runbook promises.
    assert 'dags trigger totes_etl --conf {"full_refresh": true}' in joined
    backfills = [a for a in commands if a[:2] == ["backfill", "create"]]
    assert backfills
    for args in backfills:
        assert args[args.index("--max-active-runs") + 1] == "1"
        assert {"--dag-id", "--from-date", "--to-date"} <= set(args)
    text = RUNBOOK.read_text()
    assert ".venv/bin/python -m devtools.stack airflow backfill create --dag-id totes_etl" in text
    assert "aws mwaa create-cli-token" in text
    assert "aws mwaa invoke-rest-api" in text


def test_the_runbook_parser_rejects_a_wrong_command():
    """The check above can fail: a misspelt option is refused by Airflow's parser."""
    from airflow.cli.cli_parser import get_parser

    wrong = airflow_commands("```bash\nairflow backfill create --dag totes_etl --from 2024-11-14\n```\n")
    assert wrong == [["backfill", "create", "--dag", "totes_etl", "--from", "2024-11-14"]]
    with pytest.raises(SystemExit):
        get_parser().parse_args(wrong[0])


def test_every_sql_query_of_the_runbook_runs_on_real_schemas(new_database):
    """Each ```sql block runs (on empty tables) in a database holding totesys and the warehouse;
    one that writes (accepting writes outside the pipeline) runs in a transaction rolled back."""
    import psycopg

    from devtools.totesys.schema import create_totesys_schema
    from include.ddl import ensure_warehouse_schema

    queries = fenced(RUNBOOK.read_text(), "sql")
    assert len(queries) >= 6
    url = new_database("runbook_sql")
    with psycopg.connect(url, autocommit=True) as conn:
        create_totesys_schema(conn)
        ensure_warehouse_schema(conn, "public")
        for query in queries:
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(query)
            except psycopg.Error as exc:
                raise AssertionError(f"runbook query fails: {exc}\n{query}") from exc
    readme_query = "SELECT table_name, stage, reason, count(*) FROM etl_quarantine WHERE resolved_at IS NULL GROUP BY 1, 2, 3;"
    assert readme_query in queries[0] or readme_query + "\n" == queries[0]


def test_the_runbook_has_an_entry_for_every_alert():
    text = RUNBOOK.read_text()
    alerts = text.split("## What to do on each alert", 1)[1].split("\n## ", 1)[0]
    for check in ("check.reconcile", "check.freshness", "check.quarantine", "ingest.<table>"):
        assert f"`{check}`" in alerts, check
    # Every CloudWatch alarm the Terraform layers define, by its name (<env> = <project>-<environment>).
    names = []
    for path in sorted((ROOT / "terraform").rglob("*.tf")):
        names += re.findall(r'^  alarm_name += "\$\{local\.name\}([^"]+)"$', path.read_text(), flags=re.MULTILINE)
    assert len(names) >= 3
    for suffix in names:
        assert f"`<env>{suffix}`" in alerts, f"no entry for the alarm <env>{suffix}"
    # Each cause of the README's "When things go wrong" has a row.
    for cause in ("half-way", "unreachable", "schema drift", "reconcile", "freshness", "quarantine", "join state", "lake"):
        assert cause in alerts, cause


def test_the_runbook_rotation_names_the_settings_that_exist():
    text = RUNBOOK.read_text()
    rotation = text.split("## Rotate credentials", 1)[1].split("\n## ", 1)[0]
    deploy = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    # The GitHub settings the runbook tells people to change are the ones the deploy reads.
    for name in ("TOTESYS_DB", "WAREHOUSE_DB", "SMTP", "PAYMENTS_API_WAREHOUSE_DB"):
        assert f"`{name}`" in rotation, name
        assert f"secrets.{name} " in deploy + " ", name
    for name in ("CONNECTION_SECRETS_VERSION", "PAYMENTS_API_SECRET_VERSION"):
        assert f"`{name}`" in rotation, name
        assert f"vars.{name}" in deploy, name
    assert "TF_VAR_connection_secrets_version: ${{ vars.CONNECTION_SECRETS_VERSION" in deploy
    # The secret ids are those of terraform/stateful; the compose variables those of .env.example.
    assert 'connections_prefix = "airflow/connections"' in (ROOT / "terraform" / "stateful" / "secrets.tf").read_text()
    assert "airflow/connections/warehouse_db" in rotation
    env_example = (ROOT / ".env.example").read_text()
    for name in ("WAREHOUSE_DB_PASSWORD", "TOTESYS_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "PAYMENTS_API_DB_PASSWORD"):
        assert f"`{name}`" in rotation or f"{name}=" in rotation, name
        assert re.search(rf"^{name}=", env_example, flags=re.MULTILINE), name
    assert "TOTES_PG_URL" in rotation
    assert "ALTER ROLE" in rotation


def test_the_docs_link_to_each_other(tmp_path):
    for path in (ARCHITECTURE, RUNBOOK):
        for target in re.findall(r"\]\(([\w./-]+\.md)\)", path.read_text()):
            assert (path.parent / target).is_file(), f"{path.name} links to missing {target}"
    assert Path(schema_diagram.__file__).resolve() == ROOT / "scripts" / "schema_diagram.py"


def test_the_readme_says_exactly_what_a_drifted_source_holds_back():
    """README, "The DAG": the table of what each drifted source holds back is registry.waits_for."""
    import re

    from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES, waits_for

    text = (ROOT / "README.md").read_text()
    section = text[text.index("| drifted source | held back in that run |") :]
    said = {}
    for line in section[: section.index("\n\n")].splitlines()[2:]:
        source, held = (cell.strip() for cell in line.strip("|").split("|"))
        said[source.strip("`")] = re.findall(r"`(\w+)`", held)
    assert said == {s.name: [w.name for w in WAREHOUSE_TABLES if s.name in waits_for(w)] for s in SOURCE_TABLES}


def test_scaling_md_holds_exactly_the_fit_of_the_committed_benchmark():
    import json

    from bench.scaling import RESULTS, fit, tables

    text = (ROOT / "docs" / "scaling.md").read_text()
    generated = text.split("<!-- bench.scaling: begin -->\n", 1)[1].split("<!-- bench.scaling: end -->", 1)[0]
    assert generated == tables(json.loads(RESULTS.read_text()))
    # the fit itself: exact on a line, flat for a falling series, residuals reported
    line = fit([(0, 2.0), (1e6, 5.0), (2e6, 8.0)])
    assert (round(line.fixed, 9), round(line.per_million, 9), round(line.worst, 9)) == (2.0, 3.0, 0.0)
    flat = fit([(0, 6.0), (1e6, 5.0)])
    assert (flat.per_million, flat.fixed, flat.worst) == (0.0, 5.5, 0.5)
