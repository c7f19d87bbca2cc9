// 政务知识库 — the question page. Plain JavaScript, no build step.
// Every text coming from the API or from the user is inserted with textContent / createTextNode, never as HTML.
"use strict";

/** Where conversations were kept for every knowledge base alike (two townships' questions mixed in one tab). */
const OLD_STORE_KEY = "zwkb.conversation.v1";
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

class ApiFailure extends Error {
  /** `kind`: timeout, offline, unreachable, rate_limited, server or refused; `wait`: seconds (rate_limited). */
  constructor(message, kind, wait) {
    super(message);
    this.kind = kind || "";
    this.wait = wait || 0;
  }
}

// One deployment may serve several townships (KB_STORE=milvus): ?kb=<name> in the page's address picks one.
const KB_NAME = new URLSearchParams(location.search).get("kb");
/** The conversation is kept under the knowledge base's name (「default」 without ?kb=): another township's page
 * in the same tab starts its own. */
const STORE_KEY = `zwkb.conversation.v2.${KB_NAME || "default"}`;

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
    // Say what really happened: stopped by the user, no answer in time, this device offline, or the server
    // not reachable (down, or the network between) — never blame the user's network without knowing.
    if (signal && signal.aborted) throw new ApiFailure(signal.reason === "timeout"
      ? `服务器 ${ASK_TIMEOUT_MS / 1000} 秒内没有回答，已停止。请稍后重试` : "已停止", signal.reason === "timeout" ? "timeout" : "stopped");
    if (navigator.onLine === false) {
      throw new ApiFailure("您的设备现在没有连上网络（请检查 Wi-Fi 或手机流量），连上后再点重试", "offline");
    }
    throw new ApiFailure("暂时连不上服务器（不是您的网络问题），请稍后重试；急事请拨打 12348", "unreachable");
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (response.status === 429) {
    const wait = parseInt(response.headers.get("Retry-After") || "", 10);
    const seconds = Number.isFinite(wait) && wait > 0 ? wait : 1;
    throw new ApiFailure(seconds >= 120 ? `请求太频繁，请 ${Math.ceil(seconds / 60)} 分钟后再试`
      : `请求太频繁，请 ${seconds} 秒后再试`, "rate_limited", seconds);
  }
  if (!response.ok) {
    const message = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
    throw new ApiFailure(message || (response.status >= 500
      ? `服务器暂时出了问题（${response.status}），请稍后再试` : `请求没有成功（${response.status}）`),
    response.status >= 500 ? "server" : "refused");
  }
  return data;
}

// --- conversation -------------------------------------------------------------------------------------------------

let conversation = [];  // [{type: "user", text} | {type: "answer", data, feedback} | {type: "topic"}]

// The conversation is kept for this browser tab only: a 便民服务中心 PC is shared, the next person must not see it.
function loadConversation() {
  try { localStorage.removeItem(OLD_STORE_KEY); } catch (_) { /* what older versions kept for good */ }
  try { sessionStorage.removeItem(OLD_STORE_KEY); } catch (_) { /* one key for every knowledge base */ }
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
  setAskCollapsed(false);  // measured and kept clear at its full size: it stays so until the user scrolls up
  const last = $("log").lastElementChild;
  const formHeight = $("ask-form").offsetHeight;
  document.documentElement.style.setProperty("--ask-height", `${formHeight}px`);
  if (!last) return;
  const room = window.innerHeight - formHeight - 8;
  last.scrollIntoView({ block: last.getBoundingClientRect().height > room ? "start" : "nearest" });
  pageScrollY = window.scrollY;
}

// While the user reads back (scrolls up through the conversation) the pinned area is its input row only: the note
// and the count give their lines to the conversation. It is whole again when the user taps, focuses or types in
// it, or scrolls back to the bottom; and whenever the page scrolls to an answer (scrollLog).
let lastScrollY = 0;
let pageScrollY = null;  // where scrollLog put the page: that scroll is the page's, not the user reading back

