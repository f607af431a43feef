// slugify(text, { maxLength }): lower-case ASCII words joined by "-".
function slugify(text, options = {}) {
  const maxLength = options.maxLength || 80;
  let out = "";
  for (const ch of String(text).toLowerCase()) {
    out += TRANSLIT[ch] ?? ch;
  }
  const words = out.split(/[^a-z0-9]+/).filter(Boolean);
  let slug = "";
  for (const w of words) {
    const next = slug ? `${slug}-${w}` : w;
    if (next.length > maxLength) break;
    slug = next;
  }
  return slug;
}
