// A small, safe Markdown renderer for model output.
//
// It builds DOM nodes directly (never an HTML string), so raw HTML in the text stays text.
// Links are kept only for http, https and mailto, and open in a new tab without a referrer.
// Images are never loaded: ![alt](url) is shown as the literal text, so a model cannot make the
// browser fetch an attacker's URL (the classic exfiltration trick).

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

/** The URL as a string when it is absolute and http, https or mailto; otherwise null. */
export function safeHref(raw) {
  const text = String(raw || "").trim();
  if (!text) return null;
  // Control characters and whitespace inside a scheme are a known bypass; refuse them outright.
  if (/[\u0000-\u001f\u007f]/.test(text)) return null;
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (!SAFE_SCHEMES.has(url.protocol)) return null;
  return url.href;
}

function el(tag, cls) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  return node;
}

function text(str) {
  return document.createTextNode(str);
}

// --- inline ------------------------------------------------------------------------------------

const PUNCT_ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";

/** Index of the "]" that closes each "[" (one pass with a stack; escaped brackets skipped). */
function bracketPairs(src) {
  const pairs = new Map();
  const stack = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\\") i++;
    else if (c === "[") stack.push(i);
    else if (c === "]" && stack.length) pairs.set(stack.pop(), i);
  }
  return pairs;
}

/** Parse "(url "title")" starting at src[pos] === "("; returns {url, end} or null. */
function parseDestination(src, pos) {
  if (src[pos] !== "(") return null;
  let i = pos + 1;
  while (src[i] === " ") i++;
  let url = "";
  if (src[i] === "<") {
    const close = src.indexOf(">", i);
    if (close === -1) return null;
    url = src.slice(i + 1, close);
    i = close + 1;
  } else {
    let depth = 0;
    const start = i;
    const end = Math.min(src.length, pos + SCAN_MAX);
    for (; i < end; i++) {
      const c = src[i];
      if (c === "\\") {
        i++;
        continue;
      }
      if (c === "(") depth++;
      else if (c === ")") {
        if (depth === 0) break;
        depth--;
      } else if (c === " " || c === "\n") break;
    }
    url = src.slice(start, i);
  }
  while (src[i] === " " || src[i] === "\n") i++;
  if (src[i] === '"' || src[i] === "'") {
    const quote = src[i];
    const close = src.indexOf(quote, i + 1);
    if (close === -1) return null;
    i = close + 1;
    while (src[i] === " ") i++;
  }
  if (src[i] !== ")") return null;
  return { url, end: i + 1 };
}

function canOpen(src, i, len, ch) {
  const after = src[i + len];
  if (after === undefined || /\s/.test(after)) return false;
  if (ch === "_") {
    const before = src[i - 1];
    if (before !== undefined && /[\p{L}\p{N}]/u.test(before)) return false;
  }
  return true;
}

/** Positions where `delim` (*, _, ~~, **, __) may close emphasis, in order (one pass). */
function closerPositions(src, delim) {
  const ch = delim[0];
  const out = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c !== ch) continue;
    let run = 1;
    while (src[i + run] === ch) run++;
    const before = src[i - 1];
    let closes = before !== undefined && !/\s/.test(before);
    if (ch === "_") {
      const after = src[i + run];
      if (after !== undefined && /[\p{L}\p{N}]/u.test(after)) closes = false;
    }
    if (closes) {
      // A run of another length belongs to another emphasis; *** closes both kinds.
      if (delim.length === 1 && (run === 1 || run >= 3)) out.push(i + run - 1);
      if (delim.length === 2 && run >= 2) out.push(i);
    }
    i += run - 1;
  }
  return out;
}

/** The first value in the sorted list that is >= from, or -1. */
function firstAtLeast(sorted, from) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length ? sorted[lo] : -1;
}

// Inline parsing stops nesting past this depth, and every search is an index built in one pass
// (or is bounded by SCAN_MAX characters), so hostile text cannot make rendering quadratic or
// blow the stack.
const MAX_INLINE_DEPTH = 16;
const SCAN_MAX = 4000;
const MAX_MARKDOWN_CHARS = 300_000;

