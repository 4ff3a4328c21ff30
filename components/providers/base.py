"""What every dynamic provider of this project shares: the handling of values a preview does not know yet.

During a preview an input may be unknown (it comes from a step that has not run, or that is to run again).
Such a value is never looked at: `diff` reports a change (a replacement if the input is one that replaces),
`check` passes the inputs through, and a provider's own `compare` and `read` only ever see known values. This
is the one place that makes it so (STYLE habit 10); the providers implement `compare`, not `diff`.

An output this release records that a state written by an earlier release lacks would be unknown in every
preview (and so would everything made from it): such a resource shows as an update, which records it.

The classes the providers derive from here are found by module path when a stack's state is read: see
`STABLE` in components/providers/__init__.py before moving or renaming one.
"""

from __future__ import annotations

from typing import Any, Iterable

from pulumi.dynamic import CheckResult, DiffResult, ReadResult, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime import rpc

PROVIDER_KEY = "__provider"


def is_unknown(value: Any) -> bool:
    """True if `value`, or anything inside it, is not known yet."""
    if isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN):
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


class Provider(ResourceProvider):
    """`inputs`: the properties the program sets (the rest are outputs). `replace_on`: inputs whose change
    replaces the resource; `delete_first`: the old one is undone before the new one is made."""

    inputs: tuple[str, ...] = ()  # empty: every property the program passes is an input
    outputs: tuple[str, ...] = ()  # what `create` and `update` always record besides the inputs
    replace_on: tuple[str, ...] = ()
    delete_first: bool = True

    def input_keys(self, news: dict[str, Any]) -> tuple[str, ...]:
        return self.inputs or tuple(k for k in news if k != PROVIDER_KEY)

    def compare(self, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """The diff, with every input of `news` known."""
        changed = [k for k in self.input_keys(news) if olds.get(k) != news.get(k)]
        replaces = [k for k in self.replace_on if self.replaces(olds, news, k)]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=self.delete_first)

    def replaces(self, olds: dict[str, Any], news: dict[str, Any], key: str) -> bool:
        """Whether the change of `key` (one of `replace_on`, known in `news`) replaces the resource."""
        return olds.get(key) != news.get(key)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        unknown = unknown_inputs(self.input_keys(news), news)
        if unknown:
            replaces = [k for k in self.replace_on
                        if (self.replace_when_unknown(k, news) if k in unknown else self.replaces(olds, news, k))]
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=self.delete_first)
        diff = self.compare(olds, news)
        if not diff.changes and any(olds.get(k) is None for k in self.outputs):  # recorded by an earlier release
            return DiffResult(changes=True, replaces=[], delete_before_replace=self.delete_first)
        return diff

    def replace_when_unknown(self, key: str, news: dict[str, Any]) -> bool:
        """Whether an unknown value of a replacing input shows as a replacement (as Terraform plans do)."""
        return True

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props or unknown_inputs(self.input_keys(props), props):
            return ReadResult(id_=id_, outs=props)  # nothing known to read by
        return self.read_known(id_, props)

    def read_known(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=props)


def unknown_inputs(keys: Iterable[str], props: dict[str, Any]) -> list[str]:
    return [k for k in keys if is_unknown(props.get(k))]
