"""The GitHub Actions workflows: CI checks everything on every push and pull request; deploy runs
only after CI succeeded on a push to main, with AWS credentials from OIDC and no stored keys, and
ends with the payments API: its image built, pushed to its ECR repository and scanned, then
terraform/payments_api applied."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    wf = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in wf:
        wf["on"] = wf.pop(True)
    return wf


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    on = wf["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def runs(job: dict[str, Any]) -> str:
    """Every `run` script of a job, one string, continuation lines joined."""
    return "\n".join(" ".join(str(s.get("run", "")).split()) for s in steps(job))


def uses(job: dict[str, Any]) -> list[str]:
    return [s["uses"] for s in steps(job) if "uses" in s]


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return load(CI)


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load(DEPLOY)


def job_running(wf: dict[str, Any], pattern: str) -> dict[str, Any]:
    found = [job for job in wf["jobs"].values() if re.search(pattern, runs(job))]
    assert found, f"no job runs {pattern!r}"
    return found[0]


# ------------------------------------------------------------------------------------------
# CI
# ------------------------------------------------------------------------------------------


def test_ci_runs_on_every_push_and_pull_request(ci):
    on = triggers(ci)
    assert "push" in on
    assert "pull_request" in on
    # No branch or path filter: every push and every pull request.
    for event in ("push", "pull_request"):
        assert not (on[event] or {}).keys() & {"branches", "branches-ignore", "paths", "paths-ignore", "tags"}, event
    assert ci["permissions"] == {"contents": "read"}  # read-only token for untrusted pull requests


def test_ci_lints_formats_and_scans(ci):
    lint = job_running(ci, r"\bruff check\b")
    assert re.search(r"\bruff format --check\b", runs(lint))
    bandit = job_running(ci, r"\bbandit\b")
    assert "-c pyproject.toml" in runs(bandit)
    for package in ("dags", "include", "plugins", "devtools", "scripts", "payments_api"):
        assert re.search(rf"-r [\w ]*\b{package}\b", runs(bandit)), f"bandit does not scan {package}"
    audit = job_running(ci, r"\bpip-audit\b")
    assert re.search(r"pip-audit [^\n]*-r requirements\.txt", runs(audit))


def test_ci_runs_pytest_against_a_postgres_15_service(ci):
    job = job_running(ci, r"\bpytest\b")
    services = job.get("services", {})
    images = [svc["image"] for svc in services.values()]
    assert any(re.match(r"postgres:15(\.\d+)?", image) for image in images), images
    url = job.get("env", {}).get("TOTES_TEST_PG_URL", "")
    assert url.startswith("postgresql://"), "TOTES_TEST_PG_URL must point pytest at the service"
    port = next(str(p).split(":")[0] for svc in services.values() for p in svc.get("ports", []))
    assert f":{port}/" in url


def test_ci_runs_checkov_and_terraform_fmt_and_validate(ci):
    checkov = job_running(ci, r"\bcheckov -d terraform\b")
    assert "scripts/tools.sh" in runs(checkov)
    tf = job_running(ci, r"\bterraform fmt -check\b")
    assert re.search(r"terraform fmt -check -recursive", runs(tf))
    for layer in ("stateful", "mwaa", "payments_api"):
        assert f"terraform -chdir=terraform/{layer} validate" in runs(tf), layer
        assert f"terraform -chdir=terraform/{layer} init -backend=false" in runs(tf), layer
    setup = [u for u in uses(tf) if u.startswith("hashicorp/setup-terraform@")]
    assert setup
    assert SHA_PIN.match(setup[0])
    version = ci.get("env", {}).get("TERRAFORM_VERSION", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "terraform is pinned to an exact version"


# ------------------------------------------------------------------------------------------
# Deploy
# ------------------------------------------------------------------------------------------


def test_deploy_never_runs_for_pull_requests(deploy, ci):
    on = triggers(deploy)
    assert not on.keys() & {"pull_request", "pull_request_target", "issue_comment", "workflow_dispatch"}, on.keys()
    if "push" in on:
        assert (on["push"] or {}).get("branches") == ["main"]
        gate = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        for job in deploy["jobs"].values():
            assert gate in job.get("if", "") or job.get("needs"), job
        return
    # workflow_run: only when CI completed successfully for a push to main of this repository.
    assert set(on) == {"workflow_run"}
    run = on["workflow_run"]
    assert run["workflows"] == [ci["name"]]
    assert run["types"] == ["completed"]
    assert run.get("branches") == ["main"]
    for name, job in deploy["jobs"].items():
        condition = " ".join(str(job.get("if", "")).split())
        if not condition:
            assert job.get("needs"), f"{name} has neither a condition nor a gated job before it"
            continue
        for clause in (
            "github.event.workflow_run.conclusion == 'success'",
            "github.event.workflow_run.event == 'push'",
            "github.event.workflow_run.head_branch == 'main'",
        ):
            assert clause in condition, f"{name}: missing {clause}"
        assert "||" not in condition, f"{name}: an `or` could open the gate"


def test_deploy_deploys_the_commit_ci_tested(deploy):
    job = next(iter(deploy["jobs"].values()))
    checkout = next(s for s in steps(job) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"


def test_deploy_uses_oidc_and_no_stored_aws_keys(deploy):
    text = DEPLOY.read_text()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id", "aws-secret-access-key", "AWS_SESSION_TOKEN"):
        assert key not in text, f"deploy mentions {key}"
    for name, job in deploy["jobs"].items():
        creds = [s for s in steps(job) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        if not creds:
            continue
        assert job["permissions"]["id-token"] == "write", name
        assert set(creds[0]["with"]) >= {"role-to-assume", "aws-region"}, name
    assert any(
        s.get("uses", "").startswith("aws-actions/configure-aws-credentials@") for j in deploy["jobs"].values() for s in steps(j)
    )
    # Nothing else gets the OIDC token: not the workflow as a whole.
    assert "id-token" not in deploy.get("permissions", {})


def test_deploy_applies_stateful_then_mwaa_then_syncs_the_artifact(deploy):
    script = runs(next(iter(deploy["jobs"].values())))
    order = [
        "terraform -chdir=terraform/stateful init",
        "terraform -chdir=terraform/stateful plan",
        "terraform -chdir=terraform/stateful apply",
        "scripts/package_mwaa.py --output dist/mwaa",
        "terraform -chdir=terraform/mwaa init",
        "terraform -chdir=terraform/mwaa plan",
        "terraform -chdir=terraform/mwaa apply",
        "aws s3 sync dist/mwaa/dags",
    ]
    positions = [script.find(step) for step in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions)
    assert re.search(r"aws s3 sync dist/mwaa/dags \S+ --delete", script)
    # Partial backend configuration, supplied at init (stateful, mwaa, payments_api).
    assert script.count('-backend-config="bucket=') == 3


def step_named(job: dict[str, Any], pattern: str) -> dict[str, Any]:
    found = [s for s in steps(job) if re.search(pattern, str(s.get("run", "")))]
    assert len(found) == 1, f"{len(found)} steps run {pattern!r}"
    return found[0]


def test_ci_builds_the_payments_api_image_and_runs_it(ci):
    job = job_running(ci, r"docker build --file docker/payments_api/Dockerfile")
    script = runs(job)
    assert "--target payments-api" in script
    assert re.search(r"docker run --rm \S+ id -u\)\" = 10001", script), "the image runs as uid 10001"
    assert "--read-only" in script
    assert 'test "$status" -eq 2' in script  # no warehouse URL: exit 2, as documented


def test_deploy_builds_pushes_and_applies_the_payments_api_after_the_others(deploy):
    job = next(iter(deploy["jobs"].values()))
    script = runs(job)
    order = [
        "aws s3 sync dist/mwaa/dags",
        "terraform -chdir=terraform/payments_api init",
        "terraform -chdir=terraform/payments_api plan -target=aws_ecr_repository.api",
        "terraform -chdir=terraform/payments_api apply ecr.tfplan",
        "terraform -chdir=terraform/payments_api output -raw ecr_repository_url",
        "docker build --file docker/payments_api/Dockerfile --target payments-api",
        'docker push "$image"',
        "aws ecr wait image-scan-complete",
        "aws ecr describe-image-scan-findings",
        "terraform -chdir=terraform/payments_api plan -out=tfplan",
        "terraform -chdir=terraform/payments_api apply tfplan",
    ]
    positions = [script.find(step) for step in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions)
    # The remote state of the third layer, beside the others'.
    assert "key=${STATE_PREFIX}/payments_api.tfstate" in script

    # The image: the commit CI tested, as an immutable tag of the layer's own repository.
    assert job["env"]["IMAGE_TAG"] == "${{ github.event.workflow_run.head_sha }}"
    assert 'image="${repository}:${IMAGE_TAG}"' in script
    assert '--tag "$image"' in script
    # The registry password goes through stdin, never the command line.
    assert re.search(r"aws ecr get-login-password [^|]*\| docker login --username AWS --password-stdin", script)
    # A CRITICAL finding of the scan on push stops the deploy before the service moves.
    assert "findingSeverityCounts.CRITICAL" in script
    assert "exit 1" in step_named(job, r"describe-image-scan-findings")["run"]

    # Every terraform step of the layer gets the image tag, the other layers' states and the
    # read-only warehouse login from the environment's secrets.
    for pattern in (r"plan -target=aws_ecr_repository\.api", r"terraform -chdir=terraform/payments_api plan -out=tfplan"):
        env = step_named(job, pattern)["env"]
        assert env["TF_VAR_image_tag"] == "${{ env.IMAGE_TAG }}"
        assert env["TF_VAR_warehouse_readonly"] == "${{ secrets.PAYMENTS_API_WAREHOUSE_DB }}"
        assert env["TF_VAR_mwaa_state_key"] == "${{ env.STATE_PREFIX }}/mwaa.tfstate"
        assert env["TF_VAR_stateful_state_key"] == "${{ env.STATE_PREFIX }}/stateful.tfstate"
        for name in ("client_cidrs", "certificate_arn", "warehouse_cidrs", "warehouse_schema", "warehouse_secret_version"):
            assert f"TF_VAR_{name}" in env, name


def test_every_variable_the_deploy_passes_exists_in_its_layer(deploy):
    """A TF_VAR_x given to a layer's terraform step is a variable of that layer (a typo would be
    silently ignored by terraform)."""
    from tests.test_terraform import blocks

    job = next(iter(deploy["jobs"].values()))
    job_vars = {k.removeprefix("TF_VAR_") for k in job.get("env", {}) if k.startswith("TF_VAR_")}
    checked = 0
    for step in steps(job):
        m = re.search(r"terraform -chdir=terraform/(\w+) (plan|apply)", str(step.get("run", "")))
        if not m:
            continue
        declared = {ls[0] for k, ls, _, _ in blocks(m.group(1)) if k == "variable"}
        given = job_vars | {k.removeprefix("TF_VAR_") for k in step.get("env", {}) if k.startswith("TF_VAR_")}
        assert given <= declared, f"{m.group(1)}: {sorted(given - declared)} are no variables of the layer"
        required = {ls[0] for k, ls, b, _ in blocks(m.group(1)) if k == "variable" and not re.search(r"^  default +=", b, re.M)}
        assert required <= given, f"{m.group(1)}: {sorted(required - given)} are required but not given"
        checked += 1
    assert checked == 4  # stateful, mwaa, the repository of payments_api, payments_api


# ------------------------------------------------------------------------------------------
# Both
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CI, DEPLOY], ids=["ci", "deploy"])
def test_every_action_is_pinned_to_a_commit_with_its_version(path):
    lines = [ln for ln in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", ln)]
    assert lines
    for line in lines:
        m = re.match(r"\s*(?:- )?uses: (\S+)(?: # (v\d+\.\d+\.\d+))?$", line)
        assert m, f"{path.name}: {line.strip()}"
        assert SHA_PIN.match(m.group(1)), f"{path.name}: {m.group(1)} is not pinned to a commit SHA"
        assert m.group(2), f"{path.name}: {m.group(1)} has no version comment"


def test_the_sha_pin_rule_itself():
    assert SHA_PIN.match("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683")
    assert not SHA_PIN.match("actions/checkout@v4")
    assert not SHA_PIN.match("actions/checkout@main")
    assert not SHA_PIN.match("actions/checkout@11bd719")
