"""The MWAA artifact (scripts/package_mwaa.py) holds what MWAA needs and nothing else, and the
DAG imports from the artifact alone, laid out as MWAA lays it out (include/ under dags/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from include.registry import SOURCE_TABLES, WAREHOUSE_TABLES
from scripts.package_mwaa import build
from tests.conftest import ROOT

EXPECTED_TASKS = {
    "ensure_warehouse_schema",
    *(f"ingest.{t.name}" for t in SOURCE_TABLES),
    *(f"transform.{w.name}" for w in WAREHOUSE_TABLES),
    *(f"load.{w.name}" for w in WAREHOUSE_TABLES),
}

# Runs in a fresh interpreter whose only view of the project is the artifact's dags folder.
PROBE = """
import importlib.util, json, sys
from airflow.dag_processing.dagbag import DagBag
dags = sys.argv[1]
bag = DagBag(dag_folder=dags)
dag = bag.dags.get("totes_etl")  # (get_dag would ask the metadata database)
import include, include.registry
# What the scheduler does with the DAG's deadline alert when it creates a run: decode it, finding
# the reference class among the plugins.
from airflow.serialization.decoders import decode_deadline_alert
from airflow.serialization.serialized_objects import DagSerialization
try:
    (encoded,) = DagSerialization.to_dict(dag)["dag"]["deadline"]
    ref = decode_deadline_alert(encoded).reference.inner_ref
    deadline = f"{type(ref).__module__}.{type(ref).__qualname__} from {sys.modules[type(ref).__module__].__file__}"
except Exception as e:
    deadline = type(e).__name__
print(json.dumps({
    "deadline": deadline,
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "tasks": sorted(dag.task_ids) if dag else None,
    "parsed_files": sorted(str(s.file) for s in bag.dagbag_stats),
    "include": include.__file__,
    "registry": include.registry.__file__,
    "devtools": importlib.util.find_spec("devtools") is not None,
    "tests": importlib.util.find_spec("tests") is not None,
    "bench": importlib.util.find_spec("bench") is not None,
}))
"""


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """Built by the CLI into one temp dir, then only the artifact copied into a clean one."""
    built = tmp_path_factory.mktemp("build") / "mwaa"
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_mwaa.py"), "--output", str(built)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    clean = tmp_path_factory.mktemp("clean") / "mwaa"
    shutil.copytree(built, clean)
    return clean


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_the_artifact_holds_dags_include_and_requirements_only(artifact):
    files = files_of(artifact)
    for f in files:
        assert f.startswith("dags/") or f in ("requirements.txt", "plugins.zip"), f"{f} must not ship"
        assert "__pycache__" not in f, f
        assert not f.endswith(".pyc"), f
        parts = f.split("/")
        for forbidden in ("tests", "devtools", "bench", "scripts", "terraform", "docker", ".github"):
            assert forbidden not in parts, f"{f} must not ship"
    dag_files = ("totes_etl.py", "totes_files.py", "totes_fx.py", "totes_reports.py")
    assert {*(f"dags/{d}" for d in dag_files), "dags/.airflowignore", "requirements.txt"} <= files
    # Every module of the include package ships, under dags/include/, byte for byte.
    repo_include = {
        p.relative_to(ROOT / "include").as_posix() for p in (ROOT / "include").rglob("*.py") if "__pycache__" not in p.parts
    }
    shipped_include = {f.removeprefix("dags/include/") for f in files if f.startswith("dags/include/")}
    assert shipped_include == repo_include
    for rel in repo_include:
        assert (artifact / "dags" / "include" / rel).read_bytes() == (ROOT / "include" / rel).read_bytes(), rel
    for dag_file in dag_files:
        assert (artifact / "dags" / dag_file).read_bytes() == (ROOT / "dags" / dag_file).read_bytes()
    assert (artifact / "requirements.txt").read_bytes() == (ROOT / "requirements.txt").read_bytes()
    # plugins/ holds the deadline reference's and the health page's plugins (and its README,
    # which does not ship)
    import zipfile

    with zipfile.ZipFile(artifact / "plugins.zip") as zf:
        assert zf.namelist() == ["totes_deadline.py", "totes_health.py"]
        for name in zf.namelist():
            assert zf.read(name) == (ROOT / "plugins" / name).read_bytes()


def test_airflowignore_keeps_the_dag_processor_out_of_include(artifact):
    lines = [ln.strip() for ln in (artifact / "dags" / ".airflowignore").read_text().splitlines()]
    assert "include/" in lines


def run_probe(dags: Path, pythonpath: Path, home: Path, plugins: Path | None = None) -> dict:
    """Parse ``dags`` with DagBag in a fresh interpreter that sees only ``pythonpath`` (and the
    plugins folder ``plugins``, if given)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "TOTES_", "VIRTUAL_ENV"))}
    env.update(
        {
            "PYTHONPATH": str(pythonpath),
            "PYTHONNOUSERSITE": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins or home / "no-plugins"),
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dags)],
        cwd=dags,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_dag_imports_from_the_artifact_alone(artifact, tmp_path):
    dags = artifact / "dags"
    plugins = tmp_path / "plugins"  # MWAA unzips plugins.zip into the plugins folder
    with zipfile.ZipFile(artifact / "plugins.zip") as zf:
        zf.extractall(plugins)
    result = run_probe(dags, pythonpath=dags, home=tmp_path / "home", plugins=plugins)

    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["totes_etl", "totes_feed_sales_targets", "totes_fx", "totes_reports"]
    # The 34 tasks of the registry (schema + 11 ingests + 11 transforms + 11 loads) are there...
    assert len(EXPECTED_TASKS) == 34
    assert set(result["tasks"]) >= EXPECTED_TASKS, EXPECTED_TASKS - set(result["tasks"])
    # ...and the artifact's DAG is exactly the repository's, task for task.
    repo = run_probe(ROOT / "dags", pythonpath=ROOT, home=tmp_path / "home-repo")
    assert repo["import_errors"] == {}
    assert result["tasks"] == repo["tasks"]
    # The scheduler can create its runs: the deadline's reference comes from plugins.zip's plugin,
    # the artifact's include/; without the plugins, it could not.
    ref, _, where = result["deadline"].partition(" from ")
    assert ref == "include.deadline.RunDeadline", result["deadline"]
    assert Path(where).resolve() == (dags / "include" / "deadline.py").resolve()
    assert repo["deadline"] == "DeadlineReferenceNotRegistered"
    # The package came from the artifact, not from the repository.
    assert Path(result["include"]).resolve() == (dags / "include" / "__init__.py").resolve()
    assert Path(result["registry"]).resolve().is_relative_to(dags.resolve())
    assert not Path(result["include"]).resolve().is_relative_to(ROOT.resolve())
    # Nothing else of the repository is importable there.
    assert result["devtools"] is False
    assert result["tests"] is False
    assert result["bench"] is False
    # .airflowignore worked: the processor parsed the DAG file, not the package's modules.
    assert [Path(f).name for f in result["parsed_files"]] == ["totes_etl.py", "totes_files.py", "totes_fx.py", "totes_reports.py"]


