"""What issue 23 asks of the HTTP service under abuse and breakage, each figure beside a baseline of the same run.

    python -m bench.abuse [--seconds 30] [--smoke]

Every part starts a real `kb serve` on 127.0.0.1 (the default index, ./index; `kb ingest` builds it if missing)
as a subprocess with its own environment, waits for /readyz and stops it afterwards. The server believes
X-Forwarded-For from 127.0.0.1 (KB_TRUSTED_PROXIES), so each simulated client has its own address. The load
generator runs on the same cores as the server, as in bench.latency. `--smoke` is a quick check of the script
itself (fewer questions, 5 s of load) and writes no result; the full run writes bench/results/abuse.json.

The embedder remembers the vectors of its last 256 questions (kb.embedding.embedder.RECENT_QUESTIONS), and a remembered
question is answered several times faster than a new one (about 10 ms instead of 80 ms here). A citizen's question is new, so before every round of the victim the
server is made to forget (256 searches of corpus snippets), and the load clients never repeat a question.

1. victim_attacker: one victim asks ~20 plain training questions one after another (a fresh address per round,
   so its own rate limit never refuses it), alone and then while an attacker (one other address, 2 threads)
   sends follow-ups with maximal histories (10 distinct 490-character items, new each time) at the allowed
   request rate (KB_RATE_PER_MINUTE's default, 60 a minute: what a client within the limit may send; a flood
   beyond it is the proxy's to stop, deploy/nginx.conf). Server rate limits at their defaults. Figures: victim p50/p95 both ways, loaded/unloaded p95 ratio
   (target <= 2), the attacker's status counts. The rate limit charges a long history what it costs, so the
   attacker should see mostly 429s. To tell what slows the victim, its loaded requests are also split by
   whether one of the attacker's answered (200) requests was in flight meanwhile, and the CPU seconds this
   process (the load generator) and the server used during the attack are given.
2. locked_log: the victim's p95 while another sqlite3 connection holds BEGIN EXCLUSIVE on the question log,
   against unlocked just before (target: ratio <= 1.2). Also: how long /readyz took to report the log down,
   what feedback answered meanwhile, how long the queued records took to be written once the lock went.
3. pii: every variant of bench/data/pii/pii_variants.jsonl holding personal data is asked via /api/ask and sent
   as the comment of feedback on that answer; once /readyz (admin key) shows nothing pending, every text value
   of the SQLite file is read, its digits normalised (full-width and Chinese numerals to ASCII, separators of
   up to three characters between digits removed; a mask of four stars stays a break) and searched for any
   8-digit window of the variant's number (whole file), for a mobile also its hidden middle four digits next to
   a kept neighbour (in the variant's own rows), for an e-mail its address. Figures: variants, leaked (target 0).
   The server's own output (its logs) is searched the same way.
4. broken_log: start-up with KB_QUERY_LOG (a) under a parent that is a regular file, (b) a file of garbage
   bytes, (c) a valid log made immutable with `chattr +i`, so SQLite opens it read-only and a write fails with
   "attempt to write a readonly database" (root ignores file modes; skipped when chattr is refused). Figures:
   whether the server starts, /api/ask's status, /readyz's query_log.ok (target: 200 and false).
5. load: 8 clients, each its own address and its own questions (from the training and fitting files, none
   asked twice), closed loop for --seconds, rate limits lifted; requests, errors (non-2xx other than 429, and
   transport failures), req/s, p50/p95 of every response, beside one client's unloaded p50/p95 on other
   questions of the same files, on the same server just before.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import httpx

from bench.common import percentiles, write_result
from bench.services import free_port, wait_ready
from kb.config import PROJECT_ROOT
from kb.embedding.embedder import RECENT_QUESTIONS
from server.querylog import QueryLog
from server.settings import ServerSettings

DATA = PROJECT_ROOT / "bench" / "data"
PII_VARIANTS = DATA / "pii" / "pii_variants.jsonl"
ADMIN_KEY = "bench-abuse-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Rate limits no client of parts 3 and 5 reaches: those parts measure masking and throughput, not the limiter.
HIGH_RATE = {"KB_RATE_PER_MINUTE": "1000000", "KB_RATE_BURST": "1000000"}
HISTORY_ITEMS, HISTORY_CHARS = 10, 490
ATTACKER_THREADS = 2
#: The attacker's pace: the service's default rate limit, requests per second (KB_RATE_PER_MINUTE = 60).
ALLOWED_RATE = 60 / 60
LOAD_FILES = ("train_local.jsonl", "near_domain_fit.jsonl", "abstention_calibration.jsonl", "switch_fit.jsonl",
              "followup_fit.jsonl", "followup3_fit.jsonl")
FOLLOW_UPS = ("那要是对处理意见不满意呢？", "那这个期限从哪天开始算？", "那需要准备哪些材料？", "他们不办怎么办？")
#: Digits as a citizen may type them, read as ASCII for the leak scan (full-width, Chinese numerals, capitals).
DIGITS = {**dict(zip("０１２３４５６７８９", "0123456789", strict=True)),
          **dict(zip("〇零一幺二两三四五六七八九", "0011223456789", strict=True)),
          **dict(zip("壹贰叁肆伍陆柒捌玖", "123456789", strict=True)), "Ｘ": "X", "ｘ": "X", "x": "X"}
#: What may stand between two digits of one number (kb/text/personal.py's separators; "*" too, once to three times:
#: a mask of four stars, 138****8000, stays a break).
SEPARATOR_RUN = re.compile(r"(?<=[0-9])[\s\-—–‐‑−﹣－*＊/／·・･、.．_＿]{1,3}(?=[0-9X])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]+")


# -- servers ------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    base: str
    process: subprocess.Popen
    output: Path
    ready_s: float


def server_defaults() -> dict[str, str]:
    """The service's own settings as documented (what parts 1-2 run with, unless overridden)."""
    return {f.metadata["env"]: f.metadata["default"] for f in fields(ServerSettings) if "env" in f.metadata}


