"""MkDocs hooks of rtseg's site (mkdocs.yml: ``hooks:``), and the generators behind them.

The site's pages are the repository's Markdown files, which read the same on the repository page:

* the front page is ``README.md``, and each shipped model's card (``rtseg/shipped/NAME.md``, which
  the wheel carries beside the weights) becomes ``cards/NAME.md``; their links are rewritten for the
  site, and a link out of the documentation (``LICENSE``) goes to the repository (``repo_url``);
* the generators below write the reference of every command (from the argparse parsers of
  :mod:`rtseg.cli`, the same that print ``--help``), of every training config key (from the typed
  dataclasses of :mod:`rtseg.config`) and of the recipes in ``configs/``. ``tools/docs_tables.py``
  writes their output into the pages, committed, and a test fails while a page is stale.

``tests/project/test_docs.py`` imports this file to check that every subcommand is in the reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "rtseg" / "shipped"


# ---------------------------------------------------------------------------------------------
# Markdown helpers

def _text(s: str) -> str:
    """Plain text for a Markdown table cell: HTML-escaped, no Markdown syntax, no cell breaks."""
    s = html.escape(" ".join(str(s).split()), quote=False)
    s = re.sub(r"([\\`*_\[\]|{}])", r"\\\1", s)
    return s


def _prose(s: str) -> str:
    """Like :func:`_text`, but double-backtick literals stay inline code."""
    parts = re.split(r"``?([^`]+)``?", " ".join(str(s).split()))
    return "".join(_text(p) if i % 2 == 0 else _code(p) for i, p in enumerate(parts))


def _code(s: str) -> str:
    """Inline code for a table cell (pipes escaped as HTML so the table holds)."""
    s = " ".join(str(s).split())
    return "<code>" + html.escape(s).replace("|", "&#124;") + "</code>"


# ---------------------------------------------------------------------------------------------
# The command line, from rtseg.cli's parsers

def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def iter_commands(parser: argparse.ArgumentParser | None = None, prefix: str = "rtseg"):
    """(full name, one-line help, parser) of every command and sub-command, depth first."""
    if parser is None:
        from rtseg.cli import build_parser

        parser = build_parser()
    sub = _subparsers(parser)
    if sub is None:
        return
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, child in sub.choices.items():
        yield f"{prefix} {name}", helps.get(name) or "", child
        yield from iter_commands(child, f"{prefix} {name}")


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    if action.option_strings:
        if action.nargs == 0:
            names = ", ".join(action.option_strings)
        else:
            metavar = formatter._format_args(action, action.dest.upper())
            names = ", ".join(f"{o} {metavar}" for o in action.option_strings)
    else:
        names = formatter._metavar_formatter(action, action.dest)(1)[0]
    help_text = formatter._expand_help(action) if action.help else ""
    notes = []
    if action.required and not (not action.option_strings and action.nargs in ("*", "?")):
        notes.append("required")
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    note = f" *({'; '.join(notes)})*" if notes else ""
    return f"| {_code(names)} | {_text(help_text)}{note} |"


def render_command(title: str, summary: str, parser: argparse.ArgumentParser, level: int = 2) -> str:
    out = [f"{'#' * level} `{title}`", ""]
    anchor_text = summary.strip()
    if anchor_text:
        out += [f"*{_text(anchor_text)}*", ""]
    if parser.description:
        out += [_text(parser.description), ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    if rows:
        out += ["| argument | meaning |", "|---|---|"] + [_option_row(parser, a) for a in rows] + [""]
    sub = _subparsers(parser)
    if sub is not None:
        names = ", ".join(f"`{title} {n}`" for n in sub.choices)
        out += [f"Sub-commands: {names}.", ""]
    if parser.epilog:
        out += ["```text", parser.epilog.strip("\n"), "```", ""]
    return "\n".join(out)


def cli_reference() -> str:
    """Markdown for every command of ``rtseg``, in the order ``rtseg --help`` lists them."""
    from rtseg.cli import build_parser

    parser = build_parser()
    out = ["### `rtseg`", "", "```text", parser.format_help().strip(), "```", ""]
    for title, summary, child in iter_commands(parser):
        out.append(render_command(title, summary, child, level=min(2 + title.count(" "), 5)))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Training config keys, from rtseg.config's dataclasses

def _field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines written above each field of dataclass ``cls``."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"(\w+)\s*:", stripped)
        if m and not stripped.startswith(("def ", "@")):
            if pending:
                comments[m.group(1)] = " ".join(pending)
        pending = []
    return comments


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def config_sections() -> list[tuple[str, type, list[tuple[str, str, str, str]]]]:
    """(section, dataclass, [(key, type, default, meaning)]) for each section of TrainConfig."""
    from rtseg.config import TrainConfig

    sections = []
    for top in dataclasses.fields(TrainConfig):
        cls = top.default_factory().__class__
        comments = _field_comments(cls)
        rows = [(f"{top.name}.{f.name}", str(f.type), _default(f), comments.get(f.name, ""))
                for f in dataclasses.fields(cls)]
        sections.append((top.name, cls, rows))
    return sections


def config_reference() -> str:
    out = []
    for section, cls, rows in config_sections():
        doc = (cls.__doc__ or "").strip()
        out += [f"### `{section}`", ""]
        if doc and not doc.startswith(cls.__name__ + "("):  # dataclasses make up a signature docstring
            out += [_text(doc), ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        out += [f"| {_code(k)} | {_code(t)} | {_code(d)} | {_prose(m)} |" for k, t, d, m in rows]
        out.append("")
    return "\n".join(out)


def recipes_reference() -> str:
    """A row per recipe in configs/: model, dataset, epochs, crop, optimiser, lr, batch."""
    import yaml

    out = ["| recipe (`configs/NAME.yaml`) | model | dataset | epochs | crop | optimiser, lr | batch | class weights |",
           "|---|---|---|---:|---|---|---:|---|"]
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        c = yaml.safe_load(path.read_text()) or {}
        m, d, o, s, loss = (c.get(k) or {} for k in ("model", "data", "optim", "schedule", "loss"))
        crop = "x".join(map(str, d["crop"])) if d.get("crop") else "whole frames"
        if d.get("resize"):
            crop += f" (of {'x'.join(map(str, d['resize']))})"
        out.append(f"| `{path.stem}` | `{m.get('name', 'enet')}` | {d.get('dataset', 'camvid')} | "
                   f"{s.get('epochs', '')} | {crop} | {o.get('name', 'adam')} {o.get('lr', '')} | "
                   f"{d.get('batch_size', 8)} | {loss.get('class_weights', 'none')} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The front page (README.md) and the model cards (rtseg/shipped/*.md), with links made site-relative

def _repository_link(m: re.Match, repo_url: str) -> str:
    return f"{m.group(1)}{repo_url.rstrip('/')}/blob/main/{m.group(2)}"


def readme_for_site(text: str, repo_url: str = "") -> str:
    text = re.sub(r"(\]\()docs/", r"\1", text)  # [x](docs/page.md), ![x](docs/pic.png)
    text = re.sub(r'(src=")docs/', r"\1", text)
    text = re.sub(r"(\]\()rtseg/shipped/(\w+\.md)", r"\1cards/\2", text)
    if repo_url:
        text = re.sub(r"(\]\()((?:LICENSE|CHANGELOG\.md|CONTRIBUTING\.md|configs/[\w./-]*|bench/[\w./-]*))(?=\))",
                      lambda m: _repository_link(m, repo_url), text)
    return text


def card_for_site(text: str, repo_url: str = "") -> str:
    """A card, from rtseg/shipped/NAME.md to the site's cards/NAME.md."""
    text = re.sub(r"(\]\()\.\./\.\./docs/cards/", r"\1", text)   # its pictures, beside it on the site
    text = re.sub(r"(\]\()\.\./\.\./docs/", r"\1../", text)
    text = re.sub(r"(\]\()(\w+\.md)", r"\1\2", text)                 # another card
    if repo_url:
        text = re.sub(r"(\]\()\.\./\.\./([\w./-]+)(?=\))", lambda m: _repository_link(m, repo_url), text)
    return text


