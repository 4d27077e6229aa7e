"""Where output goes: stdout for results, stderr for errors, and every API key kept out of both."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from typing import Any, TextIO

REDACTED = "***"
ARROW = "→"


class Console:
    """Writes lines for people (or JSON lines for machines), with every known secret replaced by ***."""

    def __init__(self, stdout: TextIO, stderr: TextIO, secrets: Iterable[str] = (), json_output: bool = False) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_output = json_output
        self._secrets: list[str] = []
        for secret in secrets:
            self.hide(secret)

    def hide(self, secret: str) -> None:
        """Keep `secret` out of everything written from now on."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # a key that contains another is replaced whole

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def out(self, text: str = "") -> None:
        """A line (or lines) of results on stdout."""
        self._write(self.stdout, text + "\n")

    def err(self, text: str) -> None:
        """A line on stderr."""
        self._write(self.stderr, text + "\n")

    def json(self, body: Any) -> None:
        """One JSON document on one line of stdout."""
        self._write(self.stdout, json.dumps(body, ensure_ascii=False, sort_keys=False) + "\n")

    @property
    def progress_stream(self) -> TextIO:
        """Where progress goes: stdout for people, stderr when stdout carries JSON."""
        return self.stderr if self.json_output else self.stdout

    def progress_is_live(self) -> bool:
        """True when progress goes to a terminal, so one line can be rewritten in place."""
        isatty = getattr(self.progress_stream, "isatty", None)
        return bool(isatty and isatty())

    def progress(self, text: str) -> None:
        """A progress line that stays."""
        self._write(self.progress_stream, text + "\n")

    def live(self, text: str) -> None:
        """Rewrite the live progress line (a terminal only), cut to the terminal's width so it never wraps."""
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self._write(self.progress_stream, "\r\x1b[K" + text[: max(width, 20)])

    def end_live(self) -> None:
        """Clear the live progress line."""
        self._write(self.progress_stream, "\r\x1b[K")

    def _write(self, stream: TextIO, text: str) -> None:
        stream.write(_encodable(self.redact(text), stream))
        stream.flush()


def _encodable(text: str, stream: TextIO) -> str:
    """`text` as the stream can encode it: '->' for the arrow on an ASCII terminal, '?' for the rest."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.replace(ARROW, "->")
        try:
            return text.encode(encoding, errors="replace").decode(encoding)
        except LookupError:
            return text
    return text