function setAskCollapsed(on) {
  $("ask-form").classList.toggle("collapsed", on);
}

function onScroll() {
  const y = window.scrollY;
  const previous = lastScrollY;
  lastScrollY = y;
  if ($("chat-view").hidden) return;
  const fromBottom = document.documentElement.scrollHeight - window.innerHeight - y;
  if (fromBottom <= 2) { setAskCollapsed(false); return; }
  if (y === pageScrollY) { pageScrollY = null; return; }
  // Not in the last lines: what collapsing saves would bring the page to the bottom, and open it again.
  if (y < previous - 2 && fromBottom > $("ask-hint").offsetHeight + 40) setAskCollapsed(true);
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

/** What the answer is and where a person can help (the API's `notice`). The full notice stands once, in the
 * pinned note; an answer keeps a compact 「仅供参考 · 12348」 line, and danger (110 and the help line for it)
 * comes first, in full, and stands out. */
function answerNote(data) {
  const notice = String(data.notice || "");
  const frag = document.createDocumentFragment();
  if (notice.startsWith("如正面临暴力")) {
    const cut = notice.search(/以上(内容|回答)/);
    const urgent = el("p", "answer-note urgent");
    urgent.setAttribute("role", "note");
    urgent.append(withPhoneLinks(cut > 0 ? notice.slice(0, cut) : notice));
    frag.append(urgent);
  }
  const note = el("p", "answer-note");
  note.setAttribute("role", "note");
  const call = el("a", "tel", "12348");
  call.href = "tel:12348";
  call.setAttribute("aria-label", "拨打 12348 公共法律服务热线");
  note.append(el("span", null, data.mode === "generative" ? "AI 生成，可能有误，仅供参考" : "自动摘录，仅供参考"),
    document.createTextNode("· 人工帮助"), call);
  frag.append(note);
  return frag;
}

/** The page's name, with its knowledge base's township once GET /api/contacts has said it. */
let siteName = "政务知识库";

/** The township (the title and heading: each township's page, ?kb=, shows its own name) and where a person helps,
 * shown in the 联系人工 card (GET /api/contacts: set at ingest per knowledge base, else KB_TOWNSHIP, KB_HELP_*). */
async function loadContacts() {
  try {
    const contacts = await api("/api/contacts");
    showTownship(contacts && contacts.township);
    fillHelpCard(contacts);
    showExamples(contacts && contacts.examples);
  } catch (_) { /* unreachable: the card keeps 12348, the page its plain name */ }
}

function showTownship(township) {
  if (!township) return;
  siteName = `${township}政务知识库`;
  document.title = siteName;
  $("site-name").textContent = siteName;
}

/** The knowledge base's own example questions (KB_EXAMPLES, or set at ingest): another township's page never
 * offers questions about ours. The page's own stay until the API has said them. */
function showExamples(examples) {
  if (!Array.isArray(examples)) return;
  const group = document.querySelector(".examples");
  group.replaceChildren(...examples.map((example) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.textContent = example;
    return button;
  }));
  group.hidden = !examples.length;
}

/** The 联系人工 card: 12348 as text (copyable at a desk, a 拨打 link on a phone) and the township's station. */
function fillHelpCard(contacts) {
  const station = $("help-station");
  if (!contacts) return;
  station.replaceChildren();
  const row = (label, value, className) => {
    if (!value) return;
    const dd = el("dd");
    dd.append(el("span", className || null, value));
    station.append(el("dt", null, label), dd);
    return dd;
  };
  row("服务站", contacts.name);
  const phone = row("电话", contacts.phone, "number");
  if (phone) {
    const call = el("a", "call", "拨打");
    call.href = `tel:${contacts.phone.replace(/[^\d+-]/g, "")}`;
    const copy = el("button", "secondary copy-number", "复制号码");
    copy.type = "button";
    copy.dataset.number = contacts.phone;
    phone.append(" ", call, " ", copy);
  }
  row("地址", contacts.address);
  row("时间", contacts.hours);
}

