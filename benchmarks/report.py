"""Markdown tables of a benchmark result (the dict bench.py also writes as JSON)."""

from __future__ import annotations

import math
from typing import Any


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _f(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def machine_lines(m: dict[str, Any], settings: dict[str, Any], load_limit: float) -> list[str]:
    out = [
        f"Machine: {m['cpu']} ({m['cores']} cores, {' '.join(m['cpu_flags']) or 'no flags'}), "
        f"device {m['device']}{' ' + m['gpu'] if m.get('gpu') else ''}, torch {m['torch']}, "
        f"{m['threads']} threads, diffusers {m['diffusers']}, {m['date']}",
        f"synthmix {m.get('synthmix')} commit {str(m.get('git_commit', '?'))[:10]}"
        f"{' (dirty)' if m.get('git_dirty') else ''}; amp {settings['amp']}, "
        f"compile {settings['compile']}; took {m.get('bench_seconds')} s",
    ]
    if settings["quick"]:
        out.append(
            "**QUICK RUN: tiny batches and windows, a smoke test of the benchmark; "
            "these numbers are NOT the benchmark.**"
        )
    start, end = m.get("load_average_1min_start"), m.get("load_average_1min_end")
    # At the end the 1-minute average still counts the benchmark's own busy threads.
    others = [start, None if end is None else round(end - m["threads"], 2)]
    if any(x is not None and x > load_limit for x in others):
        out.append(
            f"**WARNING: load from other work {others[0]} (start) / {others[1]} (end: 1-minute "
            f"load average {end} minus {m['threads']} benchmark threads) > {load_limit}: "
            "numbers are unreliable.**"
        )
    return out


def training_section(rows: list[dict[str, Any]]) -> list[str]:
    table = []
    for r in rows:
        s = r["images_per_s"]
        table.append(
            [
                r["preset"],
                "x".join(map(str, r["shape"])),
                r["batch"],
                r["variant"],
                f"{r['params']:,}",
                _f(s["median"]),
                f"{_f(s['min'])}-{_f(s['max'])}",
                s["windows"],
                _f(s["first_call_s"], 2),
                _f(r["peak_mem_mib"], 0),
            ]
        )
    out = [
        "## DDPM training (images/s, one full Adam step incl. clip + EMA, median of windows)",
        _table(
            [
                "preset",
                "shape",
                "batch",
                "variant",
                "params",
                "img/s",
                "range",
                "windows",
                "first step s",
                "peak MiB",
            ],
            table,
        ),
    ]
    out += [
        "",
        "Headline, synthmix/diffusers images/s (same architecture, same step; 'best' = each "
        "side at its own faster memory format):",
    ]
    heads = []
    for key in dict.fromkeys((r["preset"], tuple(r["shape"])) for r in rows):
        by = {r["variant"]: r for r in rows if (r["preset"], tuple(r["shape"])) == key}

        def med(v: str, by: dict[str, Any] = by) -> float | None:
            return by[v]["images_per_s"]["median"] if v in by else None

        def par(v: str, by: dict[str, Any] = by) -> str:
            return f"{by[v]['params']:,}" if v in by else "-"

        def best(impl_arch: str) -> float | None:
            both = [med(f"{impl_arch} channels_last"), med(f"{impl_arch} NCHW")]
            return max(filter(None, both), default=None)

        heads.append(
            [
                key[0],
                "x".join(map(str, key[1])),
                par("synthmix preset channels_last"),
                par("synthmix matched channels_last"),
                par("diffusers matched channels_last"),
                _ratio(med("synthmix matched NCHW"), med("diffusers matched NCHW")),
                _ratio(
                    med("synthmix matched channels_last"), med("diffusers matched channels_last")
                ),
                _ratio(best("synthmix matched"), best("diffusers matched")),
                _ratio(best("synthmix preset"), best("diffusers matched")),
            ]
        )
    out.append(
        _table(
            [
                "preset",
                "shape",
                "params synthmix preset",
                "params synthmix matched",
                "params diffusers",
                "matched NCHW",
                "matched channels_last",
                "**matched, best vs best**",
                "synthmix preset best vs diffusers best",
            ],
            heads,
        )
    )
    return out


def match_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            r["preset"],
            "x".join(map(str, r["shape"])),
            f"{r['params_synthmix']:,}",
            f"{r['params_diffusers']:,}",
            f"{r['max_abs_diff']:.1e}",
            f"{r['eps_scale']:.2f}",
            "yes" if r["same_function"] else "**NO**",
        ]
        for r in rows
    ]
    return [
        "Matched architecture check: synthmix weights copied into the UNet2DModel, eps compared:",
        _table(
            [
                "preset",
                "shape",
                "params synthmix",
                "params diffusers",
                "max abs diff of eps",
                "mean abs eps",
                "same function",
            ],
            table,
        ),
    ]


def eval_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            r["network"],
            "channels_last" if r["channels_last"] else "NCHW",
            r["batch"],
            _f(r["images_per_s"]["median"]),
        ]
        for r in rows
    ]
    return [
        "## U-Net forward (inference mode, cpu preset 1x16x16, images/s)",
        _table(["network", "format", "batch", "img/s"], table),
    ]


