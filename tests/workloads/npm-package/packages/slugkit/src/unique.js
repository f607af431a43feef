// uniqueSlugs(titles): slugs for every title, "-2", "-3", … appended to repeats, in order.
function uniqueSlugs(titles, options) {
  const seen = new Map();
  return titles.map((t) => {
    const base = slugify(t, options) || "untitled";
    const n = (seen.get(base) || 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
}
