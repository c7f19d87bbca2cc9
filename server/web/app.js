// 雁石坪镇政务知识库 — the question page. Plain JavaScript, no build step.
// Every text coming from the API or from the user is inserted with textContent / createTextNode, never as HTML.
"use strict";

const STORE_KEY = "zwkb.conversation.v1";
const MAX_CHARS = 500;  // the server's default question limit (KB_MAX_QUESTION_CHARS)
const KIND_LABELS = { law: "法律", regulation: "法规", report: "报告", rule: "规章", notice: "通知" };

const $ = (id) => document.getElementById(id);

/** A new element with a class and (optionally) text, as a text node. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** `text` as a fragment where the [start, end) ranges are wrapped in <mark>. */
function markedText(text, ranges) {
  const frag = document.createDocumentFragment();
  const sorted = (ranges || [])
    .map(([s, e]) => [Math.max(0, s | 0), Math.min(text.length, e | 0)])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  let pos = 0;
  for (const [s, e] of sorted) {
    const start = Math.max(s, pos);
    if (e <= start) continue;
    if (start > pos) frag.append(document.createTextNode(text.slice(pos, start)));
    frag.append(el("mark", null, text.slice(start, e)));
    pos = e;
  }
  if (pos < text.length) frag.append(document.createTextNode(text.slice(pos)));
  return frag;
}

// --- API --------------------------------------------------------------------------------------------------------

class ApiFailure extends Error {}

// One deployment may serve several townships (KB_STORE=milvus): ?kb=<name> in the page's address picks one.
const KB_NAME = new URLSearchParams(location.search).get("kb");

function forKnowledgeBase(path, body) {
  if (!KB_NAME) return [path, body];
  if (body !== undefined) return [path, path === "/api/ask" ? { ...body, kb: KB_NAME } : body];
  return [`${path}${path.includes("?") ? "&" : "?"}kb=${encodeURIComponent(KB_NAME)}`, body];
}

async function api(requested, payload, signal) {
  const [path, body] = forKnowledgeBase(requested, payload);
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  if (signal) init.signal = signal;
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (signal && signal.aborted) throw new ApiFailure(signal.reason === "timeout"
      ? "等待时间太长，已停止。请稍后重试" : "已停止");
    throw new ApiFailure("网络连接失败，请检查网络后再试");
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (response.status === 429) {
    const wait = parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiFailure(`请求太频繁，请 ${Number.isFinite(wait) && wait > 0 ? wait : 1} 秒后再试`);
  }
  if (!response.ok) {
    const message = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
    throw new ApiFailure(message || `服务暂时不可用（${response.status}），请稍后再试`);
  }
  return data;
}

// --- conversation -------------------------------------------------------------------------------------------------

let conversation = [];  // [{type: "user", text} | {type: "answer", data, feedback} | {type: "topic"}]

// The conversation is kept for this browser tab only: a 便民服务中心 PC is shared, the next person must not see it.
function loadConversation() {
  try { localStorage.removeItem(STORE_KEY); } catch (_) { /* what older versions kept for good */ }
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]");
    conversation = Array.isArray(saved) ? saved : [];
  } catch (_) {
    conversation = [];
  }
}

function saveConversation() {
  try { sessionStorage.setItem(STORE_KEY, JSON.stringify(conversation.slice(-100))); } catch (_) { /* full/private */ }
}

/** Bring the newest bubble into view above the pinned input area (which would otherwise hide its end); one too
 * tall for the room above it shows its beginning, where reading starts. */
function scrollLog() {
  const last = $("log").lastElementChild;
  const formHeight = $("ask-form").offsetHeight;
  document.documentElement.style.setProperty("--ask-height", `${formHeight}px`);
  if (!last) return;
  const room = window.innerHeight - formHeight - 8;
  last.scrollIntoView({ block: last.getBoundingClientRect().height > room ? "start" : "nearest" });
}

