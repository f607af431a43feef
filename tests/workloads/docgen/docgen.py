"""A documentation generator: `docgen.py --src DIR --templates DIR --out DIR`.

Every module under `--src` is parsed with `ast` (never imported: documenting code must not run
it); its docstrings, public classes, methods and functions are rendered with `module.md.tmpl`,
and `index.md.tmpl` lists the modules. The template language is a small subset of Jinja:
`{{ a.b }}`, `{% for x in a.b %}…{% endfor %}`, `{% if a.b %}…{% endif %}`; a line holding only
a block tag leaves no line behind.
"""

import argparse
import ast
import os
import re

# --- templates -------------------------------------------------------------------------------

_TOKEN = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})")
# A block tag alone on its line, with the line's indentation and newline.
_BLOCK_LINE = re.compile(r"^[ \t]*(\{%.*?%\})[ \t]*\n", re.M)


class TemplateError(Exception):
    pass


def _lookup(ctx, dotted):
    value = ctx
    for part in dotted.split("."):
        if isinstance(value, dict):
            if part not in value:
                raise TemplateError(f"unknown name {dotted!r}")
            value = value[part]
        else:
            value = getattr(value, part)
    return value


def _parse(tokens, end=None):
    """Nodes up to the block tag `end` (None: the end of the template)."""
    nodes = []
    while tokens:
        tok = tokens.pop(0)
        if tok.startswith("{{"):
            nodes.append(("var", tok[2:-2].strip()))
        elif tok.startswith("{%"):
            words = tok[2:-2].split()
            if words and words[0] == end:
                return nodes
            if words[:1] == ["for"] and len(words) == 4 and words[2] == "in":
                nodes.append(("for", words[1], words[3], _parse(tokens, "endfor")))
            elif words[:1] == ["if"] and len(words) == 2:
                nodes.append(("if", words[1], _parse(tokens, "endif")))
            else:
                raise TemplateError(f"unknown tag {tok!r}")
        else:
            nodes.append(("text", tok))
    if end is not None:
        raise TemplateError(f"missing {{% {end} %}}")
    return nodes


def _render(nodes, ctx, out):
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "var":
            out.append(str(_lookup(ctx, node[1])))
        elif kind == "for":
            for item in _lookup(ctx, node[2]):
                _render(node[3], {**ctx, node[1]: item}, out)
        elif kind == "if":
            if _lookup(ctx, node[1]):
                _render(node[2], ctx, out)


def render(template, ctx):
    """`template` rendered with `ctx`; runs of blank lines collapse to one."""
    template = _BLOCK_LINE.sub(r"\1", template)
    tokens = [t for t in _TOKEN.split(template) if t]
    out = []
    _render(_parse(tokens), ctx, out)
    text = re.sub(r"\n{3,}", "\n\n", "".join(out))
    return text.strip() + "\n"


# --- extraction ------------------------------------------------------------------------------


def _doc(node):
    """(summary, details) of a node's docstring."""
    doc = ast.get_docstring(node) or ""
    summary, _, details = doc.partition("\n\n")
    return " ".join(summary.split()), details.strip()


def _signature(fn, drop_self=False):
    args = fn.args
    if drop_self and args.args:
        args = ast.arguments(
            posonlyargs=args.posonlyargs,
            args=args.args[1:],
            vararg=args.vararg,
            kwonlyargs=args.kwonlyargs,
            kw_defaults=args.kw_defaults,
            kwarg=args.kwarg,
            defaults=args.defaults,
        )
    return f"({ast.unparse(args)})"


def _public(name):
    return not name.startswith("_")


def describe(path, name):
    """What the template sees of the module at `path`."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    summary, details = _doc(tree)
    classes, functions = [], []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _public(node.name):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            methods = [
                {"name": m.name, "signature": _signature(m, drop_self=True), "summary": _doc(m)[0]}
                for m in node.body
                if isinstance(m, ast.FunctionDef) and _public(m.name)
            ]
            s, d = _doc(node)
            classes.append(
                {
                    "name": node.name,
                    "signature": _signature(init, drop_self=True) if init else "()",
                    "summary": s,
                    "details": d,
                    "methods": methods,
                }
            )
        elif isinstance(node, ast.FunctionDef) and _public(node.name):
            s, d = _doc(node)
            functions.append({"name": node.name, "signature": _signature(node), "summary": s, "details": d})
    count = len(classes) + len(functions) + sum(len(c["methods"]) for c in classes)
    return {
        "name": name,
        "summary": summary,
        "details": details,
        "classes": classes,
        "functions": functions,
        "count": count,
        "page": name + ".md",
    }


def modules(src):
    """(dotted name, path) of every module under `src`, sorted; packages by their __init__."""
    found = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in filenames:
            if fn.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, fn), src)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found.append((".".join(rel), os.path.join(dirpath, fn)))
    return sorted(found)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--templates", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.templates, "module.md.tmpl"), encoding="utf-8") as f:
        module_tmpl = f.read()
    with open(os.path.join(args.templates, "index.md.tmpl"), encoding="utf-8") as f:
        index_tmpl = f.read()
    os.makedirs(args.out, exist_ok=True)
    described = []
    for name, path in modules(args.src):
        m = describe(path, name)
        described.append(m)
        with open(os.path.join(args.out, m["page"]), "w", encoding="utf-8") as f:
            f.write(render(module_tmpl, {"module": m}))
    with open(os.path.join(args.out, "index.md"), "w", encoding="utf-8") as f:
        f.write(render(index_tmpl, {"title": "API reference", "modules": described}))


if __name__ == "__main__":
    main()