def page_for_site(text: str, repo_url: str = "") -> str:
    """A page of docs/: links to a card go to the site's copy, other links out of docs/ to the repository."""
    text = re.sub(r"(\]\()\.\./rtseg/shipped/(\w+\.md)", r"\1cards/\2", text)
    if repo_url:
        text = re.sub(r"(\]\()\.\./((?:LICENSE|CHANGELOG\.md|configs/|bench/|tools/)[\w./-]*)(?=\))",
                      lambda m: _repository_link(m, repo_url), text)
    return text


# ---------------------------------------------------------------------------------------------
# MkDocs hooks

def on_files(files, config):
    """Serve README.md as the site's index page and each shipped model's card as cards/NAME.md."""
    from mkdocs.structure.files import File

    existing = files.get_file_from_path("index.md")
    if existing is not None:
        files.remove(existing)
    repo = config.get("repo_url") or ""
    files.append(File.generated(config, "index.md",
                                content=readme_for_site((ROOT / "README.md").read_text(encoding="utf-8"), repo)))
    for card in sorted(CARDS.glob("*.md")):
        files.append(File.generated(config, f"cards/{card.name}",
                                    content=card_for_site(card.read_text(encoding="utf-8"), repo)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(("cards/", "index.md")):
        return markdown
    return page_for_site(markdown, config.get("repo_url") or "")
