// A static site generator: `node build.js CONTENT OUT`.
//
// Every Markdown file under CONTENT (front matter between `---` lines) becomes a page in OUT,
// rendered through layouts/page.html; posts (content/posts/, named DATE-NAME.md) also make the
// index, one page per tag and an RSS feed. Drafts (`draft: true`) are left out. No dependencies:
// the Markdown subset is headings, paragraphs, lists, fenced code, `code`, **strong**, *em* and
// [links](url).
"use strict";
const fs = require("fs");
const path = require("path");

const [contentDir, outDir] = process.argv.slice(2);
const site = JSON.parse(fs.readFileSync("site.json", "utf8"));
const layout = fs.readFileSync("layouts/page.html", "utf8");

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function inline(s) {
  // Code spans first, kept aside so their contents are not formatted.
  const codes = [];
  s = s.replace(/`([^`]+)`/g, (_, c) => `\u0000${codes.push(escapeHtml(c)) - 1}\u0000`);
  s = escapeHtml(s)
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>")
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[i]}</code>`);
}

function markdown(src) {
  const out = [];
  const lines = src.split("\n");
  let para = [];
  let list = null;
  const flush = () => {
    if (para.length) out.push(`<p>${inline(para.join(" "))}</p>`);
    if (list) out.push(`<ul>\n${list.map((i) => `<li>${inline(i)}</li>`).join("\n")}\n</ul>`);
    para = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if (line.startsWith("```")) {
      flush();
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
    } else if ((m = /^(#{1,3}) (.*)$/.exec(line))) {
      flush();
      out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
    } else if ((m = /^[-*] (.*)$/.exec(line))) {
      if (para.length) flush();
      (list = list || []).push(m[1]);
    } else if (line.trim() === "") {
      flush();
    } else {
      if (list) flush();
      para.push(line.trim());
    }
  }
  flush();
  return out.join("\n");
}

function frontMatter(text, file) {
  const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
  if (!m) throw new Error(`${file}: no front matter`);
  const meta = {};
  for (const line of m[1].split("\n")) {
    const kv = /^(\w+):\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`${file}: bad front matter line ${JSON.stringify(line)}`);
    let v = kv[2];
    if (/^\[.*\]$/.test(v)) v = v.slice(1, -1).split(",").map((t) => t.trim()).filter(Boolean);
    else if (v === "true" || v === "false") v = v === "true";
    meta[kv[1]] = v;
  }
  return { meta, body: m[2] };
}

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

const written = [];
function write(rel, text) {
  const p = path.join(outDir, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  written.push(`${rel} ${Buffer.byteLength(text)}`);
}

// Read every page.
const pages = [];
for (const file of walk(contentDir).filter((f) => f.endsWith(".md")).sort()) {
  const { meta, body } = frontMatter(fs.readFileSync(file, "utf8"), file);
  if (meta.draft) continue;
  const rel = path.relative(contentDir, file);
  const isPost = rel.startsWith("posts" + path.sep);
  const base = path.basename(rel, ".md").replace(/^\d{4}-\d\d-\d\d-/, "");
  const slug = meta.slug || base;
  pages.push({
    ...meta,
    tags: meta.tags || [],
    isPost,
    url: isPost ? `posts/${slug}.html` : `${slug}.html`,
    html: markdown(body),
  });
}
const posts = pages.filter((p) => p.isPost).sort((a, b) => b.date.localeCompare(a.date));
const year = posts.length ? posts[0].date.slice(0, 4) : "";

function page(url, title, body) {
  const root = "../".repeat(url.split("/").length - 1);
  const vars = { title: escapeHtml(title), site: escapeHtml(site.title), author: escapeHtml(site.author), year, root, body };
  write(url, layout.replace(/\{\{(\w+)\}\}/g, (_, k) => vars[k]));
}

function tagLinks(root, tags) {
  return tags.map((t) => `<a href="${root}tags/${t}.html">#${t}</a>`).join(" ");
}

function listing(root, list) {
  return `<ul class="posts">\n${list
    .map((p) => `<li>${p.date} <a href="${root}${p.url}">${escapeHtml(p.title)}</a> <span class="tags">${tagLinks(root, p.tags)}</span></li>`)
    .join("\n")}\n</ul>`;
}

for (const p of pages) {
  const root = p.isPost ? "../" : "";
  const meta = p.isPost ? `\n<p class="meta">${p.date} <span class="tags">${tagLinks(root, p.tags)}</span></p>` : "";
  page(p.url, p.title, `<article>\n${p.html}${meta}\n</article>`);
}
page("index.html", "Home", `<h1>${escapeHtml(site.title)}</h1>\n${listing("", posts)}\n<p><a href="about.html">About</a> · <a href="feed.xml">Feed</a></p>`);
const tags = [...new Set(posts.flatMap((p) => p.tags))].sort();
for (const t of tags) {
  page(`tags/${t}.html`, `#${t}`, `<h1>Posts tagged #${t}</h1>\n${listing("../", posts.filter((p) => p.tags.includes(t)))}`);
}
const items = posts
  .map((p) => `<item><title>${escapeHtml(p.title)}</title><link>${site.base_url}${p.url}</link><pubDate>${p.date}</pubDate></item>`)
  .join("\n");
write("feed.xml", `<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>${escapeHtml(site.title)}</title>\n${items}\n</channel></rss>\n`);
for (const f of fs.readdirSync("static").sort()) write(f, fs.readFileSync(path.join("static", f), "utf8"));

for (const w of written.sort()) console.log(`wrote ${w}`);