def test_a_rebuild_removes_what_the_previous_build_left(tmp_path):
    out = tmp_path / "mwaa"
    build(ROOT, out)
    stale = out / "dags" / "old_dag.py"
    stale.write_text("# from an earlier build\n")
    (out / "dags" / "include" / "__pycache__").mkdir()
    build(ROOT, out)
    assert not stale.exists()
    assert not (out / "dags" / "include" / "__pycache__").exists()


def test_the_builder_refuses_to_empty_the_repository(tmp_path):
    with pytest.raises(ValueError, match="refusing"):
        build(ROOT, ROOT)
    with pytest.raises(ValueError, match="refusing"):
        build(ROOT, ROOT.parent)


def _fake_repo(root: Path, plugin_files: dict[str, str]) -> Path:
    (root / "dags" / "__pycache__").mkdir(parents=True)
    (root / "dags" / "etl.py").write_text("# a dag\n")
    (root / "dags" / "__pycache__" / "etl.cpython-312.pyc").write_bytes(b"\0")
    (root / "dags" / ".airflowignore").write_text("scratch/\n")
    (root / "include" / "sub").mkdir(parents=True)
    (root / "include" / "__init__.py").write_text("")
    (root / "include" / "sub" / "mod.py").write_text("X = 1\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    (root / "requirements.txt").write_text("pyarrow==25.0.0\n")
    (root / "plugins").mkdir()
    for name, text in plugin_files.items():
        (root / "plugins" / name).write_text(text)
    return root


def test_plugins_ship_as_plugins_zip_only_when_there_is_code(tmp_path):
    repo = _fake_repo(tmp_path / "repo", {"README.md": "empty on purpose", "my_macros.py": "M = 1\n"})
    files = {p.as_posix() for p in build(repo, tmp_path / "out")}
    assert files == {
        "dags/etl.py",
        "dags/.airflowignore",
        "dags/include/__init__.py",
        "dags/include/sub/mod.py",
        "requirements.txt",
        "plugins.zip",
    }
    with zipfile.ZipFile(tmp_path / "out" / "plugins.zip") as zf:
        assert zf.namelist() == ["my_macros.py"]
    # The repository's own ignore lines are kept, include/ is added.
    ignore = (tmp_path / "out" / "dags" / ".airflowignore").read_text().splitlines()
    assert "scratch/" in ignore
    assert "include/" in ignore
    # Same input, same plugins.zip bytes (a rebuild does not make a new S3 object version).
    first = (tmp_path / "out" / "plugins.zip").read_bytes()
    build(repo, tmp_path / "out")
    assert (tmp_path / "out" / "plugins.zip").read_bytes() == first

    readme_only = _fake_repo(tmp_path / "repo2", {"README.md": "empty on purpose"})
    assert "plugins.zip" not in {p.as_posix() for p in build(readme_only, tmp_path / "out2")}
