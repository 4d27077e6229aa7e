"""Property-based tests of the image reference parser (hypothesis)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.images import InvalidImageError, parse_image

alnum = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
separator = st.sampled_from([".", "_", "__", "-", "--"])
path_component = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    alnum,
    st.lists(st.tuples(separator, alnum), max_size=2),
)
host_label = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=10)
registry = st.one_of(
    st.none(),
    st.builds(lambda a, b: f"{a}.{b}", host_label, host_label),
    st.builds(lambda a, b, port: f"{a}.{b}:{port}", host_label, host_label, st.integers(1, 65535)),
    st.just("localhost"),
)


def _join(host: str | None, parts: list[str]) -> str:
    if host is None and len(parts) > 1 and ("." in parts[0] or parts[0] == "localhost"):
        # Registries read such a first part as a host; keep this one a plain path.
        parts = [parts[0].replace(".", "-").replace("localhost", "local-host"), *parts[1:]]
    return "/".join(([host] if host else []) + parts)


repository = st.builds(_join, registry, st.lists(path_component, min_size=1, max_size=3))
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,40}", fullmatch=True)
digest = st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)


@given(repository, st.one_of(st.none(), tag), st.one_of(st.none(), digest))
def test_valid_references_round_trip(repo: str, version: str | None, sha: str | None) -> None:
    text = repo + (f":{version}" if version else "") + (f"@{sha}" if sha else "")
    parsed = parse_image(text)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repo, version, sha)
    assert str(parsed) == text
    assert parse_image(str(parsed)) == parsed


@given(repository, tag)
def test_with_version_then_parse_is_identity(repo: str, version: str) -> None:
    reference = parse_image(repo).with_version(version)
    assert parse_image(str(reference)) == reference


@given(
    repository,
    tag,
    st.integers(min_value=0),
    st.sampled_from([" ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\u2028"]),
)
def test_whitespace_or_control_characters_anywhere_are_refused(repo: str, version: str, at: int, bad: str) -> None:
    text = f"{repo}:{version}"
    position = at % (len(text) + 1)
    with pytest.raises(InvalidImageError):
        parse_image(text[:position] + bad + text[position:])


@given(path_component.filter(lambda p: any(c.isalpha() for c in p)), tag)
def test_uppercase_repositories_are_refused(part: str, version: str) -> None:
    with pytest.raises(InvalidImageError, match="invalid repository part"):
        parse_image(f"team/{part.upper()}:{version}")


@given(alnum, alnum, tag)
def test_double_dots_are_refused(a: str, b: str, version: str) -> None:
    with pytest.raises(InvalidImageError):
        parse_image(f"{a}..{b}:{version}")


@given(st.integers(min_value=129, max_value=300))
def test_over_long_tags_are_refused(length: int) -> None:
    with pytest.raises(InvalidImageError, match="invalid tag"):
        parse_image("repo:" + "t" * length)


@given(st.integers(min_value=256, max_value=500))
def test_over_long_repositories_are_refused(length: int) -> None:
    with pytest.raises(InvalidImageError, match="longer than"):
        parse_image("r" * length + ":1")


@given(st.text(max_size=60))
def test_any_text_either_parses_and_round_trips_or_is_refused_cleanly(text: str) -> None:
    try:
        parsed = parse_image(text)
    except InvalidImageError:
        return  # refused with the parser's own error, never anything else
    assert str(parsed) == text
