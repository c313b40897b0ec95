"""Tables, plots, the analysis template and the wall-time estimate of the equal-resource sweep
(experiments/equal_resource.py). Everything here reads plan.json and records/*.json only, so
`equal_resource.py --report-only` rebuilds it from a committed results folder."""
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import string
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CURVE_POINTS = 200  # training-loss points kept per run (window means): enough to see the shape


def write_text(path, text):
    """Atomically: a killed sweep never leaves a half-written record that looks finished."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
    os.replace(tmp, path)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def curves(metrics, m_train, tokens_per_step, compute):
    """A run's curves by step: window means of the training cross-entropy (nats), every periodic
    validation (bits per byte, epochs), and the fraction of C one step spends (the plots' x axis)."""
    steps = metrics["steps"]
    window = max(1, math.ceil(len(steps) / CURVE_POINTS))
    train = []
    for i in range(0, len(steps), window):
        chunk = steps[i:i + window]
        train.append([chunk[-1]["step"], statistics.fmean(r["ce"] for r in chunk)])
    val = [[r["step"], r["val_bits_per_token"], r.get("epochs", 0)] for r in metrics["evals"]]
    return {"train_ce": train, "val_bpb": val, "compute_per_step": m_train * tokens_per_step / compute}


# ---- the table -------------------------------------------------------------------------------------


def load_runs(out):
    return [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]


def unique_tokens(plan, runs):
    """The unique training tokens the runs used: the plan's cap, or the whole corpus where it is smaller
    (the trainer records what it used in every checkpoint, and the runs carry it)."""
    return min([r["unique_tokens"] for r in runs] or [plan["unique_tokens"]])


def table_rows(plan, runs):
    rows, unique = [], unique_tokens(plan, runs)
    for e in plan["entries"]:
        mine = sorted((r for r in runs if r["label"] == e["label"]), key=lambda r: r["seed"])
        bpb = [r["val_bpb"] for r in mine]
        rows.append({"label": e["label"], "config": e["config"], "N": e["N"], "N_active": e["N_active"],
                     "activation_rate": e["activation_rate"], "compute": plan["compute"], "tokens": e["tokens"],
                     "steps": e["steps"], "epochs": e["tokens"] / unique,
                     "val_bpb": {str(r["seed"]): r["val_bpb"] for r in mine},
                     "mean": statistics.fmean(bpb) if bpb else None,
                     "spread": (max(bpb) - min(bpb)) if bpb else None,
                     "train_minutes": sum(r["train_seconds"] for r in mine) / 60,
                     "step_seconds": statistics.fmean(r["step_seconds"] for r in mine) if mine else None})
    dense = rows[0]["mean"]
    for r in rows:
        r["vs_dense"] = (r["mean"] - dense) if (r["mean"] is not None and dense is not None) else None
    return rows


def count(n):
    """1,205,888 -> '1.21M', 5120 -> '5.12k'."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table_markdown(plan, rows):
    out = ["| run | config | N | N_a | r_a | C (FLOPs) | tokens | epochs | val BPB per seed | mean | spread "
           "| vs dense |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        seeds = ", ".join(f"s{s}: {v:.4f}" for s, v in r["val_bpb"].items()) or "not run"
        out.append(f"| {r['label']} | `{r['config']}` | {r['N']:,} | {r['N_active']:,} | "
                   f"{100 * r['activation_rate']:.1f}% | {r['compute']:.3g} | {r['tokens']:,} | {r['epochs']:.2f} | "
                   f"{seeds} | {fmt(r['mean'], '.4f')} | {fmt(r['spread'], '.4f')} | {fmt(r['vs_dense'], '+.4f')} |")
    return "\n".join(out) + "\n"


def provenance(command):
    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD"), "cpu": f"{cpu} ({os.cpu_count()} hardware threads)",
            "command": command}


# ---- plots (python3-matplotlib from Debian, installed by scripts/setup.sh) --------------------------


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("equal_resource: matplotlib is missing: install python3-matplotlib (scripts/setup.sh) "
                         "and run this script with Debian's /usr/bin/python3")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_bpb_vs_ra(plan, rows, unique, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    dense, moe = rows[0], [r for r in rows[1:] if r["mean"] is not None]
    if dense["mean"] is not None:
        seeds = list(dense["val_bpb"].values())
        ax.axhspan(min(seeds), max(seeds), color="tab:gray", alpha=0.2, lw=0)
        ax.axhline(dense["mean"], color="tab:gray", ls="--", label=f"dense (mean of {len(seeds)} seeds, band: range)")
    if moe:
        x = [100 * r["activation_rate"] for r in moe]
        ax.errorbar(x, [r["mean"] for r in moe], fmt="o-", color="tab:blue", capsize=4, label="MoE mean (bar: range)",
                    yerr=[[r["mean"] - min(r["val_bpb"].values()) for r in moe],
                          [max(r["val_bpb"].values()) - r["mean"] for r in moe]])
        for r, xi in zip(moe, x):
            ax.scatter([xi] * len(r["val_bpb"]), list(r["val_bpb"].values()), s=14, color="tab:blue", alpha=0.45)
            ax.annotate(r["config"].removeprefix("moe-"), (xi, r["mean"]), textcoords="offset points", xytext=(6, 6),
                        fontsize=7, color="tab:blue")
    ax.axvline(20, color="tab:green", ls=":", lw=1, label="paper's optimum, r_a ≈ 20%")
    ax.set_xlim(0, max([60] + [100 * r["activation_rate"] + 20 for r in moe]))  # room for the labels
    ax.set_xlabel("activation rate r_a = N_a / N (%)")
    ax.set_ylabel("validation bits per byte (lower is better)")
    ax.set_title(f"Equal N ({count(plan['base_N'])}), equal C ({plan['compute']:.2g} FLOPs), "
                 f"{count(unique)} unique tokens", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(plan, runs, path):
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {e["label"]: plt.cm.tab10(i) for i, e in enumerate(plan["entries"])}
    styles = ["-", "--", ":", "-."]
    for r in sorted(runs, key=lambda r: (r["label"], r["seed"])):
        c, per_step = r["curves"], r["curves"]["compute_per_step"]
        style = dict(color=colors[r["label"]], ls=styles[(r["seed"] - 1) % len(styles)], lw=1.2)
        label = f"{r['label']} s{r['seed']}"
        left.plot([s * per_step for s, _ in c["train_ce"]], [v / math.log(2) for _, v in c["train_ce"]], label=label,
                  **style)
        right.plot([s * per_step for s, *_ in c["val_bpb"]], [v for _, v, *_ in c["val_bpb"]], label=label, **style)
    for ax, what in ((left, "training cross-entropy (bits per byte)"), (right, "validation bits per byte")):
        ax.set_xlabel("fraction of the compute budget C spent")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    values = [v for r in runs for _, v, *_ in r["curves"]["val_bpb"]]
    if values:  # the first evaluation (random init, ~8 bits) would flatten everything after it
        right.set_ylim(min(values) - 0.05, min(max(values), min(values) + 1.5))
        left.set_ylim(min(values) - 0.3, min(values) + 1.5)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the written analysis (a template with the measured facts filled in) ---------------------------


def analysis_facts(plan, rows, unique, prov):
    dense, moe = rows[0], [r for r in rows[1:] if r["mean"] is not None]
    facts = {"date": prov["date"], "commit": prov["commit"], "cpu": prov["cpu"], "command": prov["command"],
             "base": plan["entries"][0]["config"], "N": f"{plan['base_N']:,}", "C": f"{plan['compute']:.3g}",
             "unique": f"{unique:,}", "table": table_markdown(plan, rows).strip()}
    if dense["mean"] is None or not moe:
        facts["summary"] = "(the sweep has not finished: no comparison yet)"
        return facts
    best = min(moe, key=lambda r: r["mean"])
    spreads = [r["spread"] for r in rows if r["spread"] is not None and len(r["val_bpb"]) > 1]
    noise = max(spreads) if spreads else float("nan")
    gap = best["mean"] - dense["mean"]
    facts["summary"] = (
        f"Best MoE: {best['label']} (r_a {100 * best['activation_rate']:.1f}%), mean {best['mean']:.4f} BPB vs dense "
        f"{dense['mean']:.4f}: {gap:+.4f} BPB ({100 * gap / dense['mean']:+.2f}%). Largest seed spread (max - min) "
        f"of any config: {noise:.4f} BPB, so the best gap is {abs(gap) / noise:.1f}x the spread. MoE runs saw "
        f"{min(r['epochs'] for r in moe):.2f}-{max(r['epochs'] for r in moe):.2f} epochs of the unique data, "
        f"dense {dense['epochs']:.2f}.")
    return facts


def write_analysis(out, plan, rows, unique, prov):
    """analysis.md is for a person to finish. analysis.generated.md always holds the template filled
    with the newest facts; analysis.md follows it until someone edits it, then it is left alone."""
    template = string.Template((HERE / "analysis_template.md").read_text())
    text = template.substitute(analysis_facts(plan, rows, unique, prov))
    generated, mine = out / "analysis.generated.md", out / "analysis.md"
    untouched = not mine.exists() or (generated.exists() and mine.read_text() == generated.read_text())
    write_text(generated, text)
    if untouched:
        write_text(mine, text)


def write_report(a, plan, command):
    runs = load_runs(a.out)
    rows, unique = table_rows(plan, runs), unique_tokens(plan, runs)
    prov = provenance(command)
    write_json(a.out / "table.json", {**prov, "base": plan["entries"][0]["config"], "base_N": plan["base_N"],
                                      "compute": plan["compute"], "dense_tokens": plan["dense_tokens"],
                                      "unique_tokens": unique, "rows": rows})
    head = (f"# Equal-resource sweep: {plan['entries'][0]['config']} vs planner MoE designs\n\n"
            f"{prov['date']}, commit {prov['commit']}, {prov['cpu']}. Command: `{command}`\n\n"
            f"Same N ({plan['base_N']:,}), same C ({plan['compute']:.3g} FLOPs), the same {unique:,} unique "
            f"training tokens (the dense model's {plan['dense_tokens']:,.0f}, or the whole corpus where smaller); "
            f"val BPB from `moejit eval` over the same held-out text for every run; spread = max - min over "
            f"seeds.\n\n")
    write_text(a.out / "table.md", head + table_markdown(plan, rows))
    plot_bpb_vs_ra(plan, rows, unique, a.out / "val_bpb_vs_ra.png")
    plot_curves(plan, runs, a.out / "loss_curves.png")
    write_analysis(a.out, plan, rows, unique, prov)
    print(f"report: {a.out}/table.md, table.json, val_bpb_vs_ra.png, loss_curves.png, analysis.md")


# ---- the wall-time estimate ------------------------------------------------------------------------


def estimate_row(a, e, metrics, step, curve_eval, final_eval):
    """One config's run time three ways: from the wall time on this machine now (median step, skipping
    the first steps, which load the JIT kernels), from CPU time / threads and from the busiest
    thread's CPU time (`step`: seconds per step of both; an unloaded machine's range)."""
    wall = statistics.median(metrics["seconds"][2:] or metrics["seconds"])
    evals = e["steps"] // a.eval_every + 1 if a.eval_every > 0 else 1

    def run(step_s, curve_s, final_s):
        return e["steps"] * step_s + evals * curve_s + final_s

    return {"label": e["label"], "config": e["config"], "steps": e["steps"], "measured_steps": a.estimate,
            "step_seconds": {"wall": wall, "cpu_per_thread": step["cpu"] / a.threads,
                             "busiest_thread": step["busiest"]},
            "eval_seconds": {"curve": curve_eval["seconds"], "final": final_eval["seconds"]},
            "run_seconds": {
                "wall": run(wall, curve_eval["seconds"], final_eval["seconds"]),
                "cpu_per_thread": run(step["cpu"] / a.threads, curve_eval["cpu_seconds"] / a.threads,
                                      final_eval["cpu_seconds"] / a.threads),
                "busiest_thread": run(step["busiest"], curve_eval["busiest_thread_seconds"],
                                      final_eval["busiest_thread_seconds"])},
            "tuning": metrics["tuning"]}


ESTIMATES = {"wall": "wall time here, now", "cpu_per_thread": "CPU time / threads",
             "busiest_thread": "busiest thread's CPU time"}


def estimate_summary(a, plan, rows, command):
    return {**provenance(command), "load_average": os.getloadavg(), "seeds": a.seeds, "threads": a.threads,
            "rows": rows, "tokens_per_step": plan["tokens_per_step"],
            "total_seconds": {k: len(a.seeds) * sum(r["run_seconds"][k] for r in rows) for k in ESTIMATES}}


def estimate_markdown(est):
    tps = est["tokens_per_step"]
    out = [f"# Sweep wall-time estimate ({est['date']}, commit {est['commit']}, {est['cpu']}, load average "
           f"{' '.join(f'{x:.1f}' for x in est['load_average'])} at the end)", "", f"`{est['command']}`", "",
           "Seconds per step (tokens/s) three ways: the median wall time on this machine as loaded now; CPU time / "
           "threads (an unloaded machine with the threads always busy together: a lower bound); the busiest "
           "thread's CPU time (an unloaded machine, serial parts counted).", "",
           "| run | config | steps | " + " | ".join(ESTIMATES.values()) + " | eval s (curve, final) | per run "
           "(busiest thread) | MoE kernels |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in est["rows"]:
        steps = " | ".join(f"{r['step_seconds'][k]:.3f} ({tps / r['step_seconds'][k]:,.0f})" for k in ESTIMATES)
        out.append(f"| {r['label']} | `{r['config']}` | {r['steps']:,} | {steps} | {r['eval_seconds']['curve']:.1f}, "
                   f"{r['eval_seconds']['final']:.1f} | {r['run_seconds']['busiest_thread'] / 60:.1f} min | "
                   f"{r['tuning'] or '—'} |")
    totals = ", ".join(f"{est['total_seconds'][k] / 3600:.2f} h from the {v}" for k, v in ESTIMATES.items())
    out += ["", f"Sweep total for {len(est['seeds'])} seeds: {totals}."]
    return "\n".join(out) + "\n"
