"""Whether a checkpoint can be resumed by a config: the fields that fix the saved state's shapes and structure."""

from __future__ import annotations

import json

import ml_collections

# Fields that fix the shapes and structure of the saved state, or the objective it was trained on: a
# checkpoint made with other values cannot be resumed.
STATE_FIELDS = (
    *("image_shape", "model", "loss", "clip_output"),
    *("optimizer", "optimizer_kwargs", "lr_schedule", "lr_schedule_kwargs"),
)
# What a checkpoint saved before a field existed was made with.
_FIELDS_ADDED = {"lr_schedule": "constant", "lr_schedule_kwargs": {}, "clip_output": False}
_NOT_COMPARED = ("model.kernel_init",)  # how the parameters started: a checkpoint holds what they are now


def config_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
    """``field: checkpoint value -> config value`` for every ``STATE_FIELDS`` entry that differs."""
    current = json.loads(json.dumps(config.to_dict()))  # as saved: tuples become lists
    old = _flatten({k: saved.get(k, _FIELDS_ADDED.get(k)) for k in STATE_FIELDS})
    new = _flatten({k: current.get(k) for k in STATE_FIELDS})
    fields = sorted((set(old) | set(new)) - set(_NOT_COMPARED))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in fields if old.get(k) != new.get(k)]


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"a.b": value} for every leaf of a nested dict."""
    out = {}
    for k, v in tree.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out
