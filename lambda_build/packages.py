"""`make package`: the Lambda artifacts deployed to AWS, built for the runtime they run on.

Each function gets a folder (the template's CodeUri, which `sam build` copies) and the same
content as a zip. Our sources come from this checkout; third-party packages are wheels for
python3.11 on x86_64 with glibc <= 2.26, resolved by pip from pyproject's own requirement
specifiers, without the packages the runtime already provides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lambda_build.contents import (
    FUNCTIONS,
    LAMBDA_UNZIPPED_LIMIT,
    PROJECT_ROOT,
    ZIP_EPOCH,
    FunctionPackage,
    source_files,
)

# The python3.11 runtime runs on Amazon Linux 2, whose glibc is 2.26 (Lambda runtimes table,
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html): manylinux wheels up to 2_26.
PYTHON_VERSION = "3.11"
PLATFORMS = ("manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 27)))
# Installed in every Python runtime; bundling them would only shadow the runtime's own copies.
RUNTIME_PROVIDED = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
)
# Test suites that some wheels ship inside the package; nothing imports them at run time.
BUNDLED_TEST_DIRS = frozenset({"tests", "test"})


class PackagingError(RuntimeError):
    """pip could not resolve or install the function's dependencies, or a limit is exceeded."""


@dataclass(frozen=True)
class BuiltPackage:
    function: FunctionPackage
    zip_bytes: int
    unzipped_bytes: int
    distributions: dict[str, str]  # name -> version, as installed


def project_specifiers(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """pyproject.toml's dependencies by canonical name: one place says which versions we accept."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): str(r) for r in requirements}


def _pip(args: Sequence[str]) -> None:
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
        *platform_args, *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackagingError(f"pip install {' '.join(args)}:\n{done.stderr[-3000:]}")


def resolve(requirements: Iterable[str], scratch: Path) -> dict[str, str]:
    """What pip would install for the Lambda platform, minus what the runtime provides."""
    report = scratch / "report.json"
    _pip(
        [
            "--dry-run",
            "--ignore-installed",
            "--target",
            str(scratch / "t"),
            "--report",
            str(report),
            *requirements,
        ]
    )
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    return {name: version for name, version in sorted(resolved.items()) if name not in RUNTIME_PROVIDED}


def _copy_sources(sources: Sequence[str], root: Path, folder: Path) -> None:
    for file in source_files(sources, root):
        target = folder / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)


def _drop_bundled_tests(folder: Path) -> None:
    for directory in sorted(folder.rglob("*"), reverse=True):
        if directory.is_dir() and (directory.name in BUNDLED_TEST_DIRS or directory.name == "__pycache__"):
            shutil.rmtree(directory)


def write_zip(folder: Path, destination: Path) -> int:
    """Same folder, same bytes: names sorted, timestamps fixed, file modes kept."""
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), ZIP_EPOCH)
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return destination.stat().st_size


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build_package(function: FunctionPackage, build: Path, root: Path = PROJECT_ROOT) -> BuiltPackage:
    specifiers = project_specifiers(root)
    unknown = [r for r in function.requirements if canonicalize_name(r) not in specifiers]
    if unknown:
        raise PackagingError(f"{function.name} needs {unknown}, which pyproject.toml does not list")
    folder = function.folder(build)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        pinned = resolve((specifiers[canonicalize_name(r)] for r in function.requirements), Path(scratch))
    _pip(["--no-deps", "--target", str(folder), *(f"{name}=={version}" for name, version in pinned.items())])
    _drop_bundled_tests(folder)
    _copy_sources(function.sources, root, folder)
    (folder / "requirements.lock.txt").write_text("".join(f"{n}=={v}\n" for n, v in pinned.items()))
    zip_bytes = write_zip(folder, function.zip_path(build))
    built = BuiltPackage(function, zip_bytes, folder_size(folder), pinned)
    check_limits(built)
    return built


def check_limits(built: BuiltPackage) -> None:
    name = built.function.name
    if built.unzipped_bytes > LAMBDA_UNZIPPED_LIMIT:
        raise PackagingError(f"{name}: {built.unzipped_bytes:,} bytes unzipped, over Lambda's 250 MB")
    if built.function.zip_limit is not None and built.zip_bytes > built.function.zip_limit:
        raise PackagingError(f"{name}: zip of {built.zip_bytes:,} bytes, over {built.function.zip_limit:,}")


def main() -> None:
    build = PROJECT_ROOT / "build"
    for function in FUNCTIONS:
        try:
            built = build_package(function, build)
        except PackagingError as exc:
            sys.exit(f"error: {exc}")
        print(
            f"{function.zip_path(build)}: {built.zip_bytes / 1e6:.1f} MB zipped, "
            f"{built.unzipped_bytes / 1e6:.1f} MB unzipped, {len(built.distributions)} distributions"
        )


if __name__ == "__main__":
    main()
