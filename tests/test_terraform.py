"""terraform/, checked statically where checkov does not look: the project's own contract.

Three root modules (layers): stateful, mwaa, and payments_api (the finance payments API on ECS
Fargate behind an internal load balancer, its image from its own ECR repository).

(No terraform binary here: `terraform fmt -check` and `validate` run in GitHub Actions, and
checkov runs from .venv-tools. These tests read the canonically formatted files line by line:
every top-level block starts at column 0 and ends with a "}" line at column 0.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from include.config import (
    AWS_CONN_ID,
    FX_API_CONN_ID,
    HEALTH_CONN_ID,
    SMTP_CONN_ID,
    SOURCE_CONN_ID,
    VARIABLES,
    WAREHOUSE_CONN_ID,
)
from tests.conftest import ROOT

TERRAFORM = ROOT / "terraform"
LAYERS = ("stateful", "mwaa", "payments_api")
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
    # plugins.zip (the health page's plugin) is the artifact's, at the uploaded object's version
    assert "plugins_s3_path                = aws_s3_object.plugins.key" in env
    assert "plugins_s3_object_version      = aws_s3_object.plugins.version_id" in env
    plugins = block("mwaa", "resource", "aws_s3_object", "plugins")
    assert 'plugins_file      = "${path.module}/../../dist/mwaa/plugins.zip"' in (TERRAFORM / "mwaa" / "bucket.tf").read_text()
    assert "source_hash  = filemd5(local.plugins_file)" in plugins
    assert "kms_key_id   = aws_kms_key.mwaa.arn" in plugins


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


def test_mwaa_gives_the_dags_what_their_assets_name_without_a_secret():
    """Assets are declared at parse time from Airflow's [totes] section (include/assets.py):
    MWAA sets it from the same buckets and schema as the variables, and the warehouse's
    location when it is given."""
    from include.assets import WarehouseLocation, declared_locations

    env = block("mwaa", "resource", "aws_mwaa_environment", "this")
    options = dict(re.findall(r'^      "totes\.(\w+)" += (\S+)$', env, flags=re.MULTILINE))
    assert options == {
        "ingestion_bucket": "local.stateful.ingestion_bucket",
        "processed_bucket": "local.stateful.processed_bucket",
        "warehouse_schema": "local.stateful.warehouse_schema",
        "sales_targets_queue_url": "local.stateful.sales_targets_queue_url",
    }
    assert '{ "totes.warehouse" = var.warehouse_asset_location }' in env
    # the environment MWAA makes of them is what the DAGs read
    given = {f"AIRFLOW__TOTES__{k.upper()}": f"{k}-value" for k in options} | {"AIRFLOW__TOTES__WAREHOUSE": "wh.internal:5432/dw"}
    assert declared_locations(given).__dict__ == {
        "ingestion_bucket": "ingestion_bucket-value",
        "processed_bucket": "processed_bucket-value",
        "warehouse_schema": "warehouse_schema-value",
        "warehouse": WarehouseLocation("wh.internal", 5432, "dw"),
    }
    stateful = block("stateful", "output", "warehouse_schema")
    assert "value       = var.warehouse_schema" in stateful


def test_the_sales_targets_bucket_notifies_an_encrypted_queue_that_mwaa_polls_and_reads_nothing_else():
    """README "File feeds": S3 -> SQS (with a dead-letter queue, encrypted), the AssetWatcher's
    queue URL from MWAA's [totes] options, and read-only access to the feed's prefix."""
    from include.config import VARIABLES
    from include.feeds import queue_url
    from include.registry import SALES_TARGETS

    queue = block("stateful", "resource", "aws_sqs_queue", "sales_targets")
    dead_letter = block("stateful", "resource", "aws_sqs_queue", "sales_targets_dead_letter")
    for q in (queue, dead_letter):
        assert "kms_master_key_id                 = aws_kms_key.data.arn" in q
    assert "deadLetterTargetArn = aws_sqs_queue.sales_targets_dead_letter.arn" in queue
    notification = block("stateful", "resource", "aws_s3_bucket_notification", "sales_targets")
    assert 'events        = ["s3:ObjectCreated:*"]' in notification
    assert "filter_prefix = var.sales_targets_prefix" in notification
    policy = block("stateful", "data", "aws_iam_policy_document", "sales_targets_queue")
    assert 'actions   = ["sqs:SendMessage"]' in policy
    assert 'variable = "aws:SourceArn"' in policy
    assert '"S3NotifiesTheEncryptedQueue"' in (TERRAFORM / "stateful" / "kms.tf").read_text()
    alarm = block("stateful", "resource", "aws_cloudwatch_metric_alarm", "sales_targets_dead_letter")
    assert "alarm_actions       = [aws_sns_topic.alerts.arn]" in alarm
    # the prefix's default is the variable's default of include/config.py
    variable = block("stateful", "variable", "sales_targets_prefix")
    assert f'default     = "{VARIABLES["totes_targets_prefix"]}"' in variable

    # MWAA's option is what the DAG file reads at parse time
    env = block("mwaa", "resource", "aws_mwaa_environment", "this")
    (option,) = re.findall(r'^      "totes\.(sales_targets_queue_url)" += ', env, flags=re.MULTILINE)
    assert queue_url(SALES_TARGETS, {f"AIRFLOW__TOTES__{option.upper()}": "https://sqs/q"}) == "https://sqs/q"

    # the execution role: list and read the feed's prefix, take the queue's messages; never write there
    role = block("mwaa", "data", "aws_iam_policy_document", "execution")
    statements = {m[0]: m[1] for m in re.findall(r'sid       = "(\w+)"\n    actions   = \[([^\]]*)\]', role)}
    assert statements["ListTheSalesTargetsPrefix"] == '"s3:ListBucket"'
    assert statements["ReadTheSalesTargets"] == '"s3:GetObject", "s3:GetObjectVersion"'
    assert "sqs:SendMessage" not in statements["TakeTheSalesTargetsNotifications"]
    assert 'resources = ["${local.stateful.sales_targets_bucket_arn}/${local.stateful.sales_targets_prefix}*"]' in role
    assert role.count("local.stateful.sales_targets_bucket_arn") == 2  # the two statements above, nothing else


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
    plain = re.search(r"plain_connections = \{\n(.*?)\n  \}\n", secrets, flags=re.DOTALL)
    plain_conns = set(re.findall(r"^    (\w+) = jsonencode", plain.group(1), flags=re.MULTILINE))
    assert not conns & plain_conns
    assert conns | plain_conns == {SOURCE_CONN_ID, WAREHOUSE_CONN_ID, HEALTH_CONN_ID, AWS_CONN_ID, SMTP_CONN_ID, FX_API_CONN_ID}
    variables = re.search(r"airflow_variables = \{\n(.*?)\n  \}", secrets, flags=re.DOTALL)
    assert set(re.findall(r"^    (\w+) += ", variables.group(1), flags=re.MULTILINE)) == set(VARIABLES)
    # The buckets of the variables are the buckets this layer creates.
    assert 'totes_ingestion_bucket = aws_s3_bucket.lake["ingestion"].bucket' in secrets
    assert 'totes_processed_bucket = aws_s3_bucket.lake["processed"].bucket' in secrets


def test_credentials_are_sensitive_ephemeral_variables_written_write_only():
    for name in ("totesys_db", "warehouse_db", "warehouse_health", "smtp"):
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


# ------------------------------------------------------------------------------------------
# terraform/payments_api
# ------------------------------------------------------------------------------------------

API = "payments_api"
PAYMENTS_DOCKERFILE = ROOT / "docker" / "payments_api" / "Dockerfile"


def hcl_attr(body: str, name: str, indent: int = 2) -> str:
    """The one-line value of attribute ``name`` at ``indent`` spaces in ``body``."""
    found = re.findall(rf"^ {{{indent}}}{re.escape(name)} += (.+)$", body, flags=re.MULTILINE)
    assert len(found) == 1, f"{name} found {len(found)} times"
    return found[0]


def hcl_map(body: str, name: str) -> dict[str, str]:
    """``name = { k = v ... }`` (one line per entry) of a locals block, as a dict of raw values."""
    m = re.search(rf"^  {name} = \{{\n(.*?)\n  \}}$", body, flags=re.DOTALL | re.MULTILINE)
    assert m, f"no map {name}"
    return dict(re.findall(r"^    (\w+) += (.+)$", m.group(1), flags=re.MULTILINE))


def test_every_remote_output_a_layer_reads_is_an_output_of_that_layer():
    """payments_api reads stateful and mwaa, mwaa reads stateful: every name exists there."""
    readers = {"mwaa": {"stateful": "stateful"}, API: {"stateful": "stateful", "mwaa": "mwaa"}}
    for layer, sources in readers.items():
        text = "\n".join(p.read_text() for p in sorted((TERRAFORM / layer).glob("*.tf")))
        for local, source in sources.items():
            assert f'data "terraform_remote_state" "{source}"' in text, f"{layer} does not read {source}"
            used = set(re.findall(rf"\blocal\.{local}\.(\w+)", text))
            outputs = {ls[0] for k, ls, _, _ in blocks(source) if k == "output"}
            assert used, f"{layer} reads nothing of {source}"
            assert used <= outputs, f"{layer} reads {sorted(used - outputs)} that {source} does not output"
    provider = (TERRAFORM / API / "providers.tf").read_text()
    assert "key    = var.mwaa_state_key" in provider
    assert "key    = var.stateful_state_key" in provider


def test_the_api_image_comes_from_the_layers_ecr_repository_by_an_immutable_tag():
    repo = block(API, "resource", "aws_ecr_repository", "api")
    assert hcl_attr(repo, "image_tag_mutability") == '"IMMUTABLE"'
    assert re.search(r"^    scan_on_push = true$", repo, flags=re.MULTILINE)
    assert re.search(r'^    encryption_type = "KMS"$', repo, flags=re.MULTILINE)
    assert re.search(r"^    kms_key +.+aws_kms_key\.api\.arn$", repo, flags=re.MULTILINE)
    assert "aws_ecr_lifecycle_policy" in (TERRAFORM / API / "ecr.tf").read_text()

    ecs = locals_with(API, "image")
    assert hcl_attr(ecs, "image") == '"${aws_ecr_repository.api.repository_url}:${var.image_tag}"'
    task = block(API, "resource", "aws_ecs_task_definition", "api")
    assert hcl_attr(task, "image", indent=6) == "local.image"
    assert len(re.findall(r"^\s+image\s+=", "\n".join(b for _, _, b, _ in blocks(API)), flags=re.MULTILINE)) == 2

    # The tag is given at every apply (the deploy passes the commit SHA) and is never "latest".
    tag = block(API, "variable", "image_tag")
    assert not re.search(r"^  default +=", tag, flags=re.MULTILINE)
    assert 'var.image_tag != "latest"' in tag


def test_the_api_task_runs_the_images_command_unprivileged_in_private_subnets():
    from payments_api.settings import DEFAULT_PORT

    dockerfile = PAYMENTS_DOCKERFILE.read_text()
    image_user = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)[-1]
    image_cmd = re.findall(r"^CMD (.+)$", dockerfile, flags=re.MULTILINE)[-1]

    ecs = locals_with(API, "container_port")
    assert hcl_attr(ecs, "container_port") == str(DEFAULT_PORT)
    assert re.search(rf"^EXPOSE {DEFAULT_PORT}$", dockerfile, flags=re.MULTILINE)

    task = block(API, "resource", "aws_ecs_task_definition", "api")
    assert hcl_attr(task, "requires_compatibilities") == '["FARGATE"]'
    assert hcl_attr(task, "network_mode") == '"awsvpc"'
    assert hcl_attr(task, "user", indent=6) == f'"{image_user}"'
    assert hcl_attr(task, "readonlyRootFilesystem", indent=6) == "true"
    assert hcl_attr(task, "privileged", indent=6) == "false"
    assert 'capabilities       = { drop = ["ALL"] }' in task
    command = hcl_attr(task, "command", indent=6)
    assert command == image_cmd.removesuffix("]") + ', "--port", tostring(local.container_port)]'
    assert hcl_attr(task, "execution_role_arn") == "aws_iam_role.execution.arn"
    assert hcl_attr(task, "task_role_arn") == "aws_iam_role.task.arn"

    service = block(API, "resource", "aws_ecs_service", "api")
    assert hcl_attr(service, "launch_type") == '"FARGATE"'
    assert hcl_attr(service, "enable_execute_command") == "false"
    assert hcl_attr(service, "assign_public_ip", indent=4) == "false"
    assert hcl_attr(service, "subnets", indent=4) == "local.mwaa.private_subnet_ids"
    assert hcl_attr(service, "security_groups", indent=4) == "[aws_security_group.task.id]"
    assert re.search(r"deployment_circuit_breaker \{\n    enable   = true\n    rollback = true", service)
    assert hcl_attr(service, "container_port", indent=4) == "local.container_port"


def test_the_load_balancer_signs_users_in_and_the_service_checks_what_it_signed():
    """OIDC sign-in at the load balancer before forwarding; the tasks verify the balancer's signed
    claims (its ARN, AWS's regional key endpoint) and the reader group (payments_api/auth.py)."""
    https = block(API, "resource", "aws_lb_listener", "https")
    actions = re.findall(r"^  default_action \{\n(.*?)^  \}$", https, flags=re.MULTILINE | re.DOTALL)
    assert [(hcl_attr(a, "type", 4), hcl_attr(a, "order", 4)) for a in actions] == [
        ('"authenticate-oidc"', "1"),
        ('"forward"', "2"),
    ]
    oidc = actions[0]
    assert hcl_attr(oidc, "on_unauthenticated_request", 6) == '"authenticate"'
    assert hcl_attr(oidc, "client_secret", 6) == "var.oidc_client_secret"
    for field in ("issuer", "authorization_endpoint", "token_endpoint", "user_info_endpoint", "client_id"):
        assert hcl_attr(oidc, field, 6) == f"var.oidc.{field}"
    assert hcl_attr(block(API, "variable", "oidc_client_secret"), "sensitive") == "true"
    assert 'startswith(u, "https://")' in block(API, "variable", "oidc")
    # the balancer reaches the identity provider over HTTPS only
    egress = block(API, "resource", "aws_vpc_security_group_egress_rule", "alb_to_identity_provider")
    assert (hcl_attr(egress, "from_port"), hcl_attr(egress, "to_port")) == ("443", "443")
    assert "for_each = toset(var.oidc_endpoint_cidrs)" in egress

    from payments_api.settings import Settings

    env = dict(
        re.findall(r"^    (TOTES_PAYMENTS_API_\w+) += (.+)$", locals_with(API, "container_environment"), flags=re.MULTILINE)
    )
    assert env["TOTES_PAYMENTS_API_AUTH"] == '"alb-oidc"'
    assert env["TOTES_PAYMENTS_API_ALB_ARN"] == "aws_lb.api.arn"
    assert env["TOTES_PAYMENTS_API_ALB_KEYS_URL"] == '"https://public-keys.auth.elb.${local.region}.amazonaws.com"'
    assert env["TOTES_PAYMENTS_API_GROUPS_CLAIM"] == "var.oidc.groups_claim"
    assert env["TOTES_PAYMENTS_API_READER_GROUP"] == "var.reader_group"
    # every variable the task is given is one the service reads
    known = set(re.findall(r"TOTES_PAYMENTS_API_\w+", Settings.__doc__)) | {"TOTES_PAYMENTS_API_PORT"}
    assert set(env) <= known, set(env) - known
    # the deploy passes the identity provider, its secret from the repository's secrets
    deploy = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert deploy.count("TF_VAR_oidc_client_secret: ${{ secrets.PAYMENTS_API_OIDC_CLIENT_SECRET }}") == 2


def test_the_api_is_reachable_only_over_https_on_an_internal_load_balancer():
    lb = block(API, "resource", "aws_lb", "api")
    assert hcl_attr(lb, "internal") == "true"
    assert hcl_attr(lb, "subnets") == "local.mwaa.private_subnet_ids"
    assert hcl_attr(lb, "drop_invalid_header_fields") == "true"
    assert re.search(r"access_logs \{\n(.*\n)*?    enabled = true", lb)
    listeners = [ls for k, ls, _, _ in blocks(API) if k == "resource" and ls[0] == "aws_lb_listener"]
    assert listeners == [("aws_lb_listener", "https")], "one listener, HTTPS (no plain HTTP at all)"
    https = block(API, "resource", "aws_lb_listener", "https")
    assert hcl_attr(https, "protocol") == '"HTTPS"'
    assert hcl_attr(https, "port") == "443"
    assert hcl_attr(https, "ssl_policy") == "var.ssl_policy"
    assert "TLS13-1-2" in hcl_attr(block(API, "variable", "ssl_policy"), "default")
    assert not re.search(r"^  default +=", block(API, "variable", "certificate_arn"), flags=re.MULTILINE)

    # The target group's health check asks a path the app serves without the database.
    target = block(API, "resource", "aws_lb_target_group", "api")
    path = hcl_attr(target, "path", indent=4).strip('"')
    from payments_api.app import create_app
    from payments_api.settings import Settings

    on_aws = Settings(warehouse_url=None, auth="alb-oidc", alb_arn="arn:aws:elasticloadbalancing:x", alb_keys_url="https://k")
    assert path in {route.path for route in create_app(on_aws).routes}
    assert path != "/health", "a warehouse outage must not make ECS replace healthy tasks"

    # Who may call: client_cidrs, never the whole internet; the tasks admit only the balancer.
    clients = block(API, "variable", "client_cidrs")
    assert not re.search(r"^  default +=", clients, flags=re.MULTILINE)
    assert 'c != "0.0.0.0/0"' in clients
    ingress = [(ls, b) for k, ls, b, _ in blocks(API) if k == "resource" and ls[0] == "aws_vpc_security_group_ingress_rule"]
    assert {ls[1] for ls, _ in ingress} == {"alb_https", "task_from_alb"}
    assert "for_each = toset(var.client_cidrs)" in block(API, "resource", "aws_vpc_security_group_ingress_rule", "alb_https")
    from_alb = block(API, "resource", "aws_vpc_security_group_ingress_rule", "task_from_alb")
    assert hcl_attr(from_alb, "referenced_security_group_id") == "aws_security_group.alb.id"
    # Out of the tasks: HTTPS (AWS APIs) and the warehouse's port on warehouse_cidrs, nothing else.
    egress = {ls[1]: b for k, ls, b, _ in blocks(API) if k == "resource" and ls[0] == "aws_vpc_security_group_egress_rule"}
    task_egress = {n: b for n, b in egress.items() if "aws_security_group.task.id" in hcl_attr(b, "security_group_id")}
    assert {(hcl_attr(b, "from_port"), hcl_attr(b, "to_port")) for b in task_egress.values()} == {
        ("443", "443"),
        ("5432", "5432"),
    }
    assert "for_each = toset(var.warehouse_cidrs)" in task_egress["task_warehouse"]


def test_the_warehouse_login_is_an_ephemeral_secret_only_ecs_reads():
    var = block(API, "variable", "warehouse_readonly")
    assert re.search(r"^  sensitive = true$", var, flags=re.MULTILINE)
    assert re.search(r"^  ephemeral = true$", var, flags=re.MULTILINE)
    assert not re.search(r"^  default +=", var, flags=re.MULTILINE)
    assert "readonly_role.sql" in var  # documented as the read-only role
    version = block(API, "resource", "aws_secretsmanager_secret_version", "warehouse")
    assert hcl_attr(version, "secret_string_wo") == "local.warehouse_secret_value"
    assert hcl_attr(version, "secret_string_wo_version") == "var.warehouse_secret_version"
    assert not re.search(r"^  secret_string +=", version, flags=re.MULTILINE)
    secret = block(API, "resource", "aws_secretsmanager_secret", "warehouse")
    assert hcl_attr(secret, "kms_key_id") == "aws_kms_key.api.arn"

    # ECS hands each field of the secret to the container as libpq's own variable.
    libpq_env = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER", "password": "PGPASSWORD"}
    value = re.search(
        r"warehouse_secret_value = jsonencode\(\{\n(.*?)\n  \}\)", locals_with(API, "warehouse_secret_value"), re.DOTALL
    )
    secret_keys = set(re.findall(r"^    (\w+) += ", value.group(1), flags=re.MULTILINE))
    assert secret_keys == set(libpq_env)
    ecs = locals_with(API, "container_secrets")
    secrets = {k: v.strip('"') for k, v in hcl_map(ecs, "container_secrets").items()}
    assert secrets == {env: key for key, env in libpq_env.items()}
    task = block(API, "resource", "aws_ecs_task_definition", "api")
    assert 'valueFrom = "${aws_secretsmanager_secret.warehouse.arn}:${v}::"' in task
    env = hcl_map(ecs, "container_environment")
    assert env["TOTES_WAREHOUSE_URL"] == '"postgresql://"', "no credentials in the URL: they come from the secret"
    assert env["PGSSLMODE"] == '"require"'
    assert env["TOTES_WAREHOUSE_SCHEMA"] == "var.warehouse_schema"
    assert env["TOTES_WAREHOUSE_SECRET_VERSION"] == "tostring(var.warehouse_secret_version)"
    assert not set(env) & set(secrets)

    # The execution role: this image, this log group, this secret, this key through Secrets Manager.
    policy = block(API, "data", "aws_iam_policy_document", "execution")
    resources = re.findall(r"^    resources = (.+)$", policy, flags=re.MULTILINE)
    assert [r for r in resources if '"*"' in r] == ['["*"]']
    assert 'actions   = ["ecr:GetAuthorizationToken"]' in policy  # the one action without a resource
    assert "resources = [aws_ecr_repository.api.arn]" in policy
    assert "resources = [aws_secretsmanager_secret.warehouse.arn]" in policy
    assert 'resources = ["${aws_cloudwatch_log_group.api.arn}:*"]' in policy
    assert 'values   = ["secretsmanager.${local.region}.amazonaws.com"]' in policy
    for broad in ("ecr:*", "secretsmanager:*", "kms:*", "logs:*", "iam:PassRole"):
        assert broad not in policy, broad
    # The task role (what the API's code runs as) is granted nothing.
    attached = [b for k, ls, b, _ in blocks(API) if k == "resource" and ls[0].startswith("aws_iam_role_policy")]
    assert all("aws_iam_role.task" not in b for b in attached)
    assert all('"aws_iam_role_policy_attachment"' not in p.read_text() for p in (TERRAFORM / API).glob("*.tf"))


def test_the_task_environment_reaches_the_warehouse_the_way_the_app_connects(new_database):
    """The container's environment as the task definition builds it (an empty URL, the PG*
    variables from the secret, the schema) makes payments_api reach a real warehouse."""
    import os
    import subprocess
    import sys

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from include.ddl import ensure_warehouse_schema

    url = new_database("api_task_env")
    schema = "project_team_3"
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_warehouse_schema(conn, schema)
    params = conninfo_to_dict(url)
    ecs = locals_with(API, "container_secrets")
    secret_json = {"host": params["host"], "port": str(params["port"]), "dbname": params["dbname"], "user": params["user"]}
    secret_json["password"] = str(params.get("password") or "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "TOTES_"))}
    for name, key in hcl_map(ecs, "container_secrets").items():
        env[name] = secret_json[key.strip('"')]
    expressions = {
        "var.warehouse_schema": schema,
        "tostring(local.container_port)": "8081",
        "tostring(var.warehouse_secret_version)": "1",
        "aws_lb.api.arn": "arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/app/totes/0123",
        "var.oidc.groups_claim": "groups",
        "var.reader_group": "finance",
    }
    for name, raw in hcl_map(ecs, "container_environment").items():
        env[name] = raw.strip('"') if raw.startswith('"') else expressions[raw]
    env["PGSSLMODE"] = "prefer"  # the harness's server has no TLS; on AWS: require (checked above)
    env["PYTHONPATH"] = str(ROOT)
    probe = (
        "from payments_api import db; from payments_api.settings import Settings; s = Settings.from_env(); "
        "assert s.warehouse_url and s.schema == 'project_team_3', s; db.ping(s); "
        "from payments_api import create_app; create_app(s); assert s.auth == 'alb-oidc' and s.reader_group == 'finance'; "
        "print(db.fetch_payments(s, 'next', __import__('datetime').date(2024, 11, 15)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    # Without the secret's variables the same environment does not reach it (the URL alone is empty).
    env["PGHOST"], env["PGPORT"] = "127.0.0.1", "1"
    failed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode != 0
    assert "unreachable" in failed.stderr


def test_the_api_logs_encrypted_for_a_year_and_alarms_on_the_alerts_topic():
    group = block(API, "resource", "aws_cloudwatch_log_group", "api")
    assert hcl_attr(group, "kms_key_id") == "aws_kms_key.api.arn"
    assert hcl_attr(group, "retention_in_days") == "var.log_retention_days"
    assert "var.log_retention_days >= 365" in block(API, "variable", "log_retention_days")
    task = block(API, "resource", "aws_ecs_task_definition", "api")
    assert 'logDriver = "awslogs"' in task
    assert "awslogs-group         = aws_cloudwatch_log_group.api.name" in task
    alarms = [(ls[1], b) for k, ls, b, _ in blocks(API) if k == "resource" and ls[0] == "aws_cloudwatch_metric_alarm"]
    assert {n for n, _ in alarms} == {"no_healthy_task", "errors"}
    for name, body in alarms:
        assert "alarm_actions = [local.stateful.alerts_topic_arn]" in body, name
        assert 'namespace   = "AWS/ApplicationELB"' in body, name
    assert 'metric_name = "HTTPCode_Target_5XX_Count"' in block(API, "resource", "aws_cloudwatch_metric_alarm", "errors")
    # The key of this layer is not the lake's: the API's roles can decrypt nothing of the pipeline.
    assert "data_kms_key_arn" not in "\n".join(p.read_text() for p in (TERRAFORM / API).glob("*.tf"))


def test_the_pipelines_metrics_become_cloudwatch_metrics_from_the_task_log_lines():
    from include.metrics import LOG_FIELDS, METRICS

    declared = locals_with("mwaa", "totes_metrics")
    names = re.search(r"^  totes_metrics += toset\(\[(.*)\]\)$", declared, flags=re.MULTILINE)[1]
    assert set(re.findall(r'"(\w+)"', names)) == set(METRICS)  # one declaration: include/metrics.py
    # the task log group MWAA writes, read off the environment itself
    assert "aws_mwaa_environment.this.logging_configuration[0].task_logs[0].cloud_watch_log_group_arn" in declared
    for name in ("by_table", "all_tables"):
        f = block("mwaa", "resource", "aws_cloudwatch_log_metric_filter", name)
        assert "for_each       = local.totes_metrics" in f
        assert f'pattern        = "{{ $.{LOG_FIELDS["metric"]} = \\"${{each.key}}\\" }}"' in f
        assert re.search(rf'^    value += "\$\.{LOG_FIELDS["value"]}"$', f, flags=re.MULTILINE), f
        assert re.search(r"^    namespace += local\.metrics_ns$", f, flags=re.MULTILINE), f
    by_table = block("mwaa", "resource", "aws_cloudwatch_log_metric_filter", "by_table")
    assert f'dimensions = {{ Table = "$.{LOG_FIELDS["table"]}" }}' in by_table


def test_alarms_fire_on_lag_over_the_promise_and_on_any_quarantined_row():
    from include.config import FRESHNESS_LIMIT

    alarms = locals_with("mwaa", "figure_alarms")
    lag = alarms.split("rows_quarantined = {")[0]
    assert 'metric      = "freshness_lag_seconds_all_tables"' in lag
    assert 'statistic   = "Maximum"' in lag
    assert f"threshold   = {int(FRESHNESS_LIMIT.total_seconds())}" in lag
    quarantined = alarms.split("rows_quarantined = {")[1]
    assert 'metric      = "rows_quarantined_all_tables"' in quarantined
    assert 'statistic   = "Sum"' in quarantined
    assert "threshold   = 0" in quarantined
    alarm = block("mwaa", "resource", "aws_cloudwatch_metric_alarm", "figures")
    assert "for_each          = local.figure_alarms" in alarm
    assert 'comparison_operator = "GreaterThanThreshold"' in alarm
    assert "threshold           = each.value.threshold" in alarm
    assert "alarm_actions = [local.stateful.alerts_topic_arn]" in alarm
    assert "namespace   = local.metrics_ns" in alarm


def test_the_dashboard_shows_runs_durations_failures_lag_loads_and_quarantine():
    from include.metrics import METRICS

    body = block("mwaa", "resource", "aws_cloudwatch_dashboard", "totes_etl")
    for metric in ("DAGDurationSuccess", "DAGDurationFailed"):
        assert f'concat(["AmazonMWAA", "{metric}"], local.mwaa_dag)' in body
    per_table = locals_with("mwaa", "per_table")
    shown = re.findall(r"^    (\w+) += \"(\w+)\"$", per_table.split("per_table_titles")[0], flags=re.MULTILINE)
    assert dict(shown) == {"freshness_lag_seconds": "Maximum", "rows_quarantined": "Sum", "rows_loaded": "Sum"}
    assert set(dict(shown)) == set(METRICS)
    assert "[aws_cloudwatch_metric_alarm.failed_runs.arn]" in body
    assert "[for a in aws_cloudwatch_metric_alarm.figures : a.arn]" in body
