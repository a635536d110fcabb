"""The kit's structure as a user meets it: importing it changes nothing, ``create_app`` builds a
complete app, the catalog is loaded by workers rather than imported by ``project``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.cli import run_kit
from tests.support.workers import ROOT

PACKAGES = ("project", "tasks")
MAX_MODULE_LINES = 400


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importing_project_loads_neither_pillow_nor_jinja2_nor_makes_an_app() -> None:
    done = _python(
        """
        import sys, project, celery
        assert 'PIL' not in sys.modules and 'jinja2' not in sys.modules, 'catalog imported'
        assert 'app' not in vars(project), 'an app was made at import'
        assert celery.current_app.main != 'project', 'the kit became the current app'
        print('ok')
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_another_apps_shared_task_goes_to_its_own_broker_untouched(private_redis: object) -> None:
    """A process with its own Celery app (a Django project's, say) imports the kit and names
    its transport: its ``shared_task`` still goes to its own broker, with nothing of the kit's."""
    own = f"{private_redis.url.rsplit('/', 1)[0]}/5"  # type: ignore[attr-defined]
    done = _python(
        f"""
        import json
        import redis
        from celery import Celery, shared_task

        theirs = Celery("theirs", broker={own!r}, set_as_current=True)

        @shared_task(name="theirs.ping")
        def ping():
            return "pong"

        ping.delay()  # before the kit is imported: what this app sends on its own
        import project, project.broker.transport  # noqa: F401 - what must change nothing
        project.app  # the kit's app exists too, and still is not the current one
        ping.delay()

        def seen(raw):
            message = json.loads(raw)
            return {{"headers": sorted(message["headers"]),
                    "priority": message["properties"].get("priority")}}

        raw = redis.Redis.from_url({own!r}).lrange("celery", 0, -1)
        print(json.dumps([seen(m) for m in reversed(raw)]))
        """
    )
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after == before
    assert not [h for h in after["headers"] if h.startswith("kit_")]


def test_send_task_by_name_checks_arguments_without_the_catalog_or_pillow() -> None:
    done = _python(
        """
        import sys
        import project
        try:
            project.app.send_task("image:resize", kwargs={"source_path": "../etc/passwd",
                                                          "dest_path": "o.png", "width": 9})
        except project.ValidationError as exc:
            print("refused:", exc)
        assert 'PIL' not in sys.modules and 'tasks.images.tasks' not in sys.modules
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "source_path" in done.stdout


def test_a_malformed_variable_is_one_line_and_exit_code_two() -> None:
    done = run_kit("stats", env={"KIT_MAX_RETRIES": "abc"})
    assert done.returncode == 2
    assert done.stderr.startswith("kit: KIT_MAX_RETRIES='abc' is invalid")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path], *, top_level: bool) -> set[str]:
    """The kit's modules ``path`` imports (at import time only, when ``top_level``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            names.update(submodules & modules.keys())
            if not submodules <= modules.keys():  # a name defined by the module itself
                names.add(node.module)
    return {name for name in names if name in modules}


def test_no_import_cycle_among_the_kits_modules() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules, top_level=True) for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dependency in sorted(graph[name]):
            if state.get(dependency) == "open":
                cycle = [*trail[trail.index(dependency) :], dependency]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dependency not in state:
                visit(dependency, [*trail, dependency])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_project_never_imports_the_catalog() -> None:
    modules = _modules()
    offenders = {
        name: sorted(i for i in _imports(path, modules, top_level=False) if i.startswith("tasks"))
        for name, path in modules.items()
        if name.startswith("project")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_no_module_is_over_four_hundred_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert not {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}


def test_benchmarks_are_not_installed_as_a_top_level_package(tmp_path: Path) -> None:
    """``pip install -e .`` puts ``project`` and ``tasks`` on the path, not ``benchmarks``
    (a name that would shadow any other project's): it runs from the repository root only."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('benchmarks'))"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stdout + done.stderr