/** Render inline Markdown into parent. */
export function renderInline(src, parent, depth = 0) {
  if (depth > MAX_INLINE_DEPTH) {
    parent.appendChild(text(src));
    return parent;
  }
  let pairs = null;
  const closingBracket = (open) => (pairs ||= bracketPairs(src)).get(open) ?? -1;
  const closers = new Map();
  const closerAfter = (delim, from) => {
    if (!closers.has(delim)) closers.set(delim, closerPositions(src, delim));
    return firstAtLeast(closers.get(delim), from);
  };
  // A code span that has no closing run from one position has none from any later one.
  const noCodeClose = new Map();
  const codeClose = (run, from) => {
    if (noCodeClose.has(run) && from >= noCodeClose.get(run)) return -1;
    const end = src.indexOf(run, from);
    if (end === -1 && !noCodeClose.has(run)) noCodeClose.set(run, from);
    return end;
  };
  let buf = "";
  const flush = () => {
    if (buf) {
      parent.appendChild(text(buf));
      buf = "";
    }
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    // Backslash escapes and hard breaks.
    if (c === "\\") {
      const next = src[i + 1];
      if (next === "\n") {
        flush();
        parent.appendChild(el("br"));
        i += 2;
        continue;
      }
      if (next !== undefined && PUNCT_ESCAPABLE.includes(next)) {
        buf += next;
        i += 2;
        continue;
      }
    }
    if (c === " " && src.startsWith("  \n", i)) {
      let j = i;
      while (src[j] === " ") j++;
      if (src[j] === "\n") {
        flush();
        parent.appendChild(el("br"));
        i = j + 1;
        continue;
      }
    }
    // Code spans.
    if (c === "`") {
      const run = /^`+/.exec(src.slice(i, i + 64))[0];
      const end = codeClose(run, i + run.length);
      if (end !== -1) {
        flush();
        const code = el("code");
        let body = src.slice(i + run.length, end).replace(/\n/g, " ");
        if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ")) body = body.slice(1, -1);
        code.textContent = body;
        parent.appendChild(code);
        i = end + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }
    // Images: shown as their literal source text and never fetched.
    if (c === "!" && src[i + 1] === "[") {
      const close = closingBracket(i + 1);
      const dest = close !== -1 ? parseDestination(src, close + 1) : null;
      if (dest) {
        flush();
        const span = el("span", "md-image-blocked");
        span.title = "Images in model output are not loaded";
        span.textContent = src.slice(i, dest.end);
        parent.appendChild(span);
        i = dest.end;
        continue;
      }
    }
    // Links.
    if (c === "[") {
      const close = closingBracket(i);
      const dest = close !== -1 ? parseDestination(src, close + 1) : null;
      if (dest) {
        flush();
        const label = src.slice(i + 1, close);
        const href = safeHref(dest.url);
        if (href) {
          const a = el("a");
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.title = href;
          renderInline(label, a, depth + 1);
          parent.appendChild(a);
        } else {
          const span = el("span", "md-link-blocked");
          span.title = "Link not allowed";
          renderInline(label, span, depth + 1);
          parent.appendChild(span);
        }
        i = dest.end;
        continue;
      }
    }
    // Autolinks in angle brackets and bare http(s) URLs.
    if (c === "<") {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(src.slice(i));
      if (m) {
        const href = safeHref(m[1]);
        if (href) {
          flush();
          const a = el("a");
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.textContent = m[1];
          parent.appendChild(a);
          i += m[0].length;
          continue;
        }
      }
    }
    if ((c === "h" || c === "H") && (i === 0 || /[\s(]/.test(src[i - 1]))) {
      const m = /^https?:\/\/[^\s<>()]+(?:\([^\s<>()]*\)[^\s<>()]*)*/i.exec(src.slice(i));
      if (m) {
        const url = m[0].replace(/[.,;:!?'"*_~]+$/, "");
        const href = safeHref(url);
        if (href) {
          flush();
          const a = el("a");
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.textContent = url;
          parent.appendChild(a);
          i += url.length;
          continue;
        }
      }
    }
    // Emphasis, strong, strikethrough.
    if (c === "*" || c === "_" || c === "~") {
      const doubled = src[i + 1] === c;
      if (c === "~" && !doubled) {
        buf += c;
        i++;
        continue;
      }
      const delim = doubled ? c + c : c;
      if (canOpen(src, i, delim.length, c)) {
        const close = closerAfter(delim, i + delim.length);
        if (close !== -1 && close > i + delim.length) {
          flush();
          const tag = c === "~" ? "del" : doubled ? "strong" : "em";
          const node = el(tag);
          renderInline(src.slice(i + delim.length, close), node, depth + 1);
          parent.appendChild(node);
          i = close + delim.length;
          continue;
        }
      }
      buf += delim;
      i += delim.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  return parent;
}

// --- blocks ------------------------------------------------------------------------------------

const FENCE = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_SEP = /^ *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$/;

function isBlank(line) {
  return /^\s*$/.test(line);
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let cur = "";
  for (let i = 0; i < row.length; i++) {
    if (row[i] === "\\" && row[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (row[i] === "|") {
      cells.push(cur.trim());
      cur = "";
    } else cur += row[i];
  }
  cells.push(cur.trim());
  return cells;
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }
    // Fenced code.
    let m = FENCE.exec(line);
    if (m) {
      const fence = m[2];
      const body = [];
      i++;
      while (i < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[i])) {
        body.push(lines[i]);
        i++;
      }
      i++;
      const pre = el("pre");
      const code = el("code");
      if (m[3]) code.className = `lang-${m[3].replace(/[^\w-]/g, "")}`;
      code.textContent = body.join("\n");
      pre.appendChild(code);
      parent.appendChild(pre);
      continue;
    }
    m = HEADING.exec(line);
    if (m) {
      const node = el(`h${m[1].length}`);
      renderInline(m[2] || "", node);
      parent.appendChild(node);
      i++;
      continue;
    }
    if (HR.test(line)) {
      parent.appendChild(el("hr"));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = QUOTE.exec(lines[i]);
        body.push(q ? q[1] : lines[i]);
        i++;
      }
      const quote = el("blockquote");
      if (depth < 8) renderBlocks(body, quote, depth + 1);
      else quote.textContent = body.join("\n");
      parent.appendChild(quote);
      continue;
    }
    m = LIST_ITEM.exec(line);
    if (m) {
      i = renderList(lines, i, parent, depth);
      continue;
    }
    // Tables: a header row followed by a separator row.
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const head = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((c) =>
        c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : "",
      );
      const table = el("table", "md-table");
      const thead = el("thead");
      const tr = el("tr");
      head.forEach((cell, k) => {
        const th = el("th", aligns[k] ? `align-${aligns[k]}` : "");
        renderInline(cell, th);
        tr.appendChild(th);
      });
      thead.appendChild(tr);
      table.appendChild(thead);
      const tbody = el("tbody");
      i += 2;
      while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
        const row = el("tr");
        const cells = splitRow(lines[i]);
        for (let k = 0; k < head.length; k++) {
          const td = el("td", aligns[k] ? `align-${aligns[k]}` : "");
          renderInline(cells[k] ?? "", td);
          row.appendChild(td);
        }
        tbody.appendChild(row);
        i++;
      }
      table.appendChild(tbody);
      const wrap = el("div", "md-table-wrap");
      wrap.appendChild(table);
      parent.appendChild(wrap);
      continue;
    }
    // Paragraph: runs until a blank line or the start of another block.
    const para = [line.trim()];
    i++;
    while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i])) {
      para.push(lines[i].replace(/^\s+/, ""));
      i++;
    }
    const p = el("p");
    renderInline(para.join("\n"), p);
    parent.appendChild(p);
  }
}

function renderList(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.setAttribute("start", String(n));
  }
  let i = start;
  let loose = false;
  const items = [];
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = indent + m[2].length + 1;
    const body = [m[3] || ""];
    i++;
    let sawBlank = false;
    while (i < lines.length) {
      const l = lines[i];
      if (isBlank(l)) {
        sawBlank = true;
        body.push("");
        i++;
        continue;
      }
      const lead = l.length - l.replace(/^ +/, "").length;
      if (lead >= contentIndent || (lead > indent && LIST_ITEM.test(l))) {
        body.push(l.slice(Math.min(lead, contentIndent)));
        sawBlank = false;
        i++;
        continue;
      }
      if (!sawBlank && lead > indent - 1 && !startsBlock(l)) {
        body.push(l.trim()); // lazy continuation of the item's paragraph
        i++;
        continue;
      }
      break;
    }
    while (body.length && body[body.length - 1] === "") {
      body.pop();
      if (i < lines.length && LIST_ITEM.test(lines[i])) loose = true;
    }
    items.push(body);
  }
  for (const body of items) {
    const li = el("li");
    if (depth < 8) {
      renderBlocks(body, li, depth + 1);
      // Tight lists: unwrap the single paragraph so items do not get paragraph spacing.
      if (!loose && li.firstChild && li.firstChild.nodeName === "P") {
        const p = li.firstChild;
        while (p.firstChild) li.insertBefore(p.firstChild, p);
        li.removeChild(p);
      }
    } else {
      li.textContent = body.join("\n");
    }
    list.appendChild(li);
  }
  parent.appendChild(list);
  return i;
}

/** Render Markdown text into a new <div class="markdown">. */
export function renderMarkdown(source) {
  const root = el("div", "markdown");
  const str = String(source ?? "");
  if (str.length > MAX_MARKDOWN_CHARS) {
    // Too long to format quickly: show it as it is.
    const pre = el("pre");
    pre.textContent = str;
    root.appendChild(pre);
    return root;
  }
  const lines = str
    .replace(/\r\n?/g, "\n")
    .replace(/\t/g, "    ")
    .split("\n");
  renderBlocks(lines, root, 0);
  return root;
}
