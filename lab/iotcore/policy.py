"""AWS IoT Core policy evaluation, in pure Python, for the lab's IoT Core stand-in.

    evaluate(policies, action, resource, context) -> Decision(allowed, reason)

`policies` holds (name, document) for the default version of every policy attached to the certificate;
`context` maps policy-variable / condition-key names (without `${}`) to values (str, bool, number or list).

Modelled (AWS IoT Core developer guide "AWS IoT Core policies", IAM "policy evaluation logic"):
  * default deny; an explicit Deny in any policy beats every Allow; else allowed iff an Allow applies;
  * Statement as an object or a list; Action/NotAction (case-insensitive) and Resource/NotResource
    (case-sensitive) as a string or a list, with `*` (any run, "/" and ":" included) and `?` wildcards;
  * policy variables `${key}` in Resource and Condition values, the escapes `${*}` `${?}` `${$}`, IAM's
    defaults `${key, 'default'}`; substituted text is literal (a `*` in a client id is no wildcard); `$aws`
    is no variable (only `${` starts one); a list-valued context key does not substitute;
  * Condition: String[Not]Equals[IgnoreCase], String[Not]Like, Arn[Not]Equals and Arn[Not]Like (both as
    StringLike on the whole ARN), Bool, [Not]IpAddress, Numeric*, Null, with `...IfExists` and the
    `ForAnyValue:`/`ForAllValues:` qualifiers; AND across operators and keys, OR across one key's values
    (NOR for negated operators); keys (and operator names) are case-insensitive. A missing key makes a
    condition false, except for negated operators, `...IfExists` and ForAllValues (true) and Null.

Choices where AWS would have refused the policy or says little (fail closed):
  * a Resource entry with an unresolvable variable matches nothing (for Allow and Deny alike); such a
    variable in NotResource, or in a condition value, makes the whole statement not apply;
  * an unknown operator (Date*, Binary*, typos) or an invalid CIDR/number makes the statement not apply,
    for Deny as well: the stand-in cannot tell what the author meant, so it neither grants nor revokes;
  * a malformed document or statement (bad JSON, no Statement, wrong types) contributes nothing.

Not modelled: Principal/NotPrincipal (IoT policies have none), ArnLike's per-segment matching, Date* and
Binary* operators, policy validation and size limits, and where the context comes from (the caller
derives thing name, IsAttached, certificate subject, source IP). MQTT `+`/`#` in ARNs are plain text.
"""
from __future__ import annotations

import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar


class Decision(NamedTuple):
    allowed: bool
    reason: str  # "explicit Deny in policy <name>", "no Allow matched (default deny)", "allowed by policy <name>"


PolicyDocument = Mapping[str, Any] | str
T = TypeVar("T")

_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_BODY = re.compile(r"\s*(.+?)\s*(?:,\s*'((?:[^']|'')*)')?\s*", re.DOTALL)
_ESCAPES = frozenset("*?$")
# operator (lower case) -> (kind of comparison, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "stringequals": ("eq", False), "stringnotequals": ("eq", True),
    "stringequalsignorecase": ("ieq", False), "stringnotequalsignorecase": ("ieq", True),
    "stringlike": ("like", False), "stringnotlike": ("like", True),
    "arnequals": ("like", False), "arnnotequals": ("like", True),
    "arnlike": ("like", False), "arnnotlike": ("like", True),
    "bool": ("bool", False), "ipaddress": ("ip", False), "notipaddress": ("ip", True),
    "numericequals": ("==", False), "numericnotequals": ("==", True),
    "numericlessthan": ("<", False), "numericlessthanequals": ("<=", False),
    "numericgreaterthan": (">", False), "numericgreaterthanequals": (">=", False),
}
_NUMERIC: dict[str, Callable[[float, float], bool]] = {"==": operator.eq, "<": operator.lt, "<=": operator.le,
                                                       ">": operator.gt, ">=": operator.ge}


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _as_list(value: Any) -> list[str]:
    """A policy element or context value as a list of strings (objects and nulls dropped)."""
    items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return [_text(v) for v in items if isinstance(v, (str, bool, int, float))]


class _Context:
    """Request context with exact-then-case-insensitive key lookup."""

    def __init__(self, raw: Mapping[str, Any] | None) -> None:
        self._raw = dict(raw or {})
        self._folded = {str(k).casefold(): v for k, v in self._raw.items()}

    def values(self, key: str) -> list[str] | None:
        """All values of a key, or None when it is absent (None and [] count as absent)."""
        raw = self._raw[key] if key in self._raw else self._folded.get(key.casefold())
        values = _as_list(raw) if raw is not None else []
        return values or None

    def scalar(self, key: str) -> str | None:
        values = self.values(key)
        return values[0] if values is not None and len(values) == 1 else None


_NO_VARIABLES = _Context(None)