def server_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's own settings (so defaults hold), plus `overrides`."""
    ours = set(server_defaults())
    return {**{k: v for k, v in os.environ.items() if k not in ours}, "KB_TRUSTED_PROXIES": "127.0.0.1",
            "KB_ADMIN_KEY": ADMIN_KEY, **overrides}


def kb_command() -> list[str]:
    """`kb` of this virtual environment (what an operator runs), or the same entry point through -m."""
    script = Path(sys.executable).with_name("kb")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.main"]


@contextmanager
def running_server(workdir: Path, name: str, env: dict[str, str], ready_limit_s: float = 300) -> Iterator[Server]:
    """`kb serve` on a free port until the block ends; RuntimeError (with its output's tail) if it never gets ready."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = workdir / f"server-{name}.out"
    with output.open("wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen([*kb_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=server_env(env), cwd=PROJECT_ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        try:
            ready_s = wait_ready(base, process, ready_limit_s) + (time.perf_counter() - started)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {tail(output)}") from None
        yield Server(base, process, output, round(ready_s, 1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/PID/stat, fields 14 and 15, in clock ticks)."""
    fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / os.sysconf("SC_CLK_TCK")


def tail(path: Path, chars: int = 600) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.is_file() else ""


def xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def query_log_health(base: str) -> dict:
    """/readyz's query_log with the admin key: ok, pending, written, failed_writes, dropped, last_error, path."""
    return httpx.get(base + "/readyz", headers=ADMIN, timeout=30).json()["query_log"]


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> float | None:
    """Seconds until `predicate()` held, or None if it did not within `timeout_s`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if predicate():
            return round(time.perf_counter() - started, 1)
        time.sleep(interval_s)
    return None


def warm_up(base: str, questions: list[str]) -> None:
    """The first answers of a fresh process are slow (lazy imports, thread pools): not part of any baseline."""
    with httpx.Client(base_url=base, timeout=60) as http:
        for n, question in enumerate(questions):
            http.post("/api/ask", json={"question": question}, headers=xff(f"10.9.9.{n % 250}"))


# -- question sets ------------------------------------------------------------------------------------------------


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def question_sets(victims: int) -> tuple[list[str], list[str]]:
    """(the victim's questions: training questions spread over the documents; every other question of the
    training and fitting files, earlier turns of conversations included, for the load). Never the ../shared eval
    questions, nor the *_check files."""
    train = [item["q"] for item in jsonl(DATA / "train_local.jsonl")]
    chosen = train[::max(1, len(train) // victims)][:victims]
    others: dict[str, None] = {}
    for name in LOAD_FILES:
        for item in jsonl(DATA / name):
            others |= dict.fromkeys([*item.get("history", []), item["q"]])
    return chosen, [q for q in others if q not in chosen]


def corpus_text() -> str:
    """The corpus' documents run together without spacing: text the attacker cuts its history items from."""
    documents = sorted(p for p in (PROJECT_ROOT / "corpus").glob("*.md") if p.name != "SOURCES.md")
    text = "".join(path.read_text(encoding="utf-8") for path in documents)
    return re.sub(r"[\s#>*|]+", "", text)


