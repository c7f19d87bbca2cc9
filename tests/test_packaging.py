"""The package as the container image installs it (non-editable, from a wheel) serves everything: the chat page,
its script and the API. An editable install reads files from the source tree and hides a file left out of the
package data; this test runs the wheel's copy only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from kb.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline and installed into a folder of its own."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # built from a copy: a build leaves build/ and *.egg-info beside its sources
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "var", "index", "corpus", "bench", "docs", "tests", "deploy"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist"), str(source)], check=True, cwd=root)
    [wheel] = (root / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(root / "site"),
                    str(wheel)], check=True, cwd=root)
    return root


def test_the_wheel_holds_every_file_the_product_reads_at_run_time(installed: Path) -> None:
    [wheel] = (installed / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(PROJECT_ROOT).as_posix() for folder in ("server/web", "kb/search/rankers", "kb/answers/answer_models",
                                                                     "kb/embedding/model/tuned")
              for p in (PROJECT_ROOT / folder).iterdir() if p.is_file()]
    assert needed and not [n for n in needed + ["kb/answers/safety_phrasings.json"] if n not in names]


def test_the_installed_package_serves_the_page_and_answers(installed: Path, corpus_index: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(installed / "site"), "KB_INDEX": str(corpus_index),
           "KB_QUERY_LOG": str(installed / "querylog.sqlite")}
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=installed, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else "exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the installed server never became ready"
            time.sleep(0.5)
        page, script = httpx.get(f"{url}/"), httpx.get(f"{url}/static/app.js")
        answer = httpx.post(f"{url}/api/ask", json={"question": "信访事项多长时间办结？"}, timeout=60)
        assert (page.status_code, script.status_code, answer.status_code) == (200, 200, 200)
        assert "<html" in page.text and answer.json()["citations"]
        where = subprocess.run([sys.executable, "-c", "import server.web as w; print(w.WEB_DIR)"], cwd=installed,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        assert where.startswith(str(installed / "site")), "the installed copy served, not the source tree"
    finally:
        server.terminate()
        server.wait(30)