function userBubble(text) {
  const bubble = el("div", "bubble user");
  bubble.append(el("span", "sr-only", "我的问题："), el("p", "bubble-text", text));
  return bubble;
}

/** Where the user started a new topic: the questions above it are not sent with those below. */
function topicDivider() {
  return el("p", "topic-divider", "—— 新话题 ——");
}

function errorBubble(message, retry) {
  const bubble = el("div", "bubble error");
  bubble.setAttribute("role", "alert");
  bubble.append(el("p", "bubble-text", message));
  if (retry) {
    const again = el("button", "secondary small", "重试");
    again.type = "button";
    again.addEventListener("click", () => { bubble.previousElementSibling?.remove(); bubble.remove(); retry(); });
    bubble.append(again);
  }
  return bubble;
}

/** `text` as a fragment where the hotline numbers (12348, 12338, 110) are links that call them. */
function withPhoneLinks(text) {
  const frag = document.createDocumentFragment();
  let pos = 0;
  for (const match of text.matchAll(/(?<!\d)(?:12348|12338|12355|12356|12345|110|120)(?!\d)/g)) {
    if (match.index > pos) frag.append(document.createTextNode(text.slice(pos, match.index)));
    const link = el("a", "tel", match[0]);
    link.href = `tel:${match[0]}`;
    frag.append(link);
    pos = match.index + match[0].length;
  }
  if (pos < text.length) frag.append(document.createTextNode(text.slice(pos)));
  return frag;
}

/** What the answer is and where a person can help (the API's `notice`); danger comes first and stands out. */
function answerNote(data) {
  const notice = String(data.notice || "");
  const note = el("p", notice.startsWith("如正面临暴力") ? "answer-note urgent" : "answer-note");
  note.setAttribute("role", "note");
  note.append(withPhoneLinks(notice));
  return note;
}

function citationLabel(c) {
  return c.citation || c.doc_title || "";
}

/** Which earlier question a follow-up was read with, and a way to have it answered on its own instead. */
function followUpNote(data) {
  const box = el("div", "follow-up");
  const anew = el("button", "secondary", "作为新问题回答");
  anew.type = "button";
  anew.addEventListener("click", () => askAnew(String(data.question)));
  box.append(el("p", "context", `接着您上一个问题「${data.follow_up_of}」回答`), anew);
  return box;
}

/** The other articles that may be the right ones (the API's `related_passages`, sent when the answer is unsure),
 * each opening its passage like a citation does. */
function relatedPassageList(passages) {
  const list = el("ul", "citations");
  for (const p of passages) {
    const item = el("li");
    const button = el("button", "related-passage");
    button.type = "button";
    button.append(document.createTextNode(citationLabel(p)));
    if (p.first_line) button.append(el("span", "first-line", p.first_line));
    button.addEventListener("click", () => openPassage(p, button));
    item.append(button);
    list.append(item);
  }
  return list;
}