let helpOpener = null;
function openHelp(opener) {
  helpOpener = opener || null;
  $("help-card").hidden = false;
  $("nav-help").setAttribute("aria-expanded", "true");
  $("help-status").textContent = "";
  $("help-card").scrollIntoView({ block: "nearest" });
  $("help-card").focus({ preventScroll: true });
}

function closeHelp() {
  $("help-card").hidden = true;
  $("nav-help").setAttribute("aria-expanded", "false");
  if (helpOpener && document.contains(helpOpener)) helpOpener.focus();
  helpOpener = null;
}

/** `text` on the clipboard; the older way (a selected textarea) where the Clipboard API is missing or refused. */
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* refused: try the older way */ }
  const area = el("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "sr-only";
  document.body.append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
  area.remove();
  return ok;
}

/** An answer as plain text with its sources, for pasting into WeChat. */
function answerAsText(data) {
  const lines = [String(data.answer || "").trim()];
  const citations = data.citations || [];
  if ((data.answerable || data.related) && citations.length) {
    lines.push("", "出处：");
    for (const c of citations) lines.push(`[${c.n}] ${citationLabel(c)}${c.doc_date ? `（${c.doc_date}）` : ""}`);
  }
  lines.push("", `（${siteName}自动摘录，仅供参考，以原文为准 · 人工帮助 12348）`);
  return lines.join("\n");
}

