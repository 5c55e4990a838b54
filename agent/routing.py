"""Routing: which rule takes a series, decided from the header tags of one of its instances.

Rules are tried by priority, highest first (equal priorities in configuration order); the
first rule whose matchers all hold wins, and an empty `match` holds for every series. No
winner means the series is skipped with the reason `NO_RULE_MATCHED`.

How a matcher compares a tag's value, taken as text with its padding stripped:

- a plain string (`equals`): the value is exactly that string (case-sensitive);
- `regex`: `re.search` finds the pattern in the value (anchor it, `^...$`, to match the
  whole value; `(?i)` makes it case-insensitive);
- `range: [min, max]`: the value is a single number with min <= value <= max;
- `in: [...]`: the value is exactly one of the listed strings.

Multi-valued elements are compared in their DICOM text form, values joined by backslashes
(`ORIGINAL\\PRIMARY\\AXIAL`). A tag that is absent or empty, a sequence or a binary value
never matches.

`explain` is the one entry point: it records every check, so `dicom-agent rules test` can
show why each rule did or did not match, and completion uses its `chosen` rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from agent.config import Matcher, Rule

NO_RULE_MATCHED = "no rule matched"


@dataclass(frozen=True)
class TagCheck:
    """One matcher of a rule against the dataset: `actual` is the value as text (None when
    it is absent, empty or not comparable) and `reason` says in words why it held or not."""

    keyword: str
    expected: str
    actual: str | None
    matched: bool
    reason: str


@dataclass(frozen=True)
class RuleCheck:
    """A rule and the check of each of its matchers, in the order they are written."""

    rule: Rule
    checks: tuple[TagCheck, ...]

    @property
    def matched(self) -> bool:
        return all(check.matched for check in self.checks)


@dataclass(frozen=True)
class Explanation:
    """Every rule, in the order they were tried, with its checks; `chosen` is the winner."""

    rules: tuple[RuleCheck, ...]

    @property
    def chosen(self) -> Rule | None:
        return next((checked.rule for checked in self.rules if checked.matched), None)

    def lines(self) -> list[str]:
        """The explanation for people: one line per rule, one indented line per check."""
        chosen = self.chosen
        lines = []
        for checked in self.rules:
            rule = checked.rule
            verdict = "matches" if checked.matched else "does not match"
            marker = " <- chosen" if chosen is not None and rule.name == chosen.name else ""
            lines.append(
                f"rule {rule.name} (priority {rule.priority}, pipeline {rule.pipeline}): "
                f"{verdict}{marker}"
            )
            if not checked.checks:
                lines.append("  (no conditions: matches every series)")
            for check in checked.checks:
                mark = "ok  " if check.matched else "FAIL"
                lines.append(f"  {mark} {check.keyword} {check.expected}: {check.reason}")
        lines.append(f"result: {chosen.name if chosen else NO_RULE_MATCHED}")
        return lines


def explain(rules: Sequence[Rule], dataset: Dataset) -> Explanation:
    """Try every rule against `dataset` (a header is enough) and say how each one fared.

    `explain(rules, dataset).chosen` is the rule that routes the series, None if no rule
    matched. Rules are listed highest priority first, ties in their given order.
    """
    ordered = sorted(rules, key=lambda rule: -rule.priority)  # sorted() is stable
    return Explanation(tuple(_check_rule(rule, dataset) for rule in ordered))


def _check_rule(rule: Rule, dataset: Dataset) -> RuleCheck:
    checks = tuple(
        check_tag(keyword, matcher, tag_text(dataset, keyword))
        for keyword, matcher in rule.match.items()
    )
    return RuleCheck(rule, checks)


def tag_text(dataset: Dataset, keyword: str) -> str | None:
    """The value of the element `keyword` as matchers see it; None if absent, empty, a
    sequence or binary."""
    value = dataset.get(keyword)
    if value is None or isinstance(value, bytes | DicomSequence):
        return None
    if isinstance(value, MultiValue):
        text = "\\".join(str(item).strip() for item in value)
    else:
        text = str(value).strip()
    return text or None


def check_tag(keyword: str, matcher: Matcher, actual: str | None) -> TagCheck:
    """Compare one value (as from `tag_text`) with one matcher."""
    expected = describe_matcher(matcher)
    if actual is None:
        return TagCheck(keyword, expected, None, False, "absent, empty or not a text value")
    matched, reason = _compare(matcher, actual)
    return TagCheck(keyword, expected, actual, matched, reason)


def describe_matcher(matcher: Matcher) -> str:
    """A matcher as people read it: `== 'CT'`, `~ /^CHEST/`, `in [0.5, 3]`, `in {'A', 'B'}`."""
    if matcher.equals is not None:
        return f"== {matcher.equals!r}"
    if matcher.regex is not None:
        return f"~ /{matcher.regex}/"
    if matcher.range is not None:
        low, high = matcher.range
        return f"in [{low:g}, {high:g}]"
    return "in {" + ", ".join(repr(item) for item in matcher.in_ or ()) + "}"


def _compare(matcher: Matcher, actual: str) -> tuple[bool, str]:
    if matcher.equals is not None:
        same = actual == matcher.equals
        return same, f"{actual!r} {'is' if same else 'is not'} {matcher.equals!r}"
    if matcher.regex is not None:
        found = re.search(matcher.regex, actual) is not None
        return found, f"{actual!r} {'matches' if found else 'does not match'} the pattern"
    if matcher.range is not None:
        return _in_range(actual, *matcher.range)
    options = matcher.in_ or ()
    listed = actual in options
    return listed, f"{actual!r} {'is' if listed else 'is not'} one of the listed values"


def _in_range(actual: str, low: float, high: float) -> tuple[bool, str]:
    try:
        number = float(actual)
    except ValueError:
        return False, f"{actual!r} is not a single number"
    inside = low <= number <= high
    return inside, f"{number:g} is {'inside' if inside else 'outside'} [{low:g}, {high:g}]"