def _glob(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


def _expand(text: str, ctx: _Context) -> list[tuple[str, bool]] | None:
    """Split a policy string into (chunk, is_policy_text) after substitution; None if a variable is unresolved."""
    parts, pos = [], 0
    for m in _VAR.finditer(text):
        parts.append((text[pos:m.start()], True))
        pos, body = m.end(), m.group(1)
        if body in _ESCAPES:
            value: str | None = body
        else:
            parsed = _VAR_BODY.fullmatch(body)
            if parsed is None:
                return None
            value = ctx.scalar(parsed.group(1))
            if value is None and parsed.group(2) is not None:
                value = parsed.group(2).replace("''", "'")
        if value is None:
            return None
        parts.append((value, False))
    parts.append((text[pos:], True))
    return parts


def _compile(text: str, ctx: _Context, wildcards: bool, ignore_case: bool = False) -> re.Pattern[str] | None:
    """A full-match regex for a policy string; substituted text is always literal."""
    parts = _expand(text, ctx)
    if parts is None:
        return None
    rx = "".join(_glob(chunk) if wildcards and policy_text else re.escape(chunk) for chunk, policy_text in parts)
    return re.compile(rx, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _substitute(text: str, ctx: _Context) -> str | None:
    """Plain text after substitution (for Bool, IpAddress, Numeric); None if a variable is unresolved."""
    parts = _expand(text, ctx)
    return None if parts is None else "".join(chunk for chunk, _ in parts)


def _parse(parse: Callable[[str], T], text: str) -> T | None:
    try:
        return parse(text.strip())
    except ValueError:
        return None


def _matcher(kind: str, text: str, ctx: _Context) -> Callable[[str], bool] | None:
    """Whether one context value matches one policy value; None if the policy value is unresolvable or invalid."""
    if kind in ("eq", "ieq", "like"):
        rx = _compile(text, ctx, wildcards=kind == "like", ignore_case=kind == "ieq")
        return None if rx is None else (lambda v: rx.fullmatch(v) is not None)
    plain = _substitute(text, ctx)
    if plain is None or kind == "bool":
        return None if plain is None else (lambda v: v.lower() == plain.lower())
    if kind == "ip":
        network = _parse(lambda t: ipaddress.ip_network(t, strict=False), plain)
        return None if network is None else (
            lambda v: (ip := _parse(ipaddress.ip_address, v)) is not None and ip in network)
    wanted, compare = _parse(float, plain), _NUMERIC[kind]
    return None if wanted is None else (lambda v: (got := _parse(float, v)) is not None and compare(got, wanted))


def _condition(name: str, block: Any, ctx: _Context) -> bool:
    """One operator entry of a Condition block (all its keys must hold)."""
    qualifier, _, op = name.rpartition(":")
    qualifier, op = qualifier.lower(), op.lower()
    if_exists = op.endswith("ifexists")
    base = op[: -len("ifexists")] if if_exists else op
    if not isinstance(block, Mapping) or qualifier not in ("", "foranyvalue", "forallvalues"):
        return False
    for key, raw_wanted in block.items():
        wanted, present = _as_list(raw_wanted), ctx.values(str(key))
        if not wanted:
            return False
        if base == "null" and not if_exists and not qualifier:
            if not any(w.lower() == ("false" if present else "true") for w in wanted):
                return False
            continue
        if base not in _OPERATORS:
            return False  # unknown operator: see the module docstring
        kind, negated = _OPERATORS[base]
        matchers = [_matcher(kind, w, ctx) for w in wanted]
        if any(m is None for m in matchers):
            return False
        if present is None:
            holds = if_exists or qualifier == "forallvalues" or (negated and not qualifier)
        else:
            hits = [any(m(v) for m in matchers if m is not None) != negated for v in present]
            # ForAllValues, and a plain negated operator (NOR: no context value may match), need every value
            holds = all(hits) if qualifier == "forallvalues" or (negated and not qualifier) else any(hits)
        if not holds:
            return False
    return True


def _applies(stmt: Mapping[str, Any], action: str, resource: str, ctx: _Context) -> bool:
    """Whether a statement covers the request (Action, Resource and every Condition)."""
    if ("Action" in stmt) == ("NotAction" in stmt) or ("Resource" in stmt) == ("NotResource" in stmt):
        return False
    actions = [_compile(a, _NO_VARIABLES, wildcards=True, ignore_case=True)
               for a in _as_list(stmt.get("Action", stmt.get("NotAction")))]
    action_hit = any(rx is not None and rx.fullmatch(action) for rx in actions)
    if action_hit != ("Action" in stmt):
        return False
    resources = [_compile(r, ctx, wildcards=True) for r in _as_list(stmt.get("Resource", stmt.get("NotResource")))]
    if "NotResource" in stmt and any(rx is None for rx in resources):
        return False
    resource_hit = any(rx is not None and rx.fullmatch(resource) for rx in resources)
    if resource_hit != ("Resource" in stmt):
        return False
    conditions = stmt.get("Condition", {})
    if not isinstance(conditions, Mapping):
        return False
    return all(_condition(str(name), block, ctx) for name, block in conditions.items())


def _statements(document: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document; [] for anything malformed."""
    if isinstance(document, (str, bytes, bytearray)):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError):
            return []
    statements = document.get("Statement") if isinstance(document, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list):
        return []
    return [s for s in statements if isinstance(s, Mapping)]


def evaluate(policies: Iterable[tuple[str, PolicyDocument]], action: str, resource: str,
             context: Mapping[str, Any] | None) -> Decision:
    """Decide `action` on `resource` (a full ARN) for a principal with `policies` attached."""
    ctx = _Context(context)
    allowed_by: str | None = None
    for name, document in policies or ():
        for stmt in _statements(document):
            effect = stmt.get("Effect")
            if effect not in ("Allow", "Deny") or (effect == "Allow" and allowed_by is not None):
                continue
            if _applies(stmt, action, resource, ctx):
                if effect == "Deny":
                    return Decision(False, f"explicit Deny in policy {name}")
                allowed_by = name
    if allowed_by is None:
        return Decision(False, "no Allow matched (default deny)")
    return Decision(True, f"allowed by policy {allowed_by}")
