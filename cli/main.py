"""`kb`: the command line. It parses arguments, calls the library (or, for questions, the service's one way in),
and prints; nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kb.config import IDENTITY_KEYS, KB_NAME_RE, Identity, SettingError, Settings, load_settings
from kb.errors import KnowledgeBaseError
from server.settings import ServerSettings

if TYPE_CHECKING:  # the heavy modules are imported by the commands that need them, so `kb --help` is instant
    from kb.knowledge_base import KnowledgeBase

EXIT_ERROR = 1
#: How `kb info` names the parts of a knowledge base's identity.
IDENTITY_LABELS = {"township": "乡镇", "help_name": "服务站", "help_phone": "电话", "help_address": "地址",
                   "help_hours": "时间", "collection": "收录", "examples": "示例问题"}


def _settings(args: argparse.Namespace) -> Settings:
    index = getattr(args, "index", None)
    kb_name = getattr(args, "kb", None)
    if kb_name is not None and not KB_NAME_RE.fullmatch(kb_name):
        raise KnowledgeBaseError(f"--kb {kb_name!r}: use 1 to 64 letters, digits, _ or -")
    store = "local" if index else (getattr(args, "store", None) or ("milvus" if kb_name else None))
    return load_settings(index_dir=Path(index) if index else None, kb_name=kb_name, store=store)


def _open(args: argparse.Namespace) -> KnowledgeBase:
    from ingest.build import ensure_index
    from kb.knowledge_base import KnowledgeBase

    settings = _settings(args)
    if args.index is None:  # only the default index is built on first use; a named one must exist
        ensure_index(settings, progress=sys.stderr.isatty())
    return KnowledgeBase.open(settings=settings)


# -- commands -------------------------------------------------------------------------------------------------

def _print_json(value: object) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.build import ingest

    settings = _settings(args)
    paths = [Path(p) for p in args.paths] or [settings.corpus_dir]
    given = {key: getattr(args, key) for key in IDENTITY_KEYS if getattr(args, key) is not None}
    report = ingest(paths, settings, progress=not args.quiet, identity=given)
    for skipped in report.skipped:
        print(f"跳过 {skipped.path}: {skipped.reason}", file=sys.stderr)
    for problem in report.question_errors:
        print(f"跳过关联问题 {problem}", file=sys.stderr)
    print(f"已建立索引 {report.target}: {report.documents} 个文档, {report.chunks} 个片段"
          f"（{report.reused} 个沿用已有向量）, {report.questions} 个关联问题, 跳过 {len(report.skipped)} 个文件"
          f"{f'、{len(report.question_errors)} 行关联问题' if report.question_errors else ''}, "
          f"用时 {report.seconds:.1f} 秒")
    return 0


def _highlight(text: str, terms: Sequence[str], color: bool) -> str:
    if not color or not terms:
        return text
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)))
    return pattern.sub(lambda m: f"\033[1;31m{m.group(0)}\033[0m", text)


def _print_hits(query: str, hits, terms: Sequence[str], color: bool) -> None:
    if not hits:
        print(f"没有找到与「{query}」相关的内容。")
        return
    for rank, hit in enumerate(hits, start=1):
        date = f"（{hit.doc_date}）" if hit.doc_date else ""
        print(f"[{rank}] {hit.citation}{date}  得分 {hit.score:.3f}")
        if hit.section:
            print(f"    {hit.section}")
        print("    " + _highlight(hit.text, terms, color).replace("\n", "\n    "))
        print()


def _method(name: str | None) -> str | None:
    """`fused` is the product's configured ranking; the others force one retriever, fusion or stage."""
    return None if name in (None, "fused") else name