def cache_fillers(text: str) -> list[str]:
    """As many distinct strings as the embedder keeps recent question vectors (kb.embedding.embedder.RECENT_QUESTIONS)."""
    fillers = list(dict.fromkeys(text[i * 131:i * 131 + 24] for i in range(2 * RECENT_QUESTIONS)))
    return fillers[:RECENT_QUESTIONS]


def evict_question_vectors(base: str, fillers: list[str]) -> None:
    """Search every filler, so that the embedder's recent-question memory holds nothing else: a question asked
    after this is embedded again, as a citizen's new question is. Without it a repeated question skips the
    embedding (most of its cost) and a baseline of repeats is no baseline. Each search from its own address, so
    that no rate limit refuses one."""
    with httpx.Client(base_url=base, timeout=120) as http:
        for n, filler in enumerate(fillers):
            http.get("/api/search", params={"q": filler, "top_k": 1}, headers=xff(f"10.77.{n // 250}.{n % 250}"))


class Histories:
    """Maximal histories, each item distinct from every other sent (a new window of the corpus each time)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._counter = itertools.count()  # next() on it is atomic under the GIL: safe across attacker threads

    def next(self) -> tuple[str, list[str]]:
        n = next(self._counter)
        span = len(self._text) - HISTORY_CHARS
        starts = [((n * HISTORY_ITEMS + i) * 7919) % span for i in range(HISTORY_ITEMS)]
        return FOLLOW_UPS[n % len(FOLLOW_UPS)], [self._text[s:s + HISTORY_CHARS] for s in starts]


# -- 1 and 2: the victim ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    started: float
    ended: float
    status: int

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


def victim_samples(base: str, questions: list[str], address_prefix: str, rounds: int,
                   before_round: Callable[[], None]) -> list[Sample]:
    """One citizen asking its questions one after another, `before_round()` before each round (making the server
    forget the questions, evict_question_vectors); a fresh address per round (a.b.c.round), so that its own rate
    limit never refuses it: what is measured is what other clients and the log cost it."""
    samples: list[Sample] = []
    with httpx.Client(base_url=base, timeout=120) as http:
        for r in range(rounds):
            before_round()
            for question in questions:
                started = time.perf_counter()
                response = http.post("/api/ask", json={"question": question}, headers=xff(f"{address_prefix}.{r}"))
                samples.append(Sample(started, time.perf_counter(), response.status_code))
    return samples


def summary(samples: list[Sample]) -> dict:
    """Requests, their statuses, and p50/p95/p99 of the answered (200) ones."""
    statuses = Counter(s.status for s in samples)
    return {"requests": len(samples), "statuses": dict(sorted(statuses.items())),
            **percentiles([s.ms for s in samples if s.status == 200])}


def victim(base: str, questions: list[str], address_prefix: str, rounds: int, fillers: list[str]) -> dict:
    return summary(victim_samples(base, questions, address_prefix, rounds,
                                  lambda: evict_question_vectors(base, fillers)))


class Attacker:
    """`threads` loops, one client address, sending follow-ups with maximal histories at ALLOWED_RATE in all,
    while resumed; paused while the bench prepares a round (not measured). Keeps when
    each answered (200) request was in flight, to tell what slowed the victim: the answers the rate limit let
    through, or the flood of refusals."""

    def __init__(self, server: Server, address: str, histories: Histories, threads: int) -> None:
        self._server = server
        self._base, self._address, self._histories = server.base, address, histories
        self._stop = threading.Event()
        self._go = threading.Event()
        self._changed = threading.Condition()
        self._in_flight = 0
        self._next_at = 0.0  # when the next request may go (ALLOWED_RATE over all threads)
        self.statuses: Counter[str] = Counter()
        self.answered: list[Sample] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        #: While attacking (pauses excluded): wall seconds, CPU seconds of this process (the attacker's threads,
        #: and the victim's) and of the server: the load generator shares the server's cores.
        self.seconds = self.bench_cpu_s = self.server_cpu_s = 0.0
        self._since: tuple[float, float, float] | None = None

    def __enter__(self) -> "Attacker":
        """Threads started, paused: `resume()` starts the attack."""
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.pause()
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join()

    def resume(self) -> None:
        self._since = (time.perf_counter(), time.process_time(), cpu_seconds(self._server.process.pid))
        self._go.set()

    def pause(self) -> None:
        """Stop sending; returns once no request is in flight."""
        self._go.clear()
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0)
        if self._since is not None:
            wall, bench, server = self._since
            self.seconds += time.perf_counter() - wall
            self.bench_cpu_s += time.process_time() - bench
            self.server_cpu_s += cpu_seconds(self._server.process.pid) - server
            self._since = None

    def _run(self) -> None:
        with httpx.Client(base_url=self._base, timeout=120, headers=xff(self._address)) as http:
            while True:
                self._go.wait()
                with self._changed:
                    if self._stop.is_set():
                        return
                    if not self._go.is_set():  # paused between the wait and here
                        continue
                    wait = self._next_at - time.perf_counter()
                    if wait > 0:
                        self._changed.wait(wait)
                        continue
                    self._next_at = time.perf_counter() + 1 / ALLOWED_RATE
                    self._in_flight += 1
                question, history = self._histories.next()
                started = time.perf_counter()
                try:
                    status = str(http.post("/api/ask", json={"question": question, "history": history}).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._changed:
                    self.statuses[status] += 1
                    if status == "200":
                        self.answered.append(Sample(started, time.perf_counter(), 200))
                    self._in_flight -= 1
                    self._changed.notify_all()

    def figures(self) -> dict:
        sent = sum(self.statuses.values())
        return {"threads": len(self._threads), "requests": sent, "seconds": round(self.seconds, 1),
                "rps": round(sent / max(self.seconds, 1e-9), 1), "statuses": dict(sorted(self.statuses.items())),
                "cpu_s": {"bench_process": round(self.bench_cpu_s, 1), "server": round(self.server_cpu_s, 1)}}


def ratio(loaded: dict, unloaded: dict, key: str = "p95") -> float:
    return round(loaded[key] / unloaded[key], 2) if unloaded[key] else float("nan")


def victim_vs_attacker(server: Server, questions: list[str], rounds: int, fillers: list[str],
                       histories: Histories) -> dict:
    unloaded = victim(server.base, questions, "10.1.0", rounds, fillers)
    with Attacker(server, "10.66.0.1", histories, ATTACKER_THREADS) as attacker:

        def between_rounds() -> None:
            attacker.pause()
            evict_question_vectors(server.base, fillers)
            attacker.resume()
            time.sleep(1.0)  # the attack under way again before the victim asks

        samples = victim_samples(server.base, questions, "10.1.1", rounds, between_rounds)
    loaded = summary(samples)

    def overlaps(sample: Sample) -> bool:
        return any(a.started < sample.ended and sample.started < a.ended for a in attacker.answered)

    return {"unloaded": unloaded, "loaded": loaded, "p95_ratio": ratio(loaded, unloaded), "target_p95_ratio": 2.0,
            "attacker": attacker.figures(),
            "loaded_beside_an_answered_attack": summary([s for s in samples if overlaps(s)]),
            "loaded_beside_refusals_only": summary([s for s in samples if not overlaps(s)])}


def locked_log(server: Server, log_path: Path, questions: list[str], rounds: int, fillers: list[str]) -> dict:
    """The victim with the log file locked by another process, against unlocked just before."""
    unlocked = victim(server.base, questions, "10.2.0", rounds, fillers)
    holder = sqlite3.connect(log_path, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        locked = victim(server.base, questions, "10.2.1", rounds, fillers)
        with httpx.Client(base_url=server.base, timeout=60, headers=xff("10.2.2.1")) as http:
            answer = http.post("/api/ask", json={"question": questions[0]}).json()
            feedback = http.post("/api/feedback", json={"question_id": answer["question_id"], "helpful": True})
        # The writer waits its busy timeout (10 s) before a write fails: does /readyz then say so?
        noticed_s = wait_until(lambda: not query_log_health(server.base)["ok"], 20)
        during = query_log_health(server.base)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    drained_s = wait_until(lambda: (h := query_log_health(server.base))["ok"] and h["pending"] == 0, 90)
    after = query_log_health(server.base)
    return {"unlocked": unlocked, "locked": locked, "p95_ratio": ratio(locked, unlocked), "target_p95_ratio": 1.2,
            "feedback_status_while_locked": feedback.status_code,
            "readyz_reported_down_after_s": noticed_s,
            "while_locked": {k: during[k] for k in ("ok", "pending", "failed_writes", "last_error")},
            "written_after_release_s": drained_s,
            "after_release": {k: after[k] for k in ("ok", "pending", "written", "dropped")}}


# -- 3: personal data in the log ----------------------------------------------------------------------------------


def digits_of(text: str) -> str:
    """Text as the leak scan reads it: every way of writing a digit as ASCII, separators inside numbers removed."""
    return SEPARATOR_RUN.sub("", "".join(DIGITS.get(c, c) for c in text))


def email_of(text: str) -> str | None:
    found = EMAIL.search(unicodedata.normalize("NFKC", text).replace("。", "."))
    return found.group(0).casefold() if found else None


def stored_texts(log_path: Path) -> list[tuple[str, str | None, str]]:
    """(table.column, question_id, value) of every text value in the log file, read through a read-only
    connection while the server keeps the file open."""
    db = sqlite3.connect(f"file:{log_path}?mode=ro", uri=True, timeout=30)
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = []
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                values = dict(zip(columns, row, strict=True))
                question_id = values.get("question_id")
                found += [(f"{table}.{c}", question_id, v) for c, v in values.items() if isinstance(v, str)]
        return found
    finally:
        db.close()


def leaks_of(variant: dict, own: list[tuple[str, str]], everywhere: list[tuple[str, str]]) -> list[dict]:
    """Where `variant`'s number can be read back. `own` and `everywhere`: (where, digits_of(text)) of the variant's
    own rows and of the whole file."""
    number = variant["digits"].upper()
    found = []
    if len(number) >= 8:
        windows = {number[i:i + 8] for i in range(len(number) - 7)}
        found += [{"where": where, "match": w} for where, text in everywhere for w in windows if w in text]
    if variant["kind"] == "mobile":  # kept: the first 3 and last 4; hidden: the 4 between, next to a neighbour
        for piece in (number[2:7], number[3:8]):
            found += [{"where": where, "match": piece} for where, text in own if piece in text]
    if variant["kind"] == "email" and (address := email_of(variant["text"])):
        found += [{"where": where, "match": address} for where, text in everywhere
                  if address in unicodedata.normalize("NFKC", text).replace("。", ".").casefold()]
    return found


def pii(server: Server, log_path: Path, variants: list[dict]) -> dict:
    """Every variant asked and sent as feedback; then the whole log file searched for its number."""
    ids: dict[str, int] = {}
    statuses: Counter[str] = Counter()
    with httpx.Client(base_url=server.base, timeout=120, headers=xff("10.3.0.1")) as http:
        for n, variant in enumerate(variants):
            response = http.post("/api/ask", json={"question": variant["text"]})
            statuses[f"ask {response.status_code}"] += 1
            if response.status_code != 200:
                continue
            question_id = response.json()["question_id"]
            ids[question_id] = n
            response = http.post("/api/feedback", json={"question_id": question_id, "helpful": False,
                                                        "comment": variant["text"]})
            statuses[f"feedback {response.status_code}"] += 1
    written_s = wait_until(lambda: query_log_health(server.base)["pending"] == 0, 60)
    rows = stored_texts(log_path)
    everywhere = [(f"{where} {qid or ''}".strip(), digits_of(text)) for where, qid, text in rows]
    own: dict[int, list[tuple[str, str]]] = {}
    for where, qid, text in rows:
        if qid in ids:
            own.setdefault(ids[qid], []).append((where, digits_of(text)))
    output = [("server output", digits_of(server.output.read_text(encoding="utf-8", errors="replace")))]
    leaked, in_output = [], []
    for n, variant in enumerate(variants):
        if found := leaks_of(variant, own.get(n, []), everywhere):
            leaked.append({"text": variant["text"], "kind": variant["kind"], "form": variant["form"],
                           "found": found[:3]})
        if leaks_of(variant, [], output):
            in_output.append(variant["text"])
    logged = Counter(where.split(".")[0] for where, qid, _ in rows if qid in ids and where.endswith("question_id"))
    return {"variants": len(variants), "by_kind": dict(Counter(v["kind"] for v in variants)),
            "statuses": dict(sorted(statuses.items())), "log_written_s": written_s,
            "rows": {"questions": logged["questions"], "feedback": logged["feedback"]},
            "leaked": len(leaked), "leaks": leaked, "leaked_in_server_output": in_output, "target_leaked": 0}


# -- 4: a broken log at start-up ----------------------------------------------------------------------------------


def broken_log_case(workdir: Path, name: str, log_path: Path, question: str) -> dict:
    """Does a server whose log cannot be used start, answer, and say so on /readyz?"""
    try:
        with running_server(workdir, name, {"KB_QUERY_LOG": str(log_path)}) as server:
            ask = httpx.post(server.base + "/api/ask", json={"question": question}, timeout=120)
            wait_until(lambda: not query_log_health(server.base)["ok"], 10)
            public = httpx.get(server.base + "/readyz", timeout=30)
            health = query_log_health(server.base)
            return {"started": True, "ready_s": server.ready_s, "ask_status": ask.status_code,
                    "readyz_status": public.status_code, "query_log_ok": public.json()["query_log"]["ok"],
                    "last_error": health.get("last_error"), "pending": health.get("pending"),
                    "pass": ask.status_code == 200 and public.json()["query_log"]["ok"] is False}
    except RuntimeError as exc:
        return {"started": False, "error": str(exc), "pass": False}


def broken_logs(workdir: Path, question: str) -> dict:
    cases: dict[str, dict] = {}
    # (a) the log's folder cannot be created: its parent is a regular file.
    blocker = workdir / "not-a-folder"
    blocker.write_text("a file where the log's folder should be\n")
    cases["a_parent_is_a_file"] = broken_log_case(workdir, "a", blocker / "querylog.sqlite", question)
    # (b) a file that is no database; the server must leave it as it found it.
    garbage = workdir / "garbage.sqlite"
    content = bytes((n * 37 + 11) % 256 for n in range(8192))
    garbage.write_bytes(content)
    cases["b_garbage_file"] = broken_log_case(workdir, "b", garbage, question)
    cases["b_garbage_file"]["file_untouched"] = garbage.read_bytes() == content
    # (c) a valid log that cannot be written: immutable, so SQLite opens it read-only even for root.
    frozen = workdir / "readonly.sqlite"
    QueryLog.open(frozen).close()
    chattr = shutil.which("chattr")
    made = chattr and subprocess.run([chattr, "+i", str(frozen)], capture_output=True).returncode == 0
    if not made:
        cases["c_read_only"] = {"skipped": "chattr +i not available or refused here (root ignores file modes, so "
                                           "chmod cannot make the file read-only)"}
        return cases
    try:
        cases["c_read_only"] = broken_log_case(workdir, "c", frozen, question)
    finally:
        subprocess.run([chattr, "-i", str(frozen)], check=True)
    return cases


# -- 5: load ------------------------------------------------------------------------------------------------------


def load(base: str, questions: list[str], clients: int, seconds: float) -> dict:
    """`clients` closed-loop clients, each its own address and its own questions, until `seconds` have passed."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        mine = questions[n::clients]
        with httpx.Client(base_url=base, timeout=120, headers=xff(f"10.5.1.{n}")) as http:
            for question in itertools.cycle(mine):
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    status = str(http.post("/api/ask", json={"question": question}).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    statuses[status] += 1
                    latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    requests = sum(statuses.values())
    errors = sum(n for s, n in statuses.items() if not (s.isdigit() and (200 <= int(s) < 300 or s == "429")))
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": requests, "errors": errors,
            "statuses": dict(sorted(statuses.items())), "rps": round(requests / elapsed, 1), **percentiles(latencies)}


