"""Security: SQL only from registry identifiers and bound values; credentials never leak; the
pipeline runs with a source role that can only SELECT and a warehouse role limited to the load."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jinja2
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from devtools.s3 import client as s3_client
from devtools.totesys.generator import GeneratorSettings, generate
from devtools.totesys.simulator import ChangePlan, simulate
from include.alerts import quarantine_notifier
from include.ddl import ensure_warehouse_schema
from include.derive import processed_schema
from include.load import load_batches
from include.registry import SOURCE_TABLES, TEXT, WAREHOUSE, WAREHOUSE_TABLES, Column, check_registry
from tests.expected import assert_warehouse_equals

HOSTILE_SCHEMA = 'evil"; DROP TABLE public.sentinel; --'


def test_hostile_schema_names_are_only_ever_identifiers(new_database):
    with psycopg.connect(new_database("wh"), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.sentinel (x int)")
        ensure_warehouse_schema(conn, HOSTILE_SCHEMA)
        row = {"location_id": 1, "address_line_1": "'); DROP TABLE public.sentinel; --", "address_line_2": None, "district": None,
               "city": "{{ conn.warehouse_db.password }}", "postal_code": "p", "country": "c", "phone": "1",
               "_version": [datetime(2024, 1, 1)]}  # fmt: skip
        data = pa.Table.from_pylist([row], schema=processed_schema(WAREHOUSE["dim_location"]))
        load_batches(conn, HOSTILE_SCHEMA, WAREHOUSE["dim_location"], data.to_batches(), run_id="r'; --", manifest_key="k")
        assert conn.execute("SELECT to_regclass('public.sentinel') IS NOT NULL").fetchone()[0]
        stored = conn.execute(
            sql.SQL("SELECT address_line_1, city FROM {}").format(sql.Identifier(HOSTILE_SCHEMA, "dim_location"))
        ).fetchone()
        assert stored == (row["address_line_1"], row["city"])


def test_the_registry_refuses_names_that_are_not_plain_identifiers():
    evil = dataclasses.replace(SOURCE_TABLES[0], name="staff; DROP TABLE x")
    with pytest.raises(ValueError, match="not a plain"):
        check_registry((evil, *SOURCE_TABLES[1:]), WAREHOUSE_TABLES)
    evil_column = dataclasses.replace(SOURCE_TABLES[0], columns=(*SOURCE_TABLES[0].columns, Column('a"b', TEXT)))
    with pytest.raises(ValueError, match="not a plain"):
        check_registry((evil_column, *SOURCE_TABLES[1:]), WAREHOUSE_TABLES)


def test_data_in_an_alert_mail_is_never_template_syntax():
    notifier = quarantine_notifier([("fact_sales_order", "transform", 1, "bad: {{ conn.totesys_db.password }} {% raw %}", "k")])
    # Airflow renders the body as a template, like this: the data must come out as plain text.
    template = jinja2.Environment(autoescape=True).from_string(notifier.html_content)
    rendered = template.render(dag={"dag_id": "d"}, run_id="r", ti={})
    assert "conn.totesys_db.password" in rendered  # shown as text...
    assert "{{" not in rendered  # ...never evaluated


# ------------------------------------------------------------------------------------------
# Least-privilege roles with passwords, and a search for those passwords everywhere
# ------------------------------------------------------------------------------------------

SECRET_PREFIX = "Sup3r-S3cret-"


@pytest.fixture
def roles(pg_admin_url):
    """A SELECT-only totesys role and a load-only warehouse role, with passwords. On the
    harness's own cluster they must authenticate with SCRAM (pg_hba); an existing server given
    by TOTES_TEST_PG_URL keeps its own rules."""
    suffix = uuid.uuid4().hex[:8]
    made = {
        "reader": (f"totes_reader_{suffix}", SECRET_PREFIX + uuid.uuid4().hex),
        "loader": (f"totes_loader_{suffix}", SECRET_PREFIX + uuid.uuid4().hex),
    }
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        for name, password in made.values():
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
        own_cluster = not os.environ.get("TOTES_TEST_PG_URL") and hba.exists()
        original = hba.read_text() if own_cluster else None
        if own_cluster:
            lines = "".join(f"host all {name} 127.0.0.1/32 scram-sha-256\n" for name, _ in made.values())
            hba.write_text(lines + original)
            admin.execute("SELECT pg_reload_conf()")
    try:
        yield made
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            if original is not None:
                hba.write_text(original)
                admin.execute("SELECT pg_reload_conf()")
            for name, _ in made.values():
                for (db,) in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'totes_test_%'").fetchall():
                    with psycopg.connect(urlunsplit(urlsplit(pg_admin_url)._replace(path="/" + db)), autocommit=True) as c:
                        c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def as_role(url: str, name: str, password: str) -> str:
    u = urlsplit(url)
    return urlunsplit(u._replace(netloc=f"{name}:{password}@{u.hostname}:{u.port}"))


def grant_reader(admin_url: str, role: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(urlsplit(admin_url).path[1:]), sql.Identifier(role)
            )
        )
        c.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        c.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))


def grant_loader(admin_url: str, role: str, schema: str) -> None:
    """What the load needs and nothing more: the schema exists already (created by its owner)."""
    with psycopg.connect(admin_url, autocommit=True) as c:
        ensure_warehouse_schema(c, schema)
        db, r, s = sql.Identifier(urlsplit(admin_url).path[1:]), sql.Identifier(role), sql.Identifier(schema)
        c.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        c.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, r))
        c.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r))
        c.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {} TO {}").format(s, r))
        # a rerun replaces its run's figures, and the retention deletes old ones (include.figures)
        for name in ("etl_stage_figures", "etl_check_result"):
            c.execute(sql.SQL("GRANT DELETE ON {} TO {}").format(sql.Identifier(schema, name), r))
        c.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, r))


@pytest.mark.e2e
@pytest.mark.slow
def test_least_privilege_roles_and_no_credential_anywhere(
    pipeline, roles, new_database, s3_endpoint, smtp_server, airflow_db, capfd, monkeypatch
):
    admin_src, admin_wh = new_database("totesys"), new_database("warehouse")
    with psycopg.connect(admin_src) as conn:
        generate(conn, GeneratorSettings(seed=41, scale=0.03))
    (reader, reader_pw), (loader, loader_pw) = roles["reader"], roles["loader"]
    grant_reader(admin_src, reader)
    grant_loader(admin_wh, loader, "project_team_3")
    aws_secret = SECRET_PREFIX + "aws-" + uuid.uuid4().hex
    p = pipeline(
        schema="project_team_3",
        totesys_url=as_role(admin_src, reader, reader_pw),
        warehouse_url=as_role(admin_wh, loader, loader_pw),
    )
    aws = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws | {"password": aws_secret}))

    # the roles really are limited
    with psycopg.connect(as_role(admin_src, reader, reader_pw)) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("UPDATE staff SET first_name = 'x'")
    with psycopg.connect(as_role(admin_wh, loader, loader_pw)) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("CREATE TABLE project_team_3.intruder (x int)")
    with psycopg.connect(as_role(admin_wh, loader, loader_pw)) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("DELETE FROM project_team_3.fact_payment")
    if not os.environ.get("TOTES_TEST_PG_URL"):  # SCRAM is enforced on the harness's own cluster
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(as_role(admin_src, reader, "wrong")).close()

    # the pipeline runs as them, end to end, and gets it right
    p.run("2024-11-15T15:00:00")
    first = p.snapshot()
    assert_warehouse_equals(first, p.expected())
    with psycopg.connect(admin_src) as conn:
        simulate(conn, at=datetime(2024, 11, 15, 15, 5), seed=8, plan=ChangePlan())
    p.run("2024-11-15T15:15:00")
    assert_warehouse_equals(p.snapshot(), p.expected(facts_before=first))
    # and a failing run (the warehouse password is wrong) mails without the password
    wrong_pw = loader_pw[:-4] + "oops"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", os.environ["AIRFLOW_CONN_WAREHOUSE_DB"].replace(loader_pw, wrong_pw))
    p.run("2024-11-15T15:30:00", expect="failed" if not os.environ.get("TOTES_TEST_PG_URL") else "success")

    # now look for the secrets everywhere they could have gone
    secrets = [reader_pw, loader_pw, aws_secret, wrong_pw]
    haystacks: dict[str, bytes] = {}
    out, err = capfd.readouterr()
    haystacks["task output"] = (out + err).encode()
    for path in Path(airflow_db).rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".txt"):
            haystacks[str(path)] = path.read_bytes()
    s3 = s3_client(s3_endpoint)
    for bucket in (p.ingestion, p.processed):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                haystacks[f"s3://{bucket}/{obj['Key']}"] = gzip.decompress(body) if obj["Key"].endswith(".gz") else body
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for x in session.query(XComModel).filter(XComModel.dag_id == "totes_etl").all():
            haystacks[f"xcom {x.task_id}"] = json.dumps(x.value, default=str).encode()
    for i, mail in enumerate(smtp_server.sink.messages):
        haystacks[f"mail {i}"] = mail.as_bytes()
    assert any(k.startswith("xcom") for k in haystacks)
    assert any(k.startswith("s3://") for k in haystacks)
    for where, data in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in data, f"a credential leaked into {where}"


def test_a_loader_that_may_not_create_triggers_keeps_loading_and_says_so(roles, new_database, caplog):
    """A warehouse made by an older version has no triggers, and the least-privilege loader may
    not create them: ensure_warehouse_schema warns and goes on (check.reconcile then fails
    naming the triggers not in force), and the loader's writes still go through."""
    admin_wh = new_database("warehouse")
    loader, loader_pw = roles["loader"]
    grant_loader(admin_wh, loader, "public")
    with psycopg.connect(admin_wh, autocommit=True) as c:
        c.execute("DROP TRIGGER etl_outside_insert ON dim_design")
    with psycopg.connect(as_role(admin_wh, loader, loader_pw), autocommit=True) as c:
        assert ensure_warehouse_schema(c, "public") == []
        c.execute("INSERT INTO dim_design VALUES (1, 'Wooden', '/designs', 'wooden.json')")
        triggers = c.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'dim_design'::regclass AND NOT tgisinternal ORDER BY 1"
        ).fetchall()
    assert ("etl_outside_insert",) not in triggers
    assert len(triggers) == 3
    assert "could not be created" in caplog.text
    assert "permission denied for table dim_design" in caplog.text