function answerBubble(entry) {
  const data = entry.data;
  // A related answer (not the answer, but close to it) quotes its passages like an answer, labelled as such.
  const quoted = data.answerable || data.related;
  const bubble = el("div", data.answerable ? "bubble answer" : data.related ? "bubble answer notice related"
    : "bubble answer notice");
  bubble.append(el("span", "sr-only", data.answerable ? "回答：" : "提示："));
  if (data.mode === "generative") bubble.append(el("span", "badge", "AI 生成"));
  if (data.answerable && data.follow_up_of) bubble.append(followUpNote(data));
  const byNumber = new Map((data.citations || []).map((c) => [String(c.n), c]));
  const text = el("p", "bubble-text");
  if (quoted) {
    // The answer with its [n] markers as buttons that open the cited passage.
    const answer = String(data.answer || "");
    let pos = 0;
    for (const match of answer.matchAll(/\[(\d+)\]/g)) {
      const citation = byNumber.get(match[1]);
      if (!citation) continue;
      if (match.index > pos) text.append(document.createTextNode(answer.slice(pos, match.index)));
      const marker = el("button", "marker", `[${match[1]}]`);
      marker.type = "button";
      marker.setAttribute("aria-label", `查看出处 ${match[1]}：${citationLabel(citation)}`);
      marker.addEventListener("click", () => openPassage(citation, marker));
      text.append(marker);
      pos = match.index + match[0].length;
    }
    if (pos < answer.length) text.append(document.createTextNode(answer.slice(pos)));
  } else {
    text.textContent = String(data.answer || "抱歉，知识库中没有找到相关内容。");
  }
  bubble.append(text);

  if (quoted && byNumber.size) {
    bubble.append(el("h3", "cite-title", data.answerable ? "出处" : "相关内容（不是对您问题的直接回答）"));
    const list = el("ol", "citations");
    for (const c of data.citations) {
      const item = el("li");
      const button = el("button", "citation");
      button.type = "button";
      button.append(el("span", "cite-n", `[${c.n}]`), document.createTextNode(" " + citationLabel(c)));
      if (c.doc_date) button.append(el("span", "cite-date", c.doc_date));
      button.addEventListener("click", () => openPassage(c, button));
      item.append(button);
      list.append(item);
    }
    bubble.append(list);
  }
  if (data.related_passages && data.related_passages.length) {
    bubble.append(el("h3", "cite-title", "其他可能相关的条文"), relatedPassageList(data.related_passages));
  }
  if (data.notice) bubble.append(answerNote(data));
  if (data.question_id) bubble.append(feedbackBox(entry));
  return bubble;
}

function feedbackBox(entry) {
  const box = el("div", "feedback");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "这个回答有帮助吗");
  const thanks = () => { box.replaceChildren(el("p", "thanks", "感谢反馈")); };
  if (entry.feedback) { thanks(); return box; }

  const status = el("p", "status");
  status.setAttribute("role", "status");
  const send = async (helpful, comment) => {
    for (const b of box.querySelectorAll("button, textarea")) b.disabled = true;
    try {
      await api("/api/feedback", { question_id: entry.data.question_id, helpful, comment: comment || null });
      entry.feedback = helpful ? "helpful" : "unhelpful";
      saveConversation();
      thanks();
      box.setAttribute("tabindex", "-1");
    } catch (err) {
      status.textContent = err.message || "反馈提交失败";
      for (const b of box.querySelectorAll("button, textarea")) b.disabled = false;
    }
  };
  const yes = el("button", "secondary small", "有帮助");
  yes.type = "button";
  yes.addEventListener("click", () => send(true, null));
  const no = el("button", "secondary small", "没帮助");
  no.type = "button";
  no.addEventListener("click", () => {
    if (box.querySelector("form")) return;
    const form = el("form", "feedback-form");
    const id = `fb-${entry.data.question_id}`;
    const label = el("label", null, "哪里不满意？（可不填）");
    label.htmlFor = id;
    const comment = el("textarea");
    comment.id = id;
    comment.rows = 2;
    comment.maxLength = 1000;
    const submit = el("button", "primary small", "提交反馈");
    submit.type = "submit";
    form.append(label, comment, submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(false, comment.value.trim());
    });
    box.insertBefore(form, status);
    comment.focus();
  });
  box.append(el("span", "feedback-q", "这个回答有帮助吗？"), yes, no, status);
  return box;
}

function renderConversation() {
  const log = $("log");
  log.replaceChildren();
  if (!conversation.length) {
    log.append(el("p", "welcome", "您好！请问有什么可以帮您？可以问信访、法律援助、行政复议等问题，也可以点下面的示例。"));
  }
  const render = { user: (entry) => userBubble(entry.text), answer: answerBubble, topic: topicDivider };
  for (const entry of conversation) log.append(render[entry.type](entry));
}

