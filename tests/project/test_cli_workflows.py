"""`kit batch images` and `kit workflow status` as people run them: the real CLI in a subprocess,
the suite's Redis, real workers, images generated on the spot (tests/support/images.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import states

from project.workflows.state import StepStatus
from tasks.images.cli import find_images, image_rows
from tests.support import images as gen
from tests.support.cli import run_kit
from tests.support.polling import eventually
from tests.support.workers import ROOT, WorkerProcess

StartWorker = Callable[..., WorkerProcess]
STEPS = ["image:resize", "image:watermark", "image:compress"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The image storage root, for the CLI and the workers alike (KIT_IMAGE_STORAGE_ROOT)."""
    path = tmp_path / "images"
    path.mkdir()
    return path


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "KIT_IMAGE_STORAGE_ROOT": str(root)}


def kit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, env=_env(root), timeout=240)


def _images(folder: Path, good: int, corrupt: int = 0) -> None:
    """``good`` small photos ``img<i>.png`` and ``corrupt`` undecodable ``bad<i>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(good):
        gen.save(gen.photo((96, 64)), folder / f"img{index}.png")
    for index in range(corrupt):
        (folder / f"bad{index}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)


def _worker(start_worker: StartWorker, root: Path) -> WorkerProcess:
    return start_worker(concurrency=2, env={"KIT_IMAGE_STORAGE_ROOT": str(root)})


def _status(root: Path, workflow_id: str) -> dict[str, Any]:
    done = kit(root, "workflow", "status", workflow_id, "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _finished(root: Path, workflow_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        document = _status(root, workflow_id)
        return document if document["progress"]["finished"] else None

    return eventually(finished, 180, interval=0.5)


@pytest.mark.e2e
def test_one_corrupt_image_in_six_exits_one_with_five_ok_and_one_failed(
    root: Path, start_worker: StartWorker
) -> None:
    _images(root / "in", good=5, corrupt=1)
    _worker(start_worker, root)

    done = kit(root, "batch", "images", "in", "--output-dir", "out")

    assert done.returncode == 1, done.stderr
    assert "5 ok, 1 failed; summary in out/summary.json" in done.stdout
    [bad] = [line for line in done.stdout.splitlines() if "in/bad0.png" in line]
    assert "failed" in bad and "image:resize: PermanentError" in bad
    # The live bar's last frame: 6 images x 3 steps + the summary; the bad image's 3 failed.
    assert "19/19" in done.stderr and "16 done 3 failed 0 pending" in done.stderr
    finals = sorted(p.name for p in (root / "out").glob("*.compress.jpg"))
    assert finals == [f"img{i}.compress.jpg" for i in range(5)]
    assert all((root / "out" / name).stat().st_size > 0 for name in finals)
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert (summary["processed"], summary["failed"]) == (5, 1)


@pytest.mark.e2e
def test_no_wait_prints_the_id_and_status_json_follows_it_to_finished(
    root: Path, start_worker: StartWorker
) -> None:
    _images(root / "in", good=2)
    started = kit(root, "batch", "images", "in", "--no-wait")
    assert started.returncode == 0, started.stderr
    workflow_id = started.stdout.strip()
    assert str(uuid.UUID(workflow_id)) == workflow_id  # the id alone, for scripts

    waiting = _status(root, workflow_id)  # no worker yet: nothing can have run
    assert waiting["progress"] == dict(
        done=0, failed=0, skipped=0, pending=7, total=7, finished=False
    )
    _worker(start_worker, root)
    finished = _finished(root, workflow_id)

    assert finished["kind"] == "chord" and finished["meta"]["images"] == 2
    assert (finished["progress"]["done"], finished["progress"]["failed"]) == (7, 0)
    assert [s["task"] for s in finished["steps"]] == [*STEPS, *STEPS, "batch:summary"]
    assert {s["state"] for s in finished["steps"]} == {states.SUCCESS}


@pytest.mark.e2e
def test_status_watch_follows_a_batch_to_its_end_and_says_which_step_failed_and_why(
    root: Path, start_worker: StartWorker
) -> None:
    _images(root / "in", good=1, corrupt=1)  # in/bad0.png is image 0
    workflow_id = kit(root, "batch", "images", "in", "--no-wait").stdout.strip()
    _worker(start_worker, root)

    done = kit(root, "workflow", "status", workflow_id, "--watch")

    assert done.returncode == 1, done.stderr  # a step failed
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"workflow {workflow_id} (chord), started ")
    assert "finished: 4 done, 3 failed, 0 skipped, 0 pending of 7 steps" in lines
    rows = [[cell.strip() for cell in line.split("│")][1:5] for line in lines]
    assert ["0.1", "image:watermark", "step", "FAILURE"] in rows  # named, though never run
    [failure] = [line for line in lines if line.startswith("step ")]  # not its passed-along steps
    assert failure.startswith("step 0.0 failed (") and "image:resize: PermanentError" in failure
    assert "7/7" in done.stderr  # the live bar's last frame


def test_an_unknown_workflow_id_is_one_line_and_exit_two(root: Path) -> None:
    done = kit(root, "workflow", "status", "no-such-workflow")

    assert done.returncode == 2
    assert done.stderr == (
        "kit: no workflow 'no-such-workflow': unknown, or expired "
        "(kept KIT_RESULT_EXPIRES seconds)\n"
    )


@pytest.mark.parametrize("directory", ["../outside", "{outside}", "link-out"])
def test_a_dir_outside_the_storage_root_is_refused_with_exit_two(
    root: Path, tmp_path: Path, redis: Any, directory: str
) -> None:
    outside = tmp_path / "outside"  # real images: escaping is the only thing wrong
    _images(outside, good=2)
    (root / "link-out").symlink_to(outside, target_is_directory=True)

    done = kit(root, "batch", "images", directory.format(outside=outside))

    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "storage root" in done.stderr, done.stderr
    assert not redis.keys("kit:workflow:*")  # nothing was started


def test_a_dir_without_images_is_refused_with_exit_two(root: Path, redis: Any) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "notes.txt").write_text("not an image")

    done = kit(root, "batch", "images", "docs")

    assert done.returncode == 2
    assert done.stderr.startswith("kit: no images (") and "'docs'" in done.stderr
    assert not redis.keys("kit:workflow:*")


def test_an_unknown_operation_is_refused_with_exit_two(root: Path, redis: Any) -> None:
    _images(root / "in", good=1)

    done = kit(root, "batch", "images", "in", "--ops", "resize,sharpen")

    assert done.returncode == 2
    assert done.stderr == "kit: --ops: unknown sharpen; use resize, watermark, compress\n"
    assert not redis.keys("kit:workflow:*")


def test_timeout_stops_watching_with_exit_124_and_leaves_the_workflow(root: Path) -> None:
    _images(root / "in", good=1)

    done = kit(root, "batch", "images", "in", "--timeout", "1")  # no worker: it cannot finish

    assert done.returncode == 124, done.stderr
    workflow_id = done.stdout.split()[1].rstrip(":")
    assert "not finished within 1s" in done.stderr
    assert f"kit workflow status {workflow_id}\n" in done.stderr
    assert _status(root, workflow_id)["progress"]["pending"] == 4  # still there, not cancelled


def _as_a_terminal_starts_it() -> None:
    """A shell starts a foreground command with SIGINT at its default and not blocked, so
    Python turns Ctrl-C into KeyboardInterrupt. A child inherits an ignored or blocked SIGINT,
    and Python then never sees it: in one process of the suite something had left it so (the
    command, its stack dumped, was still polling 60 s after Ctrl-C), and the test must not
    depend on what the test process inherited or did before."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.e2e