function answerTools(data) {
  const box = el("div", "answer-tools");
  const status = el("span", "status");
  status.setAttribute("role", "status");
  const copy = el("button", "secondary small copy-answer", "复制回答和出处");
  copy.type = "button";
  copy.addEventListener("click", async () => {
    status.textContent = (await copyText(answerAsText(data))) ? "已复制，可以粘贴到微信" : "复制没有成功，请长按文字复制";
  });
  box.append(copy);
  if (!data.answerable) {
    const help = el("button", "secondary small ask-person", "联系人工");
    help.type = "button";
    help.addEventListener("click", () => openHelp(help));
    box.append(help);
  }
  box.append(status);
  return box;
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
  bubble.append(answerTools(data));
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
    fitInput();
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

/** Where a passage is in its document: its article, or (a report has none) its place in the text. */
function passageHash(c) {
  if (c.article_no !== null && c.article_no !== undefined) return articleHash(c.doc_id, c.article_no);
  if (Number.isInteger(c.start)) return `${articleHash(c.doc_id)}/at/${c.start}${Number.isInteger(c.end) ? `-${c.end}` : ""}`;
  return articleHash(c.doc_id);
}

function openPassage(c, opener) {
  passageOpener = opener || null;
  $("passage-title").textContent = citationLabel(c);
  const meta = [c.section, c.doc_date ? `文件日期：${c.doc_date}` : ""].filter(Boolean).join(" · ");
  $("passage-meta").textContent = meta;
  $("passage-text").replaceChildren(markedText(String(c.text || ""), c.highlights));
  $("passage-link").href = passageHash(c);
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

/** 宪法 is 宪法; a 条例, 规定 or 办法 filed as kind "law" is a 行政法规; the rest by kind. */
function kindLabel(kind, title) {
  const name = String(title || "");
  if (kind === "law" && /宪法$/.test(name)) return "宪法";
  if (kind === "law" && /(条例|规定|办法)$/.test(name)) return "行政法规";
  return KIND_LABELS[kind] || kind || "";
}

/** The library's groups, in this order; 宪法 heads the laws. */
const DOC_GROUPS = ["法律", "行政法规", "报告", "其他"];
function docGroup(kind, title) {
  const label = kindLabel(kind, title);
  if (label === "宪法" || label === "法律") return "法律";
  if (label === "行政法规" || label === "法规" || label === "规章") return "行政法规";
  if (label === "报告") return "报告";
  return "其他";
}

/** A title without 「中华人民共和国」, for sorting and finding. */
const shortTitle = (title) => String(title || "").replace(/^中华人民共和国/, "");

let libraryDocs = [];

async function showDocs() {
  const status = $("docs-status");
  status.textContent = "正在加载…";
  $("docs-list").replaceChildren();
  try {
    const data = await api("/api/documents");
    libraryDocs = data.documents;
    filterDocs();
  } catch (err) {
    status.textContent = err.message;
  }
  $("docs-title").focus();
}

/** A document's dates as it states them (GET /api/documents: `published`, `effective`), each with its word:
 * 「公布 2019-04-20」「施行 2019-09-01」; a report its year; a document that states neither its `date`. */
function libraryDates(d) {
  if (d.kind === "report") return d.date ? [`${d.date}年度`] : [];
  const stated = [d.published, d.effective].filter(Boolean).map((x) => `${x.label} ${x.date}`);
  return stated.length ? stated : d.date ? [`日期 ${d.date}`] : [];
}

/** The library grouped by kind, each group sorted (宪法 first, then by title), narrowed by the title search. */
function filterDocs() {
  const query = $("docs-filter").value.trim();
  const list = $("docs-list");
  list.replaceChildren();
  const shown = libraryDocs.filter((d) => !query || String(d.title).includes(query));
  for (const group of DOC_GROUPS) {
    const docs = shown.filter((d) => docGroup(d.kind, d.title) === group).sort((x, y) => {
      const rank = (d) => (kindLabel(d.kind, d.title) === "宪法" ? 0 : 1);
      return rank(x) - rank(y) || shortTitle(x.title).localeCompare(shortTitle(y.title), "zh-CN");
    });
    if (!docs.length) continue;
    const heading = el("h3", "doc-group", `${group}（${docs.length}）`);
    const items = el("ul", "doc-list");
    items.setAttribute("aria-label", group);
    for (const d of docs) {
      const item = el("li");
      const link = el("a", null, d.title);
      link.href = articleHash(d.doc_id);
      const meta = el("span", "meta");
      meta.append(el("span", "doc-kind", kindLabel(d.kind, d.title)));
      for (const date of libraryDates(d)) meta.append(" · ", el("span", "doc-date", date));
      item.append(link, meta);
      items.append(item);
    }
    list.append(heading, items);
  }
  $("docs-status").textContent = query
    ? (shown.length ? `找到 ${shown.length} 个文件` : `没有标题含「${query}」的文件`)
    : `共 ${libraryDocs.length} 个文件`;
}

let currentDoc = null;  // {id, blocks: [{node, text, start, end}]}

/** Markup that is not text for a reader: HTML comments (<!-- INFO END -->, <!-- FORCE BREAK -->). */
const stripComments = (text) => text.replace(/<!--[\s\S]*?-->/g, "");

/** The text split into blocks, each with its [start, end) in the text: one per article (all its chunks merged),
 * and between them one per heading or paragraph. */
function documentBlocks(text, index, isReport) {
  const articles = new Map();
  for (const a of index || []) {
    const known = articles.get(a.article_no);
    if (known) { known.start = Math.min(known.start, a.start); known.end = Math.max(known.end, a.end); }
    else articles.set(a.article_no, { no: a.article_no, article: a.article, start: a.start, end: a.end });
  }
  const sorted = [...articles.values()].sort((a, b) => a.start - b.start);
  const blocks = [];
  let pos = 0;
  for (const a of sorted) {
    const start = Math.max(a.start, pos);
    if (start > pos) blocks.push(...lineBlocks(text, pos, start, isReport));
    if (a.end > start) blocks.push({ text: text.slice(start, a.end), no: a.no, start, end: a.end });
    pos = Math.max(pos, a.end);
  }
  if (pos < text.length) blocks.push(...lineBlocks(text, pos, text.length, isReport));
  return blocks;
}

/** The text between articles as blocks: Markdown headings (## 第一章 总则) and, in a report, 「一、」 lines and
 * the 「（一）……。」 lead of a paragraph as headings; every other paragraph a block of its own. */
function lineBlocks(text, from, to, isReport) {
  const out = [];
  let lineStart = from;
  for (const line of text.slice(from, to).split("\n")) {
    const start = lineStart;
    lineStart += line.length + 1;
    const shown = stripComments(line).trim();
    if (!shown || /^#{1,6}$/.test(shown)) continue;  // nothing, or an empty heading (民法典 附则: 「##」)
    const md = shown.match(/^(#{1,6})\s+(.*\S)$/);
    if (md) { out.push({ text: md[2], level: md[1].length, start, end: start + line.length }); continue; }
    if (isReport && /^[一二三四五六七八九十]+、/.test(shown)) {
      out.push({ text: shown, level: 2, start, end: start + line.length });
      continue;
    }
    const lead = isReport ? shown.match(/^（[一二三四五六七八九十]+）[^。]{1,40}。/) : null;
    if (lead) {
      out.push({ text: lead[0], level: 3, start, end: start + line.indexOf(lead[0]) + lead[0].length });
      const rest = shown.slice(lead[0].length);
      if (rest) out.push(...reportItems(rest, start + line.indexOf(rest)));
      continue;
    }
    if (isReport) out.push(...reportItems(shown, start + line.indexOf(shown)));
    else out.push({ text: shown, start, end: start + line.length });
  }
  return out;
}

/** A report's paragraph split at its 「一是……。二是……」 items, each a block (the passages the answers cite). */
function reportItems(text, start) {
  const cuts = [0];
  for (const match of text.matchAll(/。(?=[一二三四五六七八九十]是)/g)) cuts.push(match.index + 1);
  cuts.push(text.length);
  const out = [];
  for (let i = 0; i + 1 < cuts.length; i += 1) {
    if (cuts[i + 1] > cuts[i]) out.push({ text: text.slice(cuts[i], cuts[i + 1]), start: start + cuts[i], end: start + cuts[i + 1] });
  }
  return out;
}

/** The heading levels a document uses (its title excepted), as h3, h4, h5 in order: no level is skipped. */
function headingTags(blocks) {
  const levels = [...new Set(blocks.filter((b) => b.level).map((b) => b.level))].sort();
  return new Map(levels.map((level, i) => [level, i]));
}

/** A block's content: an article's paragraphs and 项 （一）（二）… each on a line of their own. */
function fillBlock(block, ranges) {
  const node = block.node;
  node.replaceChildren();
  if (block.level) { node.append(markedText(block.text, ranges)); return; }
  let offset = 0;
  for (const line of block.text.split("\n")) {
    const lineStart = offset;
    offset += line.length + 1;
    if (!stripComments(line).trim()) continue;
    const p = el("p", /^\s*（[一二三四五六七八九十]+）/.test(line) ? "item" : null);
    if (line.includes("<!--")) p.append(stripComments(line));  // no marks: offsets would not match
    else p.append(markedText(line, (ranges || []).map(([s, e]) => [s - lineStart, e - lineStart])));
    node.append(p);
  }
}

/** Dates with what happened on them: 公布, 施行, 通过, 修正 … as the document states them. */
function dateLabel(event) {
  for (const word of ["施行", "公布", "发布", "修正", "修订", "通过"]) if (String(event).includes(word)) return word;
  return "日期";
}

async function showDoc(docId, target) {
  const body = $("doc-body");
  const status = $("doc-status");
  if (!currentDoc || currentDoc.id !== docId) {
    currentDoc = null;
    body.replaceChildren();
    $("doc-title").textContent = "";
    $("doc-meta").textContent = "";
    $("doc-dates").replaceChildren();
    $("doc-search").value = "";
    $("doc-search-count").textContent = "";
    status.textContent = "正在加载…";
    try {
      const doc = await api(`/api/documents/${encodeURIComponent(docId)}`);
      status.textContent = "";
      $("doc-title").textContent = doc.title;
      $("doc-meta").textContent = [kindLabel(doc.kind, doc.title), doc.kind === "report" && doc.date ? `${doc.date}年度` : ""]
        .filter(Boolean).join(" · ");
      const seen = new Set();
      for (const d of doc.dates || []) {
        if (seen.has(`${d.date} ${d.event}`)) continue;  // a code (民法典) states them once per part
        seen.add(`${d.date} ${d.event}`);
        const item = el("li");
        item.append(el("span", "date-label", dateLabel(d.event)), document.createTextNode(` ${d.date} ${d.event}`));
        $("doc-dates").append(item);
      }
      if (doc.effective && !seen.has(`${doc.effective.date} ${doc.effective.event}`)) {  // stated in its text
        const item = el("li");
        item.append(el("span", "date-label", doc.effective.label),
          document.createTextNode(` ${doc.effective.date}（${doc.effective.event}）`));
        $("doc-dates").append(item);
      }
      if (!(doc.dates || []).length && doc.date && doc.kind !== "report") {
        $("doc-dates").append(el("li", null, `日期：${doc.date}`));
      }
      const text = String(doc.text || "");
      // The document's own title (a heading, or a report's first line) repeats the page's: left out. So are the
      // lines of dates above the first heading of a law, shown labelled above instead.
      let blocks = documentBlocks(text, doc.articles_index, doc.kind === "report");
      const firstHeading = blocks.findIndex((b) => b.level && !(b.text === doc.title));
      blocks = blocks.filter((b, i) => !(b.text === doc.title && i < 2)
        && !((doc.dates || []).length && i < firstHeading && !b.level && !b.no && /^\d{4}年/.test(b.text)));
      const tags = headingTags(blocks);
      for (const b of blocks) {
        if (b.level) {
          const depth = tags.get(b.level);
          b.node = el(["h3", "h4", "h5"][Math.min(depth, 2)], `block doc-heading level-${Math.min(depth, 2) + 1}`);
        } else {
          b.node = el("div", b.no === undefined ? "block" : "block article");
        }
        if (b.no !== undefined) b.node.id = `art-${b.no}`;
        fillBlock(b);
        body.append(b.node);
      }
      currentDoc = { id: docId, blocks };
    } catch (err) {
      status.textContent = err.message;
      return;
    }
  }
  for (const b of currentDoc.blocks) {
    if (b.node.classList.contains("current")) { b.node.classList.remove("current"); fillBlock(b); }
  }
  let node = null;
  if (target && target.article) node = document.getElementById(`art-${target.article}`);
  else if (target && target.start !== undefined) {
    // A passage without an article number (the township report): the paragraph holding it, the passage marked.
    const hit = currentDoc.blocks.find((b) => !b.level && b.start <= target.start && target.start < b.end)
      || currentDoc.blocks.find((b) => b.start >= target.start);
    if (hit) {
      node = hit.node;
      fillBlock(hit, [[target.start - hit.start, (target.end || target.start) - hit.start]]);
    }
  }
  if (node) {
    node.classList.add("current");
    node.setAttribute("tabindex", "-1");
    // The block's start below the pinned title; a marked passage further down in a long block, in the middle.
    const mark = node.querySelector("mark");
    node.scrollIntoView({ block: "start" });
    if (mark && mark.getBoundingClientRect().bottom > window.innerHeight) mark.scrollIntoView({ block: "center" });
    node.focus({ preventScroll: true });
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
      fillBlock(b);
      continue;
    }
    const ranges = [];
    for (let i = b.text.indexOf(query); i !== -1; i = b.text.indexOf(query, i + query.length)) {
      ranges.push([i, i + query.length]);
    }
    b.node.hidden = ranges.length === 0;
    fillBlock(b, ranges);
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
  const docMatch = hash.match(/^#\/doc\/([^/]+)(?:\/art\/(\d+)|\/at\/(\d+)(?:-(\d+))?)?$/);
  if (hash === "#/docs") view = "docs";
  else if (docMatch) view = "doc";
  for (const [name, node] of Object.entries(views)) node.hidden = name !== view;
  $("nav-chat").setAttribute("aria-current", view === "chat" ? "page" : "false");
  $("nav-docs").setAttribute("aria-current", view === "chat" ? "false" : "page");
  if (view === "docs") showDocs();
  else if (view === "doc") {
    let docId;
    try { docId = decodeURIComponent(docMatch[1]); } catch (_) { docId = docMatch[1]; }
    showDoc(docId, docMatch[2] ? { article: parseInt(docMatch[2], 10) }
      : docMatch[3] ? { start: parseInt(docMatch[3], 10), end: docMatch[4] ? parseInt(docMatch[4], 10) : undefined }
        : null);
  } else scrollLog();
}

// --- wiring -------------------------------------------------------------------------------------------------------

/** The length of the question against the limit: a warning and no sending past it, instead of cutting it. */
let wasOver = false;
function countChars() {
  const length = [...$("question").value].length;
  const over = length > MAX_CHARS;
  const message = `${length}/${MAX_CHARS} 字：问题太长，请精简到${MAX_CHARS}字以内再发送`;
  $("count").textContent = over ? message : length ? `${length}/${MAX_CHARS}` : "";
  $("count").classList.toggle("over", over);
  $("send").disabled = over || waiting;
  // Announced once when the limit is crossed, not on every keystroke.
  if (over !== wasOver) $("count-alert").textContent = over ? message : "";
  wasOver = over;
}

/** An example question: asked at once into an empty box; added under what the user typed otherwise (never
 * replacing it), to be sent when they choose. */
function useExample(example) {
  const input = $("question");
  if (waiting) return;
  if (!input.value.trim()) { ask(example); return; }
  input.value = `${input.value.replace(/\s+$/, "")}\n${example}`;
  countChars();
  fitInput();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** The box grows with what is typed (up to 30 % of the screen, then it scrolls) and shrinks back when sent. */
function fitInput() {
  const input = $("question");
  input.style.height = "auto";
  if (input.value) input.style.height = `${input.scrollHeight + 2}px`;
  else input.style.removeProperty("height");
}

/** 长者模式: larger type, bigger buttons, higher contrast; remembered for this tab only, like the conversation. */
const ELDER_KEY = "zwkb.elder.v1";
function setElder(on) {
  document.documentElement.classList.toggle("elder", on);
  $("elder-toggle").setAttribute("aria-pressed", on ? "true" : "false");
  try {
    if (on) sessionStorage.setItem(ELDER_KEY, "1");
    else sessionStorage.removeItem(ELDER_KEY);
  } catch (_) { /* private mode */ }
  fitInput();
  document.documentElement.style.setProperty("--ask-height", `${$("ask-form").offsetHeight}px`);
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
  document.querySelector(".examples").addEventListener("click", (event) => {
    const button = event.target.closest(".example");
    if (button) useExample(button.textContent);
  });
  input.addEventListener("input", () => { setAskCollapsed(false); countChars(); fitInput(); });
  for (const type of ["focusin", "pointerdown"]) $("ask-form").addEventListener(type, () => setAskCollapsed(false));
  lastScrollY = window.scrollY;
  window.addEventListener("scroll", onScroll, { passive: true });
  countChars();
  $("elder-toggle").addEventListener("click", () => setElder(!document.documentElement.classList.contains("elder")));
  setElder(sessionStorage.getItem(ELDER_KEY) === "1");
  loadContacts();
  $("nav-help").addEventListener("click", () => ($("help-card").hidden ? openHelp($("nav-help")) : closeHelp()));
  $("help-close").addEventListener("click", closeHelp);
  document.addEventListener("click", async (event) => {
    const button = event.target.closest(".copy-number");
    if (!button) return;
    $("help-status").textContent = (await copyText(button.dataset.number)) ? `已复制 ${button.dataset.number}`
      : "复制没有成功，请选中号码复制";
  });
  $("docs-filter").addEventListener("input", filterDocs);
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
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (!$("passage").hidden) closePassage();
    else if (!$("help-card").hidden) closeHelp();
  });
  $("doc-search").addEventListener("input", searchDoc);
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", init);
