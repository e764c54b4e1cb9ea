"""terraform/, checked statically where checkov does not look: the project's own contract.

(No terraform binary here: `terraform fmt -check` and `validate` run in GitHub Actions, and
checkov runs from .venv-tools. These tests read the canonically formatted files line by line:
every top-level block starts at column 0 and ends with a "}" line at column 0.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from include.config import AWS_CONN_ID, SMTP_CONN_ID, SOURCE_CONN_ID, VARIABLES, WAREHOUSE_CONN_ID
from tests.conftest import ROOT

TERRAFORM = ROOT / "terraform"
LAYERS = ("stateful", "mwaa")
BLOCK_START = re.compile(r'^(?P<kind>[a-z_]+)(?P<labels>(?: "[^"]*")*) \{$')


def blocks(layer: str) -> list[tuple[str, tuple[str, ...], str, Path]]:
    """(kind, labels, body, file) of every top-level block of a layer."""
    out = []
    for path in sorted((TERRAFORM / layer).glob("*.tf")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = BLOCK_START.match(lines[i])
            if m:
                end = next(j for j in range(i + 1, len(lines)) if lines[j] == "}")
                labels = tuple(re.findall(r'"([^"]*)"', m["labels"]))
                out.append((m["kind"], labels, "\n".join(lines[i + 1 : end]), path))
                i = end
            i += 1
    return out


def block(layer: str, kind: str, *labels: str) -> str:
    found = [b for k, ls, b, _ in blocks(layer) if k == kind and ls == labels]
    assert len(found) == 1, f"{layer}: {kind} {labels} found {len(found)} times"
    return found[0]


def locals_with(layer: str, name: str) -> str:
    """The locals block of ``layer`` that defines ``name``."""
    found = [b for k, _, b, _ in blocks(layer) if k == "locals" and re.search(rf"^  {name} +=", b, flags=re.MULTILINE)]
    assert len(found) == 1, f"{layer}: local {name} defined {len(found)} times"
    return found[0]


def _pin(path: Path, package: str) -> str:
    m = re.search(rf"^{re.escape(package)}==(\S+)$", path.read_text(), flags=re.MULTILINE)
    assert m, f"{package} not pinned in {path.name}"
    return m.group(1)


@pytest.mark.parametrize("layer", LAYERS)
def test_the_layer_parses_into_blocks(layer):
    kinds = {k for k, *_ in blocks(layer)}
    assert {"terraform", "provider", "variable", "output", "resource"} <= kinds


@pytest.mark.parametrize("layer", LAYERS)
def test_every_variable_has_a_description_and_a_type(layer):
    variables = [(ls[0], body) for k, ls, body, _ in blocks(layer) if k == "variable"]
    assert variables
    for name, body in variables:
        assert re.search(r'^  description = "[^"]{10,}"$', body, flags=re.MULTILINE), (
            f"{layer}: variable {name} has no description"
        )
        assert re.search(r"^  type +=", body, flags=re.MULTILINE), f"{layer}: variable {name} has no type"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_output_has_a_description(layer):
    outputs = [(ls[0], body) for k, ls, body, _ in blocks(layer) if k == "output"]
    assert outputs
    for name, body in outputs:
        assert re.search(r'^  description = "[^"]{10,}"$', body, flags=re.MULTILINE), f"{layer}: output {name} has no description"


@pytest.mark.parametrize("layer", LAYERS)
def test_remote_state_is_a_partial_s3_backend_with_locking(layer):
    body = block(layer, "terraform")
    backend = re.search(r'backend "s3" \{\n(.*?)\n  \}', body, flags=re.DOTALL)
    assert backend, f"{layer}: no s3 backend"
    settings = dict(re.findall(r"^\s+(\w+)\s+= (.+)$", backend.group(1), flags=re.MULTILINE))
    assert settings.get("use_lockfile") == "true" or "dynamodb_table" in settings
    assert settings.get("encrypt") == "true"
    for account_specific in ("bucket", "key", "region", "role_arn", "profile"):
        assert account_specific not in settings, f"{layer}: backend hard-codes {account_specific}"
    assert (TERRAFORM / layer / "backend.hcl.example").is_file()
    assert re.search(r'version += "~> \d+\.\d+"', body), f"{layer}: the aws provider is not pinned"


def test_nothing_account_specific_is_hard_coded():
    for path in TERRAFORM.rglob("*.tf"):
        text = path.read_text()
        assert not re.search(r"(?<![\d.])\d{12}(?![\d.])", text), f"{path}: an account id?"
        assert "arn:aws:" not in text, f"{path}: ARNs are built with the partition and account of the caller"


def test_the_mwaa_airflow_version_is_the_one_of_requirements_and_constraints():
    version = re.search(r'^  airflow_version = "([^"]+)"$', locals_with("mwaa", "airflow_version"), flags=re.MULTILINE)
    assert version, "terraform/mwaa pins no airflow_version"
    assert version.group(1) == _pin(ROOT / "constraints.txt", "apache-airflow")
    assert f"Airflow {version.group(1)}" in (ROOT / "requirements.txt").read_text()
    env = block("mwaa", "resource", "aws_mwaa_environment", "this")
    assert re.search(r"^  airflow_version += local\.airflow_version$", env, flags=re.MULTILINE)
    # requirements.txt is what the environment installs, at the uploaded object's version.
    assert "requirements_s3_object_version = aws_s3_object.requirements.version_id" in env
    assert 'requirements_file = "${path.module}/../../requirements.txt"' in (TERRAFORM / "mwaa" / "bucket.tf").read_text()


def test_the_secrets_backend_is_the_amazon_providers_secrets_manager_backend():
    env = block("mwaa", "resource", "aws_mwaa_environment", "this")
    m = re.search(r'"secrets\.backend" += "([\w.]+)"', env)
    assert m
    assert m.group(1) == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    module, _, cls = m.group(1).rpartition(".")
    assert hasattr(__import__(module, fromlist=[cls]), cls), "the installed amazon provider has no such class"
    assert '"secrets.backend_kwargs" = jsonencode(local.secrets_backend_kwargs)' in env
    kwargs = locals_with("mwaa", "secrets_backend_kwargs")
    for key in ("connections_prefix", "variables_prefix", "connections_lookup_pattern", "variables_lookup_pattern"):
        assert re.search(rf"^    {key} +=", kwargs, flags=re.MULTILINE), key
    secrets = (TERRAFORM / "stateful" / "secrets.tf").read_text()
    assert 'connections_prefix = "airflow/connections"' in secrets
    assert 'variables_prefix   = "airflow/variables"' in secrets


def test_every_airflow_component_logs_to_cloudwatch():
    env = block("mwaa", "resource", "aws_mwaa_environment", "this")
    logging = re.search(r"^  logging_configuration \{\n(.*?)\n  \}$", env, flags=re.DOTALL | re.MULTILINE)
    assert logging
    components = dict(re.findall(r"^    (\w+_logs) \{\n      enabled   = (\w+)$", logging.group(1), flags=re.MULTILINE))
    assert components == {
        "dag_processing_logs": "true",
        "scheduler_logs": "true",
        "task_logs": "true",
        "webserver_logs": "true",
        "worker_logs": "true",
    }


def test_the_secrets_hold_the_connections_and_variables_of_include_config():
    secrets = (TERRAFORM / "stateful" / "secrets.tf").read_text()
    credential = re.search(r"credential_connections = toset\(\[([^\]]*)\]\)", secrets)
    conns = set(re.findall(r'"(\w+)"', credential.group(1)))
    assert 'name                    = "${local.connections_prefix}/aws_default"' in secrets
    assert conns | {"aws_default"} == {SOURCE_CONN_ID, WAREHOUSE_CONN_ID, AWS_CONN_ID, SMTP_CONN_ID}
    variables = re.search(r"airflow_variables = \{\n(.*?)\n  \}", secrets, flags=re.DOTALL)
    assert set(re.findall(r"^    (\w+) += ", variables.group(1), flags=re.MULTILINE)) == set(VARIABLES)
    # The buckets of the variables are the buckets this layer creates.
    assert 'totes_ingestion_bucket = aws_s3_bucket.lake["ingestion"].bucket' in secrets
    assert 'totes_processed_bucket = aws_s3_bucket.lake["processed"].bucket' in secrets


def test_credentials_are_sensitive_ephemeral_variables_written_write_only():
    for name in ("totesys_db", "warehouse_db", "smtp"):
        body = block("stateful", "variable", name)
        assert re.search(r"^  sensitive = true$", body, flags=re.MULTILINE), name
        assert re.search(r"^  ephemeral = true$", body, flags=re.MULTILINE), name
        assert not re.search(r"^  default +=", body, flags=re.MULTILINE), f"{name} must not have a default"
    version = block("stateful", "resource", "aws_secretsmanager_secret_version", "connection")
    assert "secret_string_wo " in version
    assert "secret_string_wo_version" in version
    assert not re.search(r"^  secret_string +=", version, flags=re.MULTILINE)
    for path in TERRAFORM.rglob("*"):
        if path.is_file():
            assert not re.search(r'password\s*=\s*"[^"$]', path.read_text()), f"{path}: a hard-coded password"


def test_the_execution_role_reaches_only_the_projects_buckets_and_secrets():
    policy = block("mwaa", "data", "aws_iam_policy_document", "execution")
    resources = re.findall(r"^    resources = (.+)$", policy, flags=re.MULTILINE)
    wildcards = [r for r in resources if '"*"' in r]
    # Only the actions that take no resource ARN (as AWS's MWAA execution-role policy has them).
    assert len(wildcards) == 3
    for sid in ("DescribeLogGroups", "CheckAccountPublicAccessBlock", "PutEnvironmentMetrics"):
        assert f'sid       = "{sid}"' in policy
    assert "resources = local.stateful.secret_arns" in policy
    assert "resources = local.lake_bucket_arns" in policy
    assert "s3:*" not in policy
    assert "secretsmanager:*" not in policy
    assert "kms:*" not in policy
    assert "secretsmanager:ListSecrets" not in policy


def test_a_failed_run_raises_an_alarm_on_the_alerts_topic():
    alarm = block("mwaa", "resource", "aws_cloudwatch_metric_alarm", "failed_runs")
    assert 'namespace   = "AmazonMWAA"' in alarm
    assert 'metric_name = "DAGDurationFailed"' in alarm
    assert re.search(r'^    DAG         = "totes_etl"$', alarm, flags=re.MULTILINE)
    assert "alarm_actions = [local.stateful.alerts_topic_arn]" in alarm
    assert 'resource "aws_sns_topic" "alerts"' in (TERRAFORM / "stateful" / "alerts.tf").read_text()


def test_checkov_skips_are_in_place_and_justified():
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert "skip-check" not in config
    assert "skip_check" not in config
    skips = []
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                m = re.fullmatch(r"\s*#checkov:skip=(CKV2?_AWS_\d+):(.+)", line)
                assert m, f"{path}: malformed skip {line!r}"
                assert len(m.group(2).strip()) >= 30, f"{path}: {m.group(1)} needs a real reason"
                skips.append(m.group(1))
    assert skips, "no skip found: the parser above is broken"
