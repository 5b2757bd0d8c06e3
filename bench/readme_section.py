"""Replace a generated section of README.md between `<!-- BEGIN:name -->` / `<!-- END:name -->`."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_section(name: str, body: str, readme: Path = README) -> None:
    begin, end = f"<!-- BEGIN:{name} -->", f"<!-- END:{name} -->"
    text = readme.read_text()
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