let waiting = false;
/** The longest wait for an answer before the page stops asking and offers to retry. */
const ASK_TIMEOUT_MS = 30000;
/** Earlier questions sent with a new one, so that 「那要是不满意呢？」 is read as a follow-up. */
const HISTORY_SENT = 3;

/** The current topic's last questions: none from before the last 「新话题」. */
function earlierQuestions() {
  const topicStart = conversation.map((e) => e.type).lastIndexOf("topic") + 1;
  return conversation.slice(topicStart).filter((e) => e.type === "user").map((e) => e.text).slice(-HISTORY_SENT);
}

/** Start a new topic below what is on screen (nothing is deleted); once is enough, and not while waiting. */
function startNewTopic() {
  if (waiting) return;
  const last = conversation[conversation.length - 1];
  if (last && last.type !== "topic") {
    conversation.push({ type: "topic" });
    saveConversation();
    $("log").append(topicDivider());
    scrollLog();
  }
}

/** A follow-up answered again as a question of its own, starting a new topic. */
function askAnew(question) {
  if (waiting) return;
  startNewTopic();
  ask(question);
}

async function ask(question) {
  const input = $("question");
  const text = (question ?? input.value).trim();
  if (!text || waiting || [...text].length > MAX_CHARS) return;
  if (question !== undefined) input.value = question;
  waiting = true;
  input.disabled = true;
  $("send").disabled = true;
  const log = $("log");
  const welcome = log.querySelector(".welcome");
  if (welcome) welcome.remove();
  log.append(userBubble(text));
  const pending = el("div", "bubble answer pending", "正在查找…");
  pending.setAttribute("aria-busy", "true");
  const controller = new AbortController();
  const stop = el("button", "secondary small stop", "停止");
  stop.type = "button";
  stop.addEventListener("click", () => controller.abort("stopped"));
  pending.append(stop);
  log.append(pending);
  scrollLog();
  const timer = setTimeout(() => controller.abort("timeout"), ASK_TIMEOUT_MS);
  try {
    const data = await api("/api/ask", { question: text, history: earlierQuestions() }, controller.signal);
    const entry = { type: "answer", data };
    conversation.push({ type: "user", text }, entry);
    saveConversation();
    pending.replaceWith(answerBubble(entry));
    input.value = "";
    countChars();
  } catch (err) {
    pending.replaceWith(errorBubble(err instanceof ApiFailure ? err.message : "出错了，请稍后再试",
      () => ask(text)));
  } finally {
    clearTimeout(timer);
    waiting = false;
    input.disabled = false;
    countChars();
    input.focus();
    scrollLog();
  }
}

// --- passage panel ------------------------------------------------------------------------------------------------

let passageOpener = null;

function articleHash(docId, articleNo) {
  const base = `#/doc/${encodeURIComponent(docId)}`;
  return articleNo === null || articleNo === undefined ? base : `${base}/art/${articleNo}`;
}

function openPassage(c, opener) {
  passageOpener = opener || null;
  $("passage-title").textContent = citationLabel(c);
  const meta = [c.section, c.doc_date ? `文件日期：${c.doc_date}` : ""].filter(Boolean).join(" · ");
  $("passage-meta").textContent = meta;
  $("passage-text").replaceChildren(markedText(String(c.text || ""), c.highlights));
  $("passage-link").href = articleHash(c.doc_id, c.article_no);
  $("passage").hidden = false;
  document.body.classList.add("panel-open");
  $("passage-title").focus();
}

function closePassage(restoreFocus = true) {
  if ($("passage").hidden) return;
  $("passage").hidden = true;
  document.body.classList.remove("panel-open");
  if (restoreFocus && passageOpener && document.contains(passageOpener)) passageOpener.focus();
  passageOpener = null;
}

// --- documents ----------------------------------------------------------------------------------------------------

