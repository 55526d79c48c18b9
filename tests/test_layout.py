"""The shape of the code, checked from its syntax trees.

One import package: every module imports respin's code as `respin.*`. A bare
`pipeline` or `stages` import would load a second copy of a module under another
name (two RespinError classes, two registries) wherever the checkout is on
sys.path, and would not exist at all in an installed wheel.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OWN = ("pipeline", "stages")


# What runs leave in the checkout (bench's unpacked kernel trees, work dirs): not its code.
_NOT_CODE = frozenset({"__pycache__", "_work", "_respin"})


def python_files() -> list[Path]:
    return sorted(p for d in ("pipeline", "stages", "respin", "tests", "fixtures", "bench")
                  for p in (REPO / d).rglob("*.py")
                  if not _NOT_CODE & set(p.relative_to(REPO).parts))


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_respin_code_is_imported_only_as_respin() -> None:
    bare = [f"{p.relative_to(REPO)}:{line}: {name}" for p in python_files()
            for line, name in imported(ast.parse(p.read_text(), str(p)))
            if name.split(".")[0] in OWN]
    assert python_files() and not bare, "\n".join(bare)


# Words of the domains (packages, kernels, images, networks): the engine in pipeline/
# runs stages and knows none of them; each lives in the stages that need it.
DOMAIN_WORDS = ("rpm", "rpms", "rpmbuild", "srpm", "srpms", "spec", "specfile", "koji", "mock", "kernel",
                "kernels", "initrd", "initrds", "network", "gitpython", "changelog", "kconfig", "cpio",
                "topdir", "fedora", "patch", "distgit", "dracut", "busybox", "ccache")


def test_every_file_has_one_import_name_and_one_path(tmp_path: Path) -> None:
    # The checkout holds no link into the package, and the installed respin maps its
    # subpackages to the top-level folders: `pipeline` alone is no module.
    assert not [p for p in (REPO / "respin").iterdir() if p.is_symlink()]
    probe = ("import importlib.util, respin.pipeline.errors as e, respin.stages.kernel.fetch as f\n"
             "print(e.__file__); print(f.__file__)\n"
             "print(importlib.util.find_spec('pipeline'), importlib.util.find_spec('stages'))\n")
    out = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [str(REPO / "pipeline/errors.py"), str(REPO / "stages/kernel/fetch.py"), "None None"]


def test_the_engine_names_no_domain() -> None:
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(DOMAIN_WORDS) + r")(?![\w-])", re.I)
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in sorted((REPO / "pipeline").glob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


DOMAINS = ("kernel", "initrd", "network")


def _allowed(module: str, domain: str) -> tuple[str, ...]:
    """What a module of `domain` may import of respin. Its kinds (what its stages hand each
    other) are the bottom: the engine, and the package kinds every domain shares
    (stages/lib/packages.py). Its helpers (lib/): the engine, the shared
    helpers, each other and the kinds. Its stages and command: all of those. Nothing of
    another domain, and no module imports a stage."""
    if module.endswith(".kinds"):
        return ("respin.pipeline", "respin.stages.lib.packages")
    return ("respin.pipeline", "respin.stages.lib", f"respin.stages.{domain}.lib",
            f"respin.stages.{domain}.kinds")


def test_imports_point_one_way_inside_each_domain() -> None:
    wrong = []
    for domain in DOMAINS:
        for path in sorted((REPO / "stages" / domain).rglob("*.py")):
            rel = path.relative_to(REPO / "stages").with_suffix("")
            module = "respin.stages." + ".".join(p for p in rel.parts if p != "__init__")
            allowed = _allowed(module, domain)
            for line, name in imported(ast.parse(path.read_text(), str(path))):
                if name == "respin" or not name.startswith("respin."):
                    continue
                if not any(name == a or name.startswith(a + ".") for a in allowed) \
                        and name != f"respin.stages.{domain}":
                    wrong.append(f"{path.relative_to(REPO)}:{line}: {module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_each_domain_keeps_stages_at_its_top_and_helpers_in_lib() -> None:
    from respin.pipeline import registry

    for info in registry.stages().values():
        module = info.cls.__module__
        if info.origin != "respin":
            continue
        domain = module.split(".")[2]
        # One module per stage, named after it (initrd-pack -> respin.stages.initrd.pack).
        assert module == f"respin.stages.{domain}.{info.name.removeprefix(domain + '-')}", module
    for domain in DOMAINS:
        top = {p.stem for p in (REPO / "stages" / domain).glob("*.py")} - {"__init__", "cli", "kinds"}
        stages = {i.name.removeprefix(domain + "-") for i in registry.stages().values()
                  if i.cls.__module__.startswith(f"respin.stages.{domain}.")}
        assert top == stages, f"stages/{domain}: modules that are not stages belong in lib/: {top - stages}"


def test_no_stage_option_is_untyped() -> None:
    import typing

    from respin.pipeline import registry

    def untyped(tp: object) -> bool:
        if tp is typing.Any:
            return True
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            return any(untyped(t) for t in typing.get_type_hints(tp).values())
        return any(untyped(arg) for arg in typing.get_args(tp))

    loose = [f"{name}.{key}" for name, info in registry.stages().items() if info.origin == "respin"
             for key, tp in typing.get_type_hints(info.cls.Options).items() if untyped(tp)]
    assert registry.stages() and not loose, loose


def test_the_api_names_what_it_offers_and_the_description_is_pyprojects() -> None:
    import tomllib

    import respin

    for name in respin.__all__:
        assert getattr(respin, name) is not None, name
    description = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["description"]
    assert description + "." == respin.DESCRIPTION
