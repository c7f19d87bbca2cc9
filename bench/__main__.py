"""`make bench` / `python -m bench [stage ...]`: every benchmark in order, then docs/benchmarks.md.

Stages: embedding, ingest, latency, quality, growth, dense, ranking, bank, answers, scale, memory, abuse, report. Each
writes bench/results/<name>.json; the report is generated from whatever results exist. Stages that need ../shared skip
cleanly without it. The frozen experiments of bench/experiments/ are no stage: nothing here runs or imports them.
A full run from nothing takes about 1.5 hours on two cores, most of it embedding the 55,956 STARD articles
once (kept in the vector cache, so later runs take minutes).
"""

from __future__ import annotations

import subprocess
import sys

from kb.config import PROJECT_ROOT

STAGES: dict[str, list[list[str]]] = {
    "embedding": [["bench.embedding"]],
    "ingest": [["bench.ingest"]],
    "latency": [["bench.latency", "--backend", "torch"], ["bench.latency", "--backend", "onnx-int8"]],
    "quality": [["bench.quality"]],
    "growth": [["bench.growth"]],
    "dense": [["bench.dense_topk"]],
    "ranking": [["bench.ranking"]],
    "bank": [["bench.question_bank", "check"], ["bench.handles_ablation"]],
    "answers": [["bench.abstention"], ["bench.followup"], ["bench.related"], ["bench.safety"]],
    "scale": [["bench.vector_scale"], ["bench.store_parity"], ["bench.store_scale"], ["bench.replicas"]],
    "memory": [["bench.memory", "--concurrency", "8"], ["bench.memory", "--concurrency", "32", "--requests", "640"]],
    "abuse": [["bench.abuse"]],
    "report": [["bench.report"]],
}


def main(argv: list[str]) -> int:
    unknown = [s for s in argv if s not in STAGES]
    if unknown:
        print(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    for stage in argv or list(STAGES):
        for command in STAGES[stage]:
            print(f"== {' '.join(command)}", flush=True)
            subprocess.run([sys.executable, "-m", *command], cwd=PROJECT_ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