/** 「法律」 only for laws: a 条例 or 办法 filed as kind "law" is a regulation (法规). */
function kindLabel(kind, title) {
  if (kind === "law" && /(条例|规定|办法)$/.test(String(title || ""))) return KIND_LABELS.regulation;
  return KIND_LABELS[kind] || kind || "";
}

async function showDocs() {
  const list = $("docs-list");
  const status = $("docs-status");
  status.textContent = "正在加载…";
  list.replaceChildren();
  try {
    const data = await api("/api/documents");
    status.textContent = `共 ${data.documents.length} 个文件`;
    for (const d of data.documents) {
      const item = el("li");
      const link = el("a", null, d.title);
      link.href = articleHash(d.doc_id);
      item.append(link, el("span", "meta", [kindLabel(d.kind, d.title), d.date].filter(Boolean).join(" · ")));
      list.append(item);
    }
  } catch (err) {
    status.textContent = err.message;
  }
  $("docs-title").focus();
}

let currentDoc = null;  // {id, blocks: [{node, text}]}

/** The text split into blocks: one per article (all its chunks merged), plus the text between them. */
function documentBlocks(text, index) {
  const articles = new Map();
  for (const a of index || []) {
    const known = articles.get(a.article_no);
    if (known) { known.start = Math.min(known.start, a.start); known.end = Math.max(known.end, a.end); }
    else articles.set(a.article_no, { no: a.article_no, article: a.article, section: a.section, start: a.start, end: a.end });
  }
  const sorted = [...articles.values()].sort((a, b) => a.start - b.start);
  const blocks = [];
  let pos = 0;
  for (const a of sorted) {
    const start = Math.max(a.start, pos);
    if (start > pos && text.slice(pos, start).trim()) blocks.push({ text: text.slice(pos, start) });
    if (a.end > start) blocks.push({ text: text.slice(start, a.end), no: a.no, article: a.article });
    pos = Math.max(pos, a.end);
  }
  if (pos < text.length && text.slice(pos).trim()) blocks.push({ text: text.slice(pos) });
  for (const b of blocks) b.text = b.text.replace(/^\s*\n/, "").trimEnd();  // display only: no blank edges
  return blocks.flatMap(withHeadings);
}

/** A block between articles with its Markdown headings (## 第一章 总则) as blocks of their own, without the #s. */
function withHeadings(block) {
  if (block.no !== undefined) return [block];
  const out = [];
  let lines = [];
  const flush = () => {
    const text = lines.join("\n").replace(/^\s*\n/, "").trimEnd();
    if (text.trim()) out.push({ text });
    lines = [];
  };
  for (const line of block.text.split("\n")) {
    const heading = line.match(/^\s*(#{1,6})\s+(.*\S)\s*$/);
    if (heading) {
      flush();
      out.push({ text: heading[2], level: heading[1].length });
    } else {
      lines.push(line);
    }
  }
  flush();
  return out;
}

async function showDoc(docId, articleNo) {
  const body = $("doc-body");
  const status = $("doc-status");
  if (!currentDoc || currentDoc.id !== docId) {
    currentDoc = null;
    body.replaceChildren();
    $("doc-title").textContent = "";
    $("doc-meta").textContent = "";
    $("doc-search").value = "";
    $("doc-search-count").textContent = "";
    status.textContent = "正在加载…";
    try {
      const doc = await api(`/api/documents/${encodeURIComponent(docId)}`);
      status.textContent = "";
      $("doc-title").textContent = doc.title;
      $("doc-meta").textContent = [kindLabel(doc.kind, doc.title), doc.date ? `日期：${doc.date}` : ""].filter(Boolean).join(" · ");
      // The document's own title heading repeats the page's; the chapter headings stay, as headings.
      const blocks = documentBlocks(String(doc.text || ""), doc.articles_index)
        .filter((b) => !(b.level === 1 && b.text === doc.title));
      for (const b of blocks) {
        b.node = b.level ? el(b.level <= 2 ? "h3" : "h4", "block doc-heading")
          : el("div", b.no === undefined ? "block" : "block article");
        if (b.no !== undefined) b.node.id = `art-${b.no}`;
        b.node.textContent = b.text;
        body.append(b.node);
      }
      currentDoc = { id: docId, blocks };
    } catch (err) {
      status.textContent = err.message;
      return;
    }
  }
  for (const node of body.querySelectorAll(".current")) node.classList.remove("current");
  const target = articleNo ? document.getElementById(`art-${articleNo}`) : null;
  if (target) {
    target.classList.add("current");
    target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "start" });
    target.focus({ preventScroll: true });
  } else {
    window.scrollTo(0, 0);
    $("doc-title").focus();
  }
}

