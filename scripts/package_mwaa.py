"""Build exactly what is uploaded to the MWAA source bucket, into dist/mwaa/ (or --output).

    .venv/bin/python scripts/package_mwaa.py [--output dist/mwaa]      (make package)

The artifact mirrors the bucket:

    dags/<every DAG file of dags/>      totes_etl.py
    dags/.airflowignore                 dags/.airflowignore if any, plus "include/"
    dags/include/**                     the include package (no __pycache__, no *.pyc)
    requirements.txt                    what MWAA pip-installs (pins = Airflow 3.3.1's constraints)
    plugins.zip                         only when plugins/ holds more than its README

On MWAA the DAGs folder is on sys.path, so `import include` finds dags/include/ exactly as it
finds the repository root locally; .airflowignore keeps the DAG processor out of the package.
Nothing else ships: no tests, no devtools, no bench, no scripts. The deploy workflow runs
`aws s3 sync <output>/dags s3://<bucket>/dags --delete`; terraform/mwaa uploads
requirements.txt itself (MWAA needs its object version).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}
PLUGINS_NOT_SHIPPED = {"README.md"}
# Zip entries get a fixed timestamp so the same plugins give the same bytes (and S3 version).
ZIP_EPOCH = (2024, 1, 1, 0, 0, 0)


def _shippable(path: Path, base: Path) -> bool:
    rel = path.relative_to(base)
    return path.is_file() and not (IGNORED_PARTS & set(rel.parts)) and path.suffix not in IGNORED_SUFFIXES


def _files(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*") if _shippable(p, base))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def airflowignore(root: Path) -> str:
    """The DAGs folder's .airflowignore: the repository's lines (if any) and include/."""
    existing = root / "dags" / ".airflowignore"
    lines = existing.read_text().splitlines() if existing.is_file() else []
    if "include/" not in (line.strip() for line in lines):
        lines += ["# the pipeline package, imported as `include`: not DAG files", "include/"]
    return "\n".join(lines) + "\n"


def build(root: Path = ROOT, output: Path = ROOT / "dist" / "mwaa") -> list[Path]:
    """Write the artifact into ``output`` (emptied first); return its files, relative."""
    if output.resolve() in (root.resolve(), *root.resolve().parents):
        raise ValueError(f"refusing to empty {output}: it holds the repository")
    if output.exists():
        shutil.rmtree(output)
    dags_out = output / "dags"
    dags_out.mkdir(parents=True)

    for src in _files(root / "dags"):
        rel = src.relative_to(root / "dags")
        if rel.parts[0] == "include" or rel.name == ".airflowignore":
            continue  # include/ comes from the package itself; .airflowignore is written below
        _copy(src, dags_out / rel)
    (dags_out / ".airflowignore").write_text(airflowignore(root))

    include = root / "include"
    if not (include / "__init__.py").is_file():
        raise FileNotFoundError(f"{include} is not a package")
    for src in _files(include):
        _copy(src, dags_out / "include" / src.relative_to(include))

    _copy(root / "requirements.txt", output / "requirements.txt")

    plugins = [p for p in _files(root / "plugins") if p.relative_to(root / "plugins").as_posix() not in PLUGINS_NOT_SHIPPED]
    if plugins:
        with zipfile.ZipFile(output / "plugins.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for src in plugins:
                info = zipfile.ZipInfo(src.relative_to(root / "plugins").as_posix(), date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, src.read_bytes())

    return sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "mwaa", help="artifact folder (emptied first)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    files = build(args.root, args.output)
    for f in files:
        print(f.as_posix())
    print(f"{len(files)} files in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