# -- the run ------------------------------------------------------------------------------------------------------


def table(figures: dict) -> str:
    """One line per measurement: its baseline and measured p50/p95 where it has them, then the verdict."""
    va, ll, pi, ld = (figures[k] for k in ("victim_attacker", "locked_log", "pii", "load"))
    attacker = va["attacker"]

    def ok(passed: bool) -> str:
        return "ok" if passed else "MISSED"

    def row(name: str, result: str, baseline: dict | None = None, measured: dict | None = None) -> str:
        def cell(p: dict | None) -> str:
            return f"{p['p50']:>9}/{p['p95']:<10}" if p else " " * 20

        return f"{name:<34} {cell(baseline)} {cell(measured)}  {result}"

    lines = [f"{'part':<34} {'baseline p50/p95 ms':>20} {'measured p50/p95 ms':>20}  result",
             row("1 victim vs attacker", f"p95 x{va['p95_ratio']} {ok(va['p95_ratio'] <= va['target_p95_ratio'])}; "
                 f"attacker {attacker['statuses']}", va["unloaded"], va["loaded"]),
             row("  victim beside answered attacks", f"{va['loaded_beside_an_answered_attack']['requests']} requests",
                 None, va["loaded_beside_an_answered_attack"]),
             row("  victim beside refusals only", f"{va['loaded_beside_refusals_only']['requests']} requests; "
                 f"attacker {attacker['rps']} req/s, CPU s bench/server {attacker['cpu_s']['bench_process']}/"
                 f"{attacker['cpu_s']['server']} in {attacker['seconds']} s", None, va["loaded_beside_refusals_only"]),
             row("2 question log locked", f"p95 x{ll['p95_ratio']} {ok(ll['p95_ratio'] <= ll['target_p95_ratio'])}; "
                 f"/readyz down after {ll['readyz_reported_down_after_s']} s, written "
                 f"{ll['written_after_release_s']} s after release", ll["unlocked"], ll["locked"]),
             row("3 personal data in the log", f"{pi['leaked']} of {pi['variants']} leaked {ok(pi['leaked'] == 0)}; "
                 f"in server output {len(pi['leaked_in_server_output'])}")]
    for name, case in figures["broken_log"].items():
        if "skipped" in case:
            lines.append(row(f"4 {name}", f"skipped: {case['skipped']}"))
        elif not case["started"]:
            lines.append(row(f"4 {name}", "did not start MISSED"))
        else:
            lines.append(row(f"4 {name}", f"ask {case['ask_status']}, query_log.ok {case['query_log_ok']} "
                                          f"{ok(case['pass'])}"))
    under = ld["loaded"]
    lines.append(row(f"5 load, {under['clients']} clients", f"{under['requests']} requests, {under['rps']} req/s, "
                     f"{under['errors']} errors, statuses {under['statuses']}", ld["unloaded"], under))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load in part 5 (default 30)")
    parser.add_argument("--smoke", action="store_true", help="a quick run of every part; writes no result")
    args = parser.parse_args()
    seconds = 5.0 if args.smoke else args.seconds
    rounds = 1 if args.smoke else 3
    victims, others = question_sets(8 if args.smoke else 20)
    variants = [v for v in jsonl(PII_VARIANTS) if v["kind"] != "none"]
    if args.smoke:
        variants = variants[::6]
    figures: dict = {"smoke": args.smoke, "cpus": os.cpu_count(), "server_defaults": server_defaults(),
                     "victim_questions": len(victims), "victim_rounds": rounds}
    text = corpus_text()
    fillers = cache_fillers(text)
    baseline_questions, load_questions = others[:len(victims) * rounds], others[len(victims) * rounds:]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kb-abuse-") as tmp:
        workdir = Path(tmp)
        log_path = workdir / "defaults" / "querylog.sqlite"
        with running_server(workdir, "defaults", {"KB_QUERY_LOG": str(log_path)}) as server:
            figures["ready_s"] = {"defaults": server.ready_s}
            warm_up(server.base, load_questions[-10:])
            figures["victim_attacker"] = victim_vs_attacker(server, victims, rounds, fillers, Histories(text))
            print("1", json.dumps(figures["victim_attacker"], ensure_ascii=False), flush=True)
            figures["locked_log"] = locked_log(server, log_path, victims, rounds, fillers)
            print("2", json.dumps(figures["locked_log"], ensure_ascii=False), flush=True)
        log_path = workdir / "lifted" / "querylog.sqlite"
        with running_server(workdir, "lifted", {"KB_QUERY_LOG": str(log_path), **HIGH_RATE}) as server:
            figures["ready_s"]["rate_limits_lifted"] = server.ready_s
            warm_up(server.base, load_questions[-10:])
            figures["pii"] = pii(server, log_path, variants)
            print("3", json.dumps(figures["pii"], ensure_ascii=False), flush=True)
            unloaded = victim_samples(server.base, baseline_questions, "10.5.0", 1, lambda: None)  # all new
            figures["load"] = {"unloaded": summary(unloaded),
                               "loaded": load(server.base, load_questions[:-10], 8, seconds),
                               "distinct_questions": len(load_questions) - 10}
            print("5", json.dumps(figures["load"], ensure_ascii=False), flush=True)
        figures["broken_log"] = broken_logs(workdir, victims[0])
        print("4", json.dumps(figures["broken_log"], ensure_ascii=False), flush=True)
    figures["run_s"] = round(time.perf_counter() - started)
    print(table(figures))
    print(f"whole run: {figures['run_s']} s")
    if not args.smoke:
        print("wrote", write_result("abuse", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
