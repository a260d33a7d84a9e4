"""One table from the JSON reports that scaling.sh (thunder-bench llama2 --json) leaves in a folder:
per model and micro-batch, per mode and GPU count, tokens/s per GPU, MFU, peak memory per GPU, and
the scaling efficiency of thunder against every smaller GPU count that ran (tokens/s per GPU over
that count's tokens/s per GPU); then the runs (a .log without its .json) that left no report, with
their last error line.

    python3 scaling_table.py DIR        # prints Markdown
"""

import json
import pathlib
import sys


def rows(folder):
    for path in sorted(pathlib.Path(folder).glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"skipping {path.name}: {e}", file=sys.stderr)
            continue
        if "modes" not in r or "config" not in r:
            continue
        gpus = r["parallel"][1] if r.get("parallel") else 1
        for m in r["modes"]:
            yield {
                "model": r["config"]["name"],
                "mb": r["micro_batch"],
                "device": r["device"],
                "mode": m["mode"] if gpus == 1 else {"thunder": "thunder ZeRO-3", "eager": "eager DDP"}.get(m["mode"], m["mode"]),
                "shape": f"seq {r['seq_len']}, {r['dtype']}",
                "base": m["mode"],
                "gpus": gpus,
                "tok": m["tokens_per_s"],
                "mfu": m.get("mfu"),
                "peak": m.get("peak_memory_bytes"),
                "ms": m["ms_per_step"],
            }


def table(folder):
    all_rows = list(rows(folder))
    if not all_rows:
        return f"no thunder-bench reports in {folder}"
    out = []
    for key in sorted({(r["model"], r["mb"]) for r in all_rows}):
        group = sorted((r for r in all_rows if (r["model"], r["mb"]) == key), key=lambda r: (r["base"], r["gpus"]))
        thunder = {r["gpus"]: r["tok"] for r in group if r["base"] == "thunder"}
        counts = sorted(thunder)
        out.append(f"### {key[0]}, micro-batch {key[1]}, {group[0]['shape']} ({group[0]['device']})\n")
        head = ["mode", "GPUs", "tokens/s per GPU", "ms/step", "MFU", "peak GiB per GPU"]
        head += [f"vs {c} GPU{'s' if c > 1 else ''}" for c in counts[:-1]]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * 2 + "---:|" * (len(head) - 2))
        for r in group:
            cells = [
                r["mode"],
                str(r["gpus"]),
                f"{r['tok']:,.0f}",
                f"{r['ms']:.1f}",
                f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-",
                f"{r['peak'] / 2**30:.2f}" if r["peak"] is not None else "-",
            ]
            for c in counts[:-1]:
                ok = r["base"] == "thunder" and c < r["gpus"]
                cells.append(f"{100 * r['tok'] / thunder[c]:.1f}%" if ok else "")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    failed = []
    for log in sorted(pathlib.Path(folder).glob("*.log")):
        if log.with_suffix(".json").exists():
            continue
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln or "out of memory" in ln]
        failed.append(f"- {log.stem}: {lines[-1].strip() if lines else 'no report (see ' + log.name + ')'}")
    if failed:
        out += ["Runs without a report:", *failed, ""]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: scaling_table.py DIR")
    print(table(sys.argv[1]))
