"""A benchmark's numbers and pages: the machine, per-repeat seconds summarized, the fastest peer, markdown."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

from dae_jax.studies.workers import PEERS

TITLES = {"train": "Train-step throughput: dae-jax and peers", "infer": "Inference throughput: dae-jax and peers"}


def machine() -> dict:
    """CPU model, logical cores and vector extensions (from /proc/cpuinfo where there is one)."""
    info = {"cpu_model": platform.processor() or platform.machine(), "logical_cores": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line and line.strip())
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = fields.get("flags", "").split()
        info |= {
            "cpu_model": fields.get("model name", info["cpu_model"]),
            "cpu_family_model": f"{fields.get('cpu family')}/{fields.get('model')}",  # 26/2: AMD Zen 5
            "cpu_mhz": float(fields["cpu MHz"]) if "cpu MHz" in fields else None,
            "vector_extensions": [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        }
    return info | {"os": platform.platform(), "python": platform.python_version()}


def xla_flops(lowered) -> float:
    """FLOPs of one device's program of a lowered jitted function, from XLA's cost analysis."""
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # one dict per device program in older jax
    return float(cost["flops"])


def summarize(times: list[float], steps: int, batch_size: int, flops_per_image: float, peak: float | None) -> dict:
    """Per-step (or per-batch) and per-image numbers from the seconds of each repeat."""
    best, median = min(times) / steps, statistics.median(times) / steps
    gflops = flops_per_image * batch_size / median / 1e9
    return {
        "seconds_per_repeat": times,
        "ms_per_step_min": 1e3 * best,
        "ms_per_step_median": 1e3 * median,
        "images_per_s_median": batch_size / median,
        "images_per_s_max": batch_size / best,
        "gflops_per_s_median": gflops,
        "fraction_of_peak": gflops / peak if peak else None,
    }


def fastest_peers(rows: list[dict]) -> list[dict]:
    """Per (preset, batch size): dae-jax's images/s (and its variants', e.g. ``dae-jax:resident``, also as a
    multiple of the step's), the fastest variant of each peer, and dae-jax's speedup over the faster peer (medians)."""
    summary = []
    for key in dict.fromkeys((r["preset"], r["batch_size"]) for r in rows):
        group = [r for r in rows if (r["preset"], r["batch_size"]) == key]
        entry = {"preset": key[0], "config": group[0]["config"], "batch_size": key[1]}
        own = {r["variant"]: r["images_per_s_median"] for r in group if r["framework"] == "dae-jax"}
        entry["dae-jax"] = own.pop(None)
        for framework in PEERS:
            peers = [r for r in group if r["framework"] == framework]
            if peers:
                best = max(peers, key=lambda r: r["images_per_s_median"])
                entry[framework] = {"variant": best["variant"], "images_per_s_median": best["images_per_s_median"]}
        rates = [entry[f]["images_per_s_median"] for f in PEERS if f in entry]
        entry["dae_jax_speedup_over_fastest_peer"] = entry["dae-jax"] / max(rates) if rates else None
        for variant, rate in own.items():
            entry[f"dae-jax:{variant}"] = rate
            entry[f"{variant}_over_step"] = rate / entry["dae-jax"]
            entry[f"{variant}_speedup_over_fastest_peer"] = rate / max(rates) if rates else None
        summary.append(entry)
    return summary


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _summary_line(entry: dict, variants: list[str]) -> str:
    def peer(framework: str) -> str:
        if framework not in entry:
            return "not run"
        return f"{entry[framework]['images_per_s_median']:,.0f} ({entry[framework]['variant']})"

    own = "".join(f" {entry[f'dae-jax:{v}']:,.0f} ({entry[f'{v}_over_step']:.2f}x step) |" for v in variants)
    ratios = "".join(f" {_ratio(entry[f'{v}_speedup_over_fastest_peer'])} |" for v in variants)
    return (
        f"| {entry['preset']} ({entry['config']}) | {entry['batch_size']} | {entry['dae-jax']:,.0f} |{own} "
        f"{peer('torch')} | {peer('keras')} | {_ratio(entry['dae_jax_speedup_over_fastest_peer'])} |{ratios}"
    )


def _summary_header(variants: list[str]) -> str:
    own = "".join(f" dae-jax:{v} images/s |" for v in variants)
    ratios = "".join(f" {v} / faster peer |" for v in variants)
    return (
        f"| preset (config) | batch | dae-jax images/s |{own} fastest torch images/s | fastest keras images/s "
        f"| dae-jax / faster peer |{ratios}\n" + "|---" * (6 + 2 * len(variants)) + "|"
    )


def _startup_line(rows: list[dict]) -> list[str]:
    """The CLI variant's start-up seconds per preset, when it ran."""
    found = [f"{r['preset']} {r['startup_s']:.1f} s" for r in rows if r.get("startup_s") is not None]
    if not found:
        return []
    return [f"dae-jax train start-up (launch to first step, data prepared; its last run): {', '.join(found)}.", ""]


TABLE_HEADER = (
    "| preset (config) | batch | framework | ms/step min | ms/step median | images/s | GFLOP/s | % of peak "
    "| dae-jax speedup |\n|---|---|---|---|---|---|---|---|---|"
)


def table_line(row: dict) -> str:
    peak = "" if row["fraction_of_peak"] is None else f"{100 * row['fraction_of_peak']:.1f}"
    name = row["framework"] + (f":{row['variant']}" if row["variant"] else "")
    return (
        f"| {row['preset']} ({row['config']}) | {row['batch_size']} | {name} | {row['ms_per_step_min']:.1f} "
        f"| {row['ms_per_step_median']:.1f} | {row['images_per_s_median']:,.0f} | {row['gflops_per_s_median']:.1f} "
        f"| {peak} | {row['dae_jax_speedup']:.2f} |"
    )


def markdown(report: dict) -> str:
    """The report as a markdown page: command, machine, versions, notes, table."""
    m, s = report["machine"], report["settings"]
    loads = [x for r in report["results"] for x in r["load_average_1min"]]
    variants = list(dict.fromkeys(r["variant"] for r in report["results"] if r["framework"] == "dae-jax"))
    variants = [v for v in variants if v]
    lines = [
        f"# {TITLES[report.get('task', 'train')]}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, {', '.join(m.get('vector_extensions', []))}; "
        f"jax device: {report['device']['device_kind']} x{report['device']['count']} ({report['device']['platform']}). "
        f"1-minute load average while timing (other jobs share the CPU): {min(loads):.1f} to {max(loads):.1f}.",
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in report["versions"].items()) + ".",
        "",
        f"Settings: {s['steps']} steps (batches) per repeat, {s['repeats']} repeats, {s['warmup']} warm-up steps; "
        "FLOPs per image: model FLOPs, from XLA's cost analysis of dae-jax's program with the textbook layers "
        "(the work each framework's layers do; dae-jax's upsample-convs do less, so its GFLOP/s is an effective "
        f"rate); peak {s['peak_gflops'] or 'not given'} GFLOP/s.",
        "",
        *(f"- {note}" for note in report["notes"]),
        "",
        _summary_header(variants),
        *(_summary_line(entry, variants) for entry in report["summary"]),
        "",
        *_startup_line(report["results"]),
        "Every framework and variant:",
        "",
        TABLE_HEADER,
        *(table_line(row) for row in report["results"]),
        "",
        "Configurations: "
        + "; ".join(sorted({f"{r['framework']}: {r['description']}" for r in report["results"]}))
        + ".",
        "",
    ]
    return "\n".join(lines)