def test_ctrl_c_leaves_the_workflow_running_and_names_the_command_to_follow_it(
    root: Path, start_worker: StartWorker
) -> None:
    _images(root / "in", good=2)
    process = subprocess.Popen(
        [sys.executable, "-m", "project.cli", "batch", "images", "in"],
        cwd=ROOT,
        env={**_env(root), "PYTHONFAULTHANDLER": "1"},  # SIGABRT prints every thread's stack
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_a_terminal_starts_it,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the workflow is enqueued
        assert first.startswith("workflow "), first
        workflow_id = first.split()[1].rstrip(":")
        process.send_signal(signal.SIGINT)  # no worker: it is waiting
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # seen once under load: say where it waits
            process.send_signal(signal.SIGABRT)
            _, stacks = process.communicate(timeout=30)
            here = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))
            pytest.fail(f"Ctrl-C did not end the command in 60 s (here: {here}):\n{stacks}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, err
    assert f"kit workflow status {workflow_id}\n" in err
    assert "Traceback" not in err and "Aborted" not in err
    assert out == ""  # no summary table for work it did not see finish
    _worker(start_worker, root)
    assert _finished(root, workflow_id)["progress"]["done"] == 7  # not cancelled: it all ran


def test_find_images_lists_only_image_files_in_the_dir_as_storage_paths(root: Path) -> None:
    _images(root / "in", good=2)
    (root / "in" / "notes.txt").write_text("not an image")
    (root / "in" / ".img9.png.tmp.png").write_bytes(b"a write in progress")
    (root / "in" / "nested").mkdir()
    gen.save(gen.photo((8, 8)), root / "in" / "nested" / "deeper.png")

    assert find_images("in", root) == ["in/img0.png", "in/img1.png"]
    assert find_images("./in/", root) == ["in/img0.png", "in/img1.png"]


def test_image_rows_take_outputs_or_the_error_from_each_images_chain() -> None:
    def tolerant(path: str, state: str, result: dict[str, Any], error: str | None = None) -> Any:
        return StepStatus(f"id-{path}", "workflow:tolerant", path, "step", state, result, error)

    resized = {"task": "image:resize", "path": "out/a.resize.png", "width": 8, "height": 8}
    caught = {"task": "image:resize", "type": "PermanentError", "message": "corrupt"}
    steps = [
        tolerant("0.0", states.SUCCESS, {"path": "out/a.resize.png", "kit_steps": [resized]}),
        tolerant("1.0", states.FAILURE, {"kit_error": caught}, "PermanentError: corrupt"),
        StepStatus("id-2.0", "workflow:tolerant", "2.0", "step", states.PENDING),
        StepStatus("id-3", "batch:summary", "3", "callback", states.PENDING),
    ]

    ok, failed, waiting = image_rows(["in/a.png", "in/b.png", "in/c.png"], steps)

    assert (ok.status, ok.outputs, ok.error) == ("ok", [resized], None)
    assert (failed.status, failed.error) == ("failed", "image:resize: PermanentError: corrupt")
    assert (waiting.status, waiting.outputs) == ("pending", [])
