"""Durable state for actions: values that outlive the call, kept by the host per action.

Every call of an action starts afresh, so module globals do not survive from one call to the
next; keep what must survive here instead::

    from vivarium import state

    def main(data, logger):
        fired = state.incr("fired:" + data[0]["alert_name"])   # never loses a count
        last = state.get("last_seen", default=None)
        state.set("last_seen", data[0]["alert_trigger_time"], ttl="1h")
        return []

Values are anything JSON holds. Reads see the call's own writes. Writes are kept until the
run ends and are committed together when it succeeds; a run that fails (an exception, a
timeout, out of fuel or memory) changes nothing. ``incr`` is applied as a delta at commit, so
runs that count at once never lose a count. ``set(..., if_version=v)`` writes only if the
stored version is still ``v`` (0: only if the key is absent); when another run wrote the key
first, the run fails with outcome ``state_conflict`` naming the key. A write past a quota
raises ``QuotaExceeded`` at once.
"""

import json

import _vivarium

__all__ = [
    "QuotaExceeded",
    "StateError",
    "delete",
    "entry",
    "get",
    "incr",
    "keys",
    "set",
]

_OP_STATE = 2


class StateError(Exception):
    """A state operation the host refused: a bad key or value, or state it could not read."""


class QuotaExceeded(StateError):
    """A write would pass one of the action's state quotas (keys, bytes, value size)."""


_ERRORS = {"quota": QuotaExceeded}


def _call(request):
    answer = json.loads(_vivarium.host_call(_OP_STATE, json.dumps(request, allow_nan=False).encode()))
    if "error" in answer:
        error = answer["error"]
        raise _ERRORS.get(error["kind"], StateError)(error["message"])
    return answer["ok"]


def _ttl(ttl):
    """A time to live as the host reads it: seconds, or text such as ``"90s"`` or ``"1h"``."""
    if ttl is None or isinstance(ttl, str):
        return ttl
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise StateError("ttl is a positive number of seconds or a text such as '1h'; got %r" % (ttl,))
    return "%dms" % max(1, round(ttl * 1000))


def get(key, default=None):
    """The value under ``key``, or ``default`` when there is none."""
    found = _call({"op": "get", "key": key})
    return default if found is None else found["value"]


def entry(key):
    """``(value, version)`` under ``key``, or ``None``; the version is what ``if_version`` names."""
    found = _call({"op": "get", "key": key})
    return None if found is None else (found["value"], found["version"])


def set(key, value, ttl=None, if_version=None):
    """Stores ``value`` under ``key`` (expiring after ``ttl``); answers the version it gets."""
    return _call({"op": "set", "key": key, "value": value, "ttl": _ttl(ttl), "if_version": if_version})


def incr(key, delta=1, ttl=None):
    """Adds ``delta`` to the integer under ``key`` (absent: 0); answers the value this call sees."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise StateError("incr adds an integer; got %r" % (delta,))
    return _call({"op": "incr", "key": key, "delta": delta, "ttl": _ttl(ttl)})


def delete(key, if_version=None):
    """Removes ``key``; answers whether it was there."""
    return _call({"op": "delete", "key": key, "if_version": if_version})


def keys(prefix=""):
    """The keys starting with ``prefix``, sorted."""
    return _call({"op": "keys", "prefix": prefix})