def sampling_section(rows: list[dict[str, Any]], check: dict[str, Any] | None) -> list[str]:
    by = {(r["impl"], r["sampler"], r["steps"]): r for r in rows}
    table = []
    for (impl, name, steps), r in by.items():
        if impl != "synthmix":
            continue
        d = by.get(("diffusers", name, steps), {})
        note = (
            f"timed {r['steps_timed']} steps, x{steps // r['steps_timed']}"
            if r["extrapolated"]
            else ""
        )
        table.append(
            [
                name,
                steps,
                r["nfe_per_image"],
                _f(r["nfe_per_s"], 0),
                _f(r["images_per_s"], 2),
                _f(d.get("nfe_per_s"), 0),
                _f(d.get("images_per_s"), 2),
                _ratio(r["images_per_s"], d.get("images_per_s")),
                note,
            ]
        )
    b = rows[0]["batch"] if rows else "?"
    fmt = {r["impl"]: "channels_last" if r.get("channels_last") else "NCHW" for r in rows}
    compiled = any(r.get("compiled") for r in rows)
    first = {r["impl"]: r.get("first_call_s") for r in rows}
    how = (
        f"both compiled (first call incl. compiling: synthmix {first.get('synthmix')} s, "
        f"diffusers {first.get('diffusers')} s)"
        if compiled
        else "eager"
    )
    out = [
        f"## Sampling, guidance w=3 (batched cond+uncond), cpu preset 1x16x16, batch {b}",
        f"synthmix {fmt.get('synthmix')}, diffusers {fmt.get('diffusers')} (each its faster "
        f"format in the U-Net forward table); {how}\n",
        _table(
            [
                "sampler",
                "steps",
                "NFE/img",
                "synthmix NFE/s",
                "synthmix img/s",
                "diffusers NFE/s",
                "diffusers img/s",
                "ratio",
                "note",
            ],
            table,
        ),
    ]
    if check:
        parts = [
            f"{k} max|diff| {v['max_abs_diff']:.1e} (|x0| ~ {v['sample_abs_mean']:.2f})"
            for k, v in check.items()
            if isinstance(v, dict)
        ]
        out.append(
            f"\nSame samples check ({check['steps']} steps, same network and x_T): "
            + "; ".join(parts)
            + f"; ancestral {check['ancestral']}."
        )
    return out


def overhead_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            r["sampler"],
            r["batch"],
            _f(r["synthmix_ms_per_step"], 2),
            _f(r["diffusers_ms_per_step"], 2),
        ]
        for r in rows
    ]
    return [
        "## Sampling loop overhead (a network that costs nothing; ms per step, guided)",
        _table(["sampler", "batch", "synthmix ms/step", "diffusers ms/step"], table),
    ]


def classifier_section(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            r["preset"],
            "x".join(map(str, r["shape"])),
            r["batch"],
            f"{r['params']:,}",
            _f(r["images_per_s"]["median"]),
            _f(r["peak_mem_mib"], 0),
        ]
        for r in rows
    ]
    return [
        "## Classifier training (channels_last, Adam, images/s)",
        _table(["preset", "shape", "batch", "params", "img/s", "peak MiB"], table),
    ]


def e2e_section(e2e: dict[str, Any]) -> list[str]:
    out = ["## End to end (stages.json of studies)"]
    if not e2e["studies"]:
        return out + [
            f"No stages.json found ({', '.join(e2e['patterns'])}): run a study "
            "(`synthmix study ...`) first."
        ]
    for path, stages in e2e["studies"].items():
        rows = [
            [
                name,
                s.get("status") or ("skipped (done earlier)" if "skipped_at" in s else "-"),
                _f(s.get("seconds"), 1),
                _f(s["seconds"] / 60, 1) if s.get("seconds") is not None else "-",
                _f(s.get("achieved_gflops"), 1),
                _f(100 * s["share_of_peak"], 1) if s.get("share_of_peak") is not None else "-",
            ]
            for name, s in stages.items()
            if isinstance(s, dict)
        ]
        total = sum(s.get("seconds") or 0 for s in stages.values() if isinstance(s, dict))
        rows.append(["**total**", "", _f(total, 1), _f(total / 60, 1), "", ""])
        head = ["stage", "status", "seconds", "minutes", "GFLOP/s", "% of peak"]
        if not any(isinstance(s, dict) and "achieved_gflops" in s for s in stages.values()):
            head, rows = head[:4], [r[:4] for r in rows]  # stages.json from before the count
        out += [f"\n{path}", _table(head, rows)]
        peaks = {s["peak_assumption"] for s in stages.values()
                 if isinstance(s, dict) and s.get("peak_assumption")}
        peak = next((s["peak_gflops"] for s in stages.values()
                     if isinstance(s, dict) and s.get("peak_gflops")), None)
        for p in peaks:
            out.append(f"Peak {_f(peak, 1)} GFLOP/s (fp32, estimated: {p}). GFLOP/s count "
                       "matrix products, convolutions and attention only.")
    return out


def print_report(result: dict[str, Any], load_limit: float) -> None:
    lines = machine_lines(result["machine"], result["settings"], load_limit)
    if "training" in result:
        lines += [""] + training_section(result["training"])
    if "match_check" in result:
        lines += [""] + match_section(result["match_check"])
    if "unet_eval" in result:
        lines += [""] + eval_section(result["unet_eval"])
    if "sampling" in result:
        lines += [""] + sampling_section(result["sampling"], result.get("sampling_check"))
    if "sampling_overhead" in result:
        lines += [""] + overhead_section(result["sampling_overhead"])
    if "classifier" in result:
        lines += [""] + classifier_section(result["classifier"])
    if "end_to_end" in result:
        lines += [""] + e2e_section(result["end_to_end"])
    print("\n".join(lines))