function searchDoc() {
  if (!currentDoc) return;
  const query = $("doc-search").value.trim();
  let blocksHit = 0;
  let total = 0;
  for (const b of currentDoc.blocks) {
    if (!query) {
      b.node.hidden = false;
      b.node.textContent = b.text;
      continue;
    }
    const ranges = [];
    for (let i = b.text.indexOf(query); i !== -1; i = b.text.indexOf(query, i + query.length)) {
      ranges.push([i, i + query.length]);
    }
    b.node.hidden = ranges.length === 0;
    b.node.replaceChildren(markedText(b.text, ranges));
    if (ranges.length) { blocksHit += 1; total += ranges.length; }
  }
  $("doc-search-count").textContent = query ? (total ? `找到 ${total} 处（${blocksHit} 段）` : "没有找到") : "";
}

// --- routing ------------------------------------------------------------------------------------------------------

function route() {
  closePassage(false);
  const hash = location.hash || "#/";
  const views = { chat: $("chat-view"), docs: $("docs-view"), doc: $("doc-view") };
  let view = "chat";
  const docMatch = hash.match(/^#\/doc\/([^/]+)(?:\/art\/(\d+))?$/);
  if (hash === "#/docs") view = "docs";
  else if (docMatch) view = "doc";
  for (const [name, node] of Object.entries(views)) node.hidden = name !== view;
  $("nav-chat").setAttribute("aria-current", view === "chat" ? "page" : "false");
  $("nav-docs").setAttribute("aria-current", view === "chat" ? "false" : "page");
  if (view === "docs") showDocs();
  else if (view === "doc") {
    let docId;
    try { docId = decodeURIComponent(docMatch[1]); } catch (_) { docId = docMatch[1]; }
    showDoc(docId, docMatch[2] ? parseInt(docMatch[2], 10) : null);
  } else scrollLog();
}

// --- wiring -------------------------------------------------------------------------------------------------------

/** The length of the question against the limit: a warning and no sending past it, instead of cutting it. */
function countChars() {
  const length = [...$("question").value].length;
  const over = length > MAX_CHARS;
  $("count").textContent = over ? `${length}/${MAX_CHARS} 字：问题太长，请精简到${MAX_CHARS}字以内再发送` : `${length}/${MAX_CHARS}`;
  $("count").classList.toggle("over", over);
  $("send").disabled = over || waiting;
}

function init() {
  loadConversation();
  renderConversation();
  const input = $("question");
  $("ask-form").addEventListener("submit", (event) => { event.preventDefault(); ask(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask();
    }
  });
  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => ask(button.textContent));
  }
  input.addEventListener("input", countChars);
  countChars();
  $("new-topic").addEventListener("click", () => {
    startNewTopic();
    input.focus();
  });
  $("clear").addEventListener("click", () => {
    if (conversation.length && !window.confirm("确定清空对话记录吗？清空后无法恢复。")) return;
    conversation = [];
    saveConversation();
    renderConversation();
    input.focus();
  });
  $("passage-close").addEventListener("click", () => closePassage());
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closePassage(); });
  $("doc-search").addEventListener("input", searchDoc);
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", init);