def _search_lines(kb: KnowledgeBase, lines: Iterable[str], args: argparse.Namespace,
                  filters: dict[str, str] | None) -> int:
    """`kb search --jsonl`: one question per line in, one JSON object per line out (an error for a bad one)."""
    for line in lines:
        question = line.strip()
        if not question:
            continue
        try:
            hits = kb.search(question, top_k=args.top_k, filters=filters, method=_method(args.method))
            record = {"query": question, "hits": [h.to_dict() for h in hits]}
        except ValueError as exc:
            record = {"query": question, "error": str(exc)}
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    kb = _open(args)
    filters = {"doc_kind": args.kind} if args.kind else None
    if args.jsonl:
        if args.query == "-":
            return _search_lines(kb, sys.stdin, args, filters)
        with open(args.query, encoding="utf-8") as source:
            return _search_lines(kb, source, args, filters)
    hits = kb.search(args.query, top_k=args.top_k, filters=filters, method=_method(args.method))
    if args.json:
        return _print_json({"query": args.query, "hits": [h.to_dict() for h in hits]})
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    _print_hits(args.query, hits, kb.query_terms(args.query), color)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from kb.search.conversation import FOLLOW_UP_NOTE
    from server.errors import ApiError
    from server.service import open_service

    service = open_service(_settings(args), ServerSettings(), _open(args))
    try:
        answer = service.ask(args.question, "cli", "cli", history=args.after or None)
    except ApiError as refusal:
        print(f"错误: {refusal.message}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        service.close()
    if args.json:
        return _print_json(answer)
    if answer["follow_up_of"] and answer["answerable"]:
        print(f"（{FOLLOW_UP_NOTE.format(answer['follow_up_of'])}）")
    print(answer["answer"])
    for citation in answer["citations"]:
        date = f"（{citation['doc_date']}）" if citation["doc_date"] else ""
        print(f"\n[{citation['n']}] {citation['citation']}{date}  {citation['section']}")
    if answer["related_passages"]:
        print("\n其他可能相关的条文：")
        for other in answer["related_passages"]:
            print(f"  {other['citation']}  {other['first_line']}")
    if answer["answerable"]:
        print(f"\n置信度 {answer['confidence']:.2f}")
    print(f"\n【提示】{answer['notice']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from kb.evaluate import load_questions, score, score_answerability

    questions = load_questions(Path(args.file))
    kb = _open(args)
    if args.answers:
        result = score_answerability(questions, lambda q: kb.ask(q).answerable)
        if args.json:
            return _print_json(result)
        m = result["matrix"]
        print(f"{'':<14} {'answered':>9} {'no answer':>10}")
        print(f"{'answerable':<14} {m['answerable_answered']:>9} {m['answerable_refused']:>10}")
        print(f"{'out of scope':<14} {m['out_of_scope_answered']:>9} {m['out_of_scope_refused']:>10}")
        for mistake in result["mistakes"]:
            print(f"  wrong: {mistake['id']} {mistake['q']}")
        return 0
    results = {m: score(questions, functools.partial(kb.search, top_k=10, method=_method(m))) for m in args.methods}
    if args.json:
        return _print_json({m: r["metrics"] for m, r in results.items()})
    out_of_scope = sum(1 for q in questions if not q.answerable)
    print(f"{len(questions)} 个问题（{out_of_scope} 个超出范围的问题不计入检索指标）")
    print(f"{'method':<9} {'tag':<14} {'n':>3} {'Hit@1':>7} {'Hit@5':>7} {'MRR@10':>7}")
    for method, result in results.items():
        for tag, m in result["metrics"].items():
            print(f"{method:<9} {tag:<14} {m['n']:>3} {m['hit@1']:>7.3f} {m['hit@5']:>7.3f} {m['mrr@10']:>7.3f}")
    if args.verbose:
        for method, result in results.items():
            for d in result["questions"]:
                if d.get("answerable", True) and d["rank"] != 1:
                    print(f"{method} {d['id']} rank={d['rank']} {d['q']} → {d['top']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _open(args).info()
    if args.json:
        return _print_json(info)
    emb = info["embedding"]
    where = info["index_dir"] if info["store"] == "local" else f"Milvus {info['milvus_uri']}  知识库 {info['kb_name']}"
    print(f"索引: {where}  (更新于 {info['built_at']})")
    print(f"模型: {emb['model_id']}  指纹 {emb['fingerprint']}  维度 {emb['dimension']}")
    own = set(info["identity_own"])
    for f in dataclasses.fields(Identity):
        value = info["identity"][f.name] or "（空）"
        print(f"{IDENTITY_LABELS[f.name]}: {value}  ({'本知识库' if f.name in own else '默认 ' + f.metadata['env']})")
    print(f"文档 {len(info['documents'])} 个, 片段 {info['chunks']} 个, 关联问题 {info['questions']} 个")
    for d in info["documents"]:
        print(f"  {d['title']}  [{d['kind']}] {d['date'] or ''}  {d['chunks']} 片段  {d['questions']} 问题"
              f"  ({d['source']})")
    return 0


def _document_named(kb: KnowledgeBase, name: str) -> str:
    """A document's id from its id, its file name or stem, or words of its title (one match only)."""
    documents = kb.documents
    if name in documents:
        return name
    found = [d.doc_id for d in documents.values() if name in (d.source, Path(d.source).stem)]
    found = found or [d.doc_id for d in documents.values() if name in d.title]
    if len(found) != 1:
        titles = "、".join(documents[d].title for d in found) or "无"
        raise KnowledgeBaseError(f"{name!r} 应恰好指一个文档（匹配到: {titles}）；可用 `kb info` 查看文档")
    return found[0]


def cmd_questions(args: argparse.Namespace) -> int:
    if args.words[0] == "draft":
        return _draft_questions(args)
    if len(args.words) != 1:
        raise KnowledgeBaseError("用法: kb questions DOC  或  kb questions draft FILE")
    kb = _open(args)
    rows = kb.attached_questions(_document_named(kb, args.words[0]))
    if args.json:
        return _print_json(rows)
    for row in rows:
        print(f"{row['citation']}\t{row['q']}")
    print(f"共 {len(rows)} 个关联问题", file=sys.stderr)
    return 0


def _draft_questions(args: argparse.Namespace) -> int:
    from ingest.draft_questions import draft_path, draft_questions
    from kb.answers.generate import GenerationFailed

    if len(args.words) != 2:
        raise KnowledgeBaseError("用法: kb questions draft FILE（文档文件，如 corpus/村规民约.docx）")
    config = load_settings().llm.generator()
    if config is None:
        raise KnowledgeBaseError("起草问题需要大模型：请设置 KB_LLM_BASE_URL（及 KB_LLM_MODEL）")
    document = Path(args.words[1])
    if not document.is_file():
        raise KnowledgeBaseError(f"没有这个文件: {document}")
    try:
        path, count = draft_questions(document, config,
                                      lambda n, total: print(f"\r{n}/{total}", end="", file=sys.stderr))
    except GenerationFailed as exc:
        raise KnowledgeBaseError(f"大模型调用失败: {exc}（已起草的部分在 {draft_path(document)}）") from exc
    print(f"\n已写出 {count} 个候选问题到 {path}：请审核修改后改名为 {document.stem}.questions.jsonl，再 kb ingest")
    return 0


def cmd_report_unanswered(args: argparse.Namespace) -> int:
    from server.querylog import QueryLog

    path = ServerSettings().query_log  # a file, or a PostgreSQL URL (replicas)
    if isinstance(path, Path) and not path.is_file():
        print(f"还没有问题记录（{path}）")
        return 0
    with QueryLog.open(path) as query_log:
        rows = query_log.unanswered(args.limit)
    if args.json:
        return _print_json(rows)
    print(f"{'次数':>4} {'差评':>4}  {'最近提问':<25} 问题")
    for row in rows:
        print(f"{row['count']:>6} {row['negative_feedback']:>6}  {row['last_asked']:<25} {row['question']}")
    return 0


def cmd_model_build(args: argparse.Namespace) -> int:
    from kb.embedding.embedder import ensure_model

    settings = load_settings()
    ensure_model(settings)
    print(f"模型已就绪: {settings.model_dir}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import serve

    serve(_settings(args), host=args.host, port=args.port)
    return 0


# -- argument parsing -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kb", description="政务知识库问答: 检索法规条文与镇政府报告")
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress and diagnostic logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_index(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--index", metavar="DIR", help="index directory (default: index/, or KB_INDEX)")
        p.add_argument("--store", choices=["local", "milvus"], help="where the passages live (default: KB_STORE)")
        p.add_argument("--kb", metavar="NAME", help="which knowledge base of the Milvus store (default: KB_NAME; "
                       "implies --store milvus)")
        return p

    p = with_index(sub.add_parser("ingest", help="build the index from documents (.md .txt .docx .pdf)"))
    p.add_argument("paths", nargs="*", help="files or folders (default: corpus/)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    for f in dataclasses.fields(Identity):  # the knowledge base's identity: kept until given anew (ingest/identity.py)
        p.add_argument(f"--{f.name.replace('_', '-')}", metavar="TEXT",
                       help=f"this knowledge base's own {f.metadata['env']} (over kb.toml's; kept until set "
                            "anew; \"\" removes it)")
    p.set_defaults(func=cmd_ingest)

    p = with_index(sub.add_parser("search", help="search the knowledge base"))
    p.add_argument("query", help="the question; with --jsonl a file of questions, one per line, or - for stdin")
    p.add_argument("-k", "--top-k", type=int, default=5, help="number of hits (default 5)")
    p.add_argument("--kind", choices=["law", "report", "other"], help="only documents of this kind")
    p.add_argument("--method", choices=["fused", "ranked", "rrf", "weighted", "dense", "lexical"],
                   help=argparse.SUPPRESS)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='print {"query": ..., "hits": [...]}')
    out.add_argument("--jsonl", action="store_true", help="one question per input line, one JSON object per line")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="highlight matched words")
    p.set_defaults(func=cmd_search)

    p = with_index(sub.add_parser("ask", help="answer a question with cited passages"))
    p.add_argument("question", help="the question, in Chinese, e.g. 信访事项多长时间办结？")
    p.add_argument("--json", action="store_true", help="print the answer object as JSON")
    p.add_argument("--after", action="append", metavar="EARLIER",
                   help="an earlier question of the conversation (repeat, oldest first): the question is read "
                        "as its follow-up when it is one, e.g. --after 信访事项多久办结？ 那要是不满意呢？")
    p.set_defaults(func=cmd_ask)

    p = with_index(sub.add_parser("eval", help="retrieval metrics (Hit@1, Hit@5, MRR@10) on a question set"))
    p.add_argument("file", help="JSONL questions with gold citations (see ../shared/eval/README.md)")
    p.add_argument("--methods", type=lambda s: s.split(","), default=["fused"],
                   help="comma-separated: fused (the product's ranking), weighted (its first stage alone), rrf, "
                        "lexical, dense (default fused)")
    p.add_argument("--answers", action="store_true",
                   help="score the answer stage instead: answerable vs. out-of-scope confusion matrix")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = with_index(sub.add_parser("info", help="what the index holds"))
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_info)

    p = with_index(sub.add_parser("questions", help="questions attached to a document's passages (关联问题)"))
    p.add_argument("words", nargs="+", metavar="DOC",
                   help="DOC (id, file name or title words): list its attached questions; "
                        "draft FILE: write candidate questions for a document with the chat model (KB_LLM_BASE_URL)")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=cmd_questions)

    report = sub.add_parser("report", help="reports for staff").add_subparsers(dest="report", required=True)
    p = report.add_parser("unanswered", help="questions not answered or rated unhelpful, most frequent first")
    p.add_argument("--limit", type=int, default=50, help="how many questions to list (default 50)")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=cmd_report_unanswered)

    model = sub.add_parser("model", help="the embedding model").add_subparsers(dest="model_command", required=True)
    p = model.add_parser("build", help="build the default model now (otherwise done on first use)")
    p.set_defaults(func=cmd_model_build)

    p = with_index(sub.add_parser("serve", help="serve the HTTP API (builds model and index on first run)"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (KnowledgeBaseError, SettingError) as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
