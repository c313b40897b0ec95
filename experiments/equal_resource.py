#!/usr/bin/python3
"""The equal-resource experiment at small scale (issue 17; ../shared/reference/paper.md).

From a dense base config and its token budget D (so C = M_train(dense) * D), the planner
(`moejit plan --target-ra`) designs MoE models in the paper's 1dense+SE layout with the same
non-vocabulary N at each target activation rate; each gets the tokens C buys (MoE sees more), all
train on at most D unique tokens (MoE repeats them: epochs), each with every seed, and each final
checkpoint is evaluated on the same held-out text (`moejit eval`). Outputs, in --out:

  plan.json            the frozen plan: arguments, every config's N, N_a, r_a, M_train, tokens
  configs/*.json       the planner's MoE designs (loadable by `moejit plan` and `moejit train`)
  records/<run>.json   one finished run: final val bits per byte, epochs, step time, loss curves
  table.md, table.json the results table (config, N, N_a, r_a, C, tokens, epochs, BPB per seed,
                       mean, spread)
  val_bpb_vs_ra.png    val BPB against r_a, dense baseline as a line
  loss_curves.png      training loss and val BPB against the fraction of C spent
  analysis.md          the written-analysis template with the measured facts filled in, for a
                       person to finish (left alone once edited; analysis.generated.md follows)
  work/                checkpoints, metrics.jsonl and logs of every run (git-ignored)

Resumable: finished runs (records/<run>.json) are skipped, unfinished ones continue from their newest
checkpoint (`moejit train --resume`). `--estimate STEPS` times STEPS steps of every config instead
and prints the sweep's estimated wall time. experiments/README.md has the commands.
"""
import argparse
import datetime
import json
import os
import pathlib
import shlex
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import equal_resource_report as report  # noqa: E402
import moejit_cli as cli  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The planner's search per base config: one backbone for every MoE design (3 layers: 1 dense + 2 MoE
# with a shared expert), so that across r_a only the experts change (E, K, widths), as in the paper's
# activation-rate sweeps. r_a near 10% bounds the backbone: its attention and dense layer must stay
# well under 10% of N, hence d_model 32 for dense-300k (7%) and 64 for dense-1m (7%). Widths in steps
# of 16, K >= 2 (fine-grained, as the paper's winners).
SEARCH = "--width-multiple 16 --d-expert 16:256 --d-shared 16:256 --top-k 2:16 --ra-tolerance 0.02"
PLAN_ARGS = {"dense-300k": "--layers 3 --d-model 32 " + SEARCH, "dense-1m": "--layers 3 --d-model 64 " + SEARCH}

# The arguments that decide what a run computes: a sweep resumed with other values would mix two
# experiments in one table, so plan.json records them and a mismatch is refused.
FROZEN = ["base", "tokens", "tokens_per_param", "ra", "plan_args", "batch", "lr", "warmup", "data",
          "unique_tokens", "eval_every", "eval_batches", "final_eval_batches", "backend"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moejit", default=str(ROOT / "build/apps/moejit"), help="the moejit binary")
    p.add_argument("--base", default="dense-300k",
                   help="dense base config, name or .json path (default %(default)s: fits 2 h on 2 cores)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--tokens", type=float, help="the dense model's training tokens D")
    budget.add_argument("--tokens-per-param", type=float, default=10.0,
                        help="D = this * N of the base (default 10)")
    p.add_argument("--ra", default="0.10,0.20,0.35,0.50", help="target activation rates, comma-separated")
    p.add_argument("--seeds", default="1,2", help="seeds, comma-separated (>= 2 for a spread)")
    p.add_argument("--plan-args", help="`moejit plan --target-ra` options (ranges, tolerances), one string; "
                   "default for " + " and ".join(f"{k}: '{v}'" for k, v in PLAN_ARGS.items()))
    p.add_argument("--unique-tokens", type=float, default=0,
                   help="unique-token pool (default: D, the dense model's tokens; capped by the corpus)")
    p.add_argument("--data", default="", help="training data as for `moejit train` (default: its corpus)")
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=-1, help="warm-up steps (-1: the trainer's rule)")
    p.add_argument("--eval-every", type=int, default=250, help="validate every N steps (curves)")
    p.add_argument("--eval-batches", type=int, default=8, help="validation batches of the curves")
    p.add_argument("--final-eval-batches", type=int, default=64,
                   help="validation batches of the final `moejit eval` (same text for every run)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--backend", default="host", choices=["host", "reference"],
                   help="`moejit train --backend`: host (JIT host kernels, default) or reference (plain loops)")
    p.add_argument("--threads", type=int, default=2, help="trainer threads")
    p.add_argument("--out", default=str(ROOT / "experiments/results" / datetime.date.today().isoformat()),
                   help="results folder (default experiments/results/<today>)")
    p.add_argument("--stop-after", type=int, default=-1,
                   help="stop every run after N steps, keeping its schedule (tests; rerun without it)")
    p.add_argument("--estimate", type=int, default=0, metavar="STEPS",
                   help="time STEPS steps of each config and estimate the sweep's wall time; no sweep")
    p.add_argument("--report-only", action="store_true", help="rebuild tables and plots from records/*.json")
    a = p.parse_args(argv)
    a.ra = [float(x) for x in a.ra.split(",") if x]
    a.seeds = [int(x) for x in a.seeds.split(",") if x]
    a.out = pathlib.Path(a.out).resolve()
    if a.tokens is not None:
        a.tokens_per_param = None
    if a.plan_args is None:
        if a.base not in PLAN_ARGS:
            p.error(f"--plan-args is needed for base {a.base} (the defaults are for {', '.join(PLAN_ARGS)})")
        a.plan_args = PLAN_ARGS[a.base]
    if not a.ra or any(not 0 < r < 1 for r in a.ra):
        p.error("--ra wants activation rates in (0, 1), e.g. 0.1,0.2,0.35,0.5")
    if not a.seeds:
        p.error("--seeds wants at least one seed, e.g. 1,2")
    return a


def frozen_args(a):
    return {k: getattr(a, k) for k in FROZEN}


# ---- plan: the configs, their N, N_a, r_a and token counts, frozen in plan.json --------------------


def entry(label, design, tokens_per_step, compute, config_path):
    """One config of the sweep: the planner's numbers and the whole steps nearest to C / M_train."""
    params, flops = design["params"], design["flops_per_token"]
    tokens = compute / flops["M_train"]
    steps = max(1, round(tokens / tokens_per_step))
    return {"label": label, "config": design["config"]["name"], "config_path": str(config_path),
            "N": params["N"], "N_active": params["N_active"], "activation_rate": params["activation_rate"],
            "M_train": flops["M_train"], "planned_tokens": tokens, "steps": steps,
            "tokens": steps * tokens_per_step}


def design_moe(a, moejit, target_ra, dense_tokens, unique):
    opts = ["--target-ra", str(target_ra), "--tokens", repr(dense_tokens), "--unique-tokens", repr(unique),
            "--max-results", "1", "--per-shape", "1"] + a.plan_args.split()
    designs = moejit.json(["plan", a.base] + opts)["designs"]
    if not designs:
        sys.exit(f"equal_resource: the planner found no MoE design at r_a = {target_ra} for {a.base}: widen "
                 f"--plan-args (ranges, --ra-tolerance, --tolerance); try "
                 f"`{moejit.command_line(['plan', a.base] + opts)}`")
    return designs[0]


def make_plan(a, moejit):
    base = moejit.json(["plan", a.base, "--json"])
    n = base["params"]["N"]
    dense_tokens = a.tokens if a.tokens is not None else a.tokens_per_param * n
    unique = a.unique_tokens or dense_tokens
    base = moejit.json(["plan", a.base, "--tokens", repr(dense_tokens), "--json"])
    seq_len = base["config"]["seq_len"]
    tokens_per_step = a.batch * seq_len
    compute = base["compute"]
    (a.out / "configs").mkdir(parents=True, exist_ok=True)
    entries = [entry("dense", base, tokens_per_step, compute, a.base)]
    for r in a.ra:
        d = design_moe(a, moejit, r, dense_tokens, unique)
        path = a.out / "configs" / (d["config"]["name"] + ".json")
        report.write_json(path, d["config"])
        entries.append(entry(f"moe-r{round(100 * r):02d}", d, tokens_per_step, compute, path))
    return {"args": frozen_args(a), "base_N": n, "dense_tokens": dense_tokens, "unique_tokens": int(unique),
            "compute": compute, "seq_len": seq_len, "tokens_per_step": tokens_per_step, "entries": entries}


def load_or_make_plan(a, moejit):
    path = a.out / "plan.json"
    if path.exists():
        plan = json.loads(path.read_text())
        if plan["args"] != frozen_args(a):
            diff = {k: (plan["args"].get(k), v) for k, v in frozen_args(a).items() if plan["args"].get(k) != v}
            sys.exit(f"equal_resource: {a.out} holds a sweep planned with other arguments "
                     f"(was, now: {diff}): rerun with the same ones to resume it, or choose another --out")
        return plan
    if a.report_only:
        sys.exit(f"equal_resource: --report-only: no plan.json in {a.out}")
    plan = make_plan(a, moejit)
    report.write_json(path, plan)
    return plan


# ---- runs: train (or resume), evaluate, record ---------------------------------------------------


def train_args(a, plan, e, seed, run_dir, stop_after):
    args = ["train", "--config", e["config_path"], "--tokens", str(e["tokens"]), "--unique-tokens",
            str(plan["unique_tokens"]), "--seed", str(seed), "--out", str(run_dir), "--batch", str(a.batch),
            "--lr", repr(a.lr), "--eval-every", str(a.eval_every), "--eval-batches", str(a.eval_batches),
            "--checkpoint-every", str(a.checkpoint_every), "--threads", str(a.threads), "--backend", a.backend]
    if a.warmup >= 0:
        args += ["--warmup", str(a.warmup)]
    if a.data:
        args += ["--data", a.data]
    if stop_after >= 0:
        args += ["--stop-after", str(stop_after)]
    return args


def train(a, moejit, plan, e, seed, run_dir, stop_after, sample_threads=False):
    """Trains one run to its end (or to stop_after), resuming from its newest checkpoint."""
    resume = bool(cli.checkpoints(run_dir))
    if not resume:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # steps of a run killed before its first checkpoint
    args = train_args(a, plan, e, seed, run_dir, stop_after) + (["--resume"] if resume else [])
    return moejit.run(args, log=run_dir / "train.log", sample_threads=sample_threads)


def evaluate(a, moejit, checkpoint, run_dir, batches, sample_threads=False):
    args = ["eval", str(checkpoint), "--batches", str(batches), "--threads", str(a.threads), "--backend", a.backend]
    if a.data:
        args += ["--data", a.data]
    completed = moejit.run(args, log=run_dir / "eval.log", sample_threads=sample_threads)
    return {**cli.parse_eval(completed), "seconds": completed.seconds, "cpu_seconds": completed.cpu_seconds,
            "busiest_thread_seconds": completed.busiest_thread_seconds}


def finish_run(a, moejit, plan, e, seed, run_dir):
    """The run's record from its final checkpoint, metrics and a final evaluation."""
    last = cli.checkpoints(run_dir)[-1]
    meta = cli.checkpoint_metadata(last)
    final = evaluate(a, moejit, last, run_dir, a.final_eval_batches)
    metrics = cli.read_metrics(run_dir / "metrics.jsonl", plan["tokens_per_step"])
    unique = int(meta["unique_tokens"])
    return {"label": e["label"], "seed": seed, "config": e["config"], "N": e["N"], "N_active": e["N_active"],
            "activation_rate": e["activation_rate"], "compute": plan["compute"],
            "compute_spent": e["M_train"] * e["tokens"], "tokens": e["tokens"], "steps": e["steps"],
            "unique_tokens": unique, "epochs": e["tokens"] / unique, "val_loss": final["loss"],
            "val_bpb": final["bits"], "final_eval_batches": a.final_eval_batches,
            "train_seconds": metrics["train_seconds"], "step_seconds": metrics["step_seconds"],
            "moe_kernels": metrics["tuning"],
            "curves": report.curves(metrics, e["M_train"], plan["tokens_per_step"], plan["compute"])}


def run_all(a, moejit, plan):
    runs = [(e, s) for e in plan["entries"] for s in a.seeds]
    (a.out / "records").mkdir(parents=True, exist_ok=True)
    for i, (e, seed) in enumerate(runs, 1):
        name = f"{e['label']}-s{seed}"
        record, run_dir = a.out / "records" / f"{name}.json", a.out / "work" / name
        head = f"[{i}/{len(runs)}] {name} ({e['config']}, {e['steps']} steps)"
        if record.exists():
            print(f"{head}: done, val {json.loads(record.read_text())['val_bpb']:.4f} bpb", flush=True)
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        have = cli.checkpoints(run_dir)
        print(f"{head}: " + (f"resuming from {have[-1].name}" if have else "training"), flush=True)
        train(a, moejit, plan, e, seed, run_dir, a.stop_after)
        step = int(cli.checkpoint_metadata(cli.checkpoints(run_dir)[-1])["step"])
        if step < e["steps"]:
            print(f"{head}: stopped at step {step} (--stop-after); rerun without it to finish", flush=True)
            continue
        r = finish_run(a, moejit, plan, e, seed, run_dir)
        report.write_json(record, r)
        print(f"{head}: val {r['val_bpb']:.4f} bpb, {r['epochs']:.2f} epochs, "
              f"{r['train_seconds'] / 60:.1f} min", flush=True)


# ---- estimate: time a few steps of each config ---------------------------------------------------


def timed_steps(a, moejit, plan, e, steps):
    """A fresh run of `steps` steps of config e: its process (wall and CPU time), metrics, checkpoint."""
    run_dir = a.out / "work" / "estimate" / f"{e['label']}-{steps}"
    cli.remove_tree(run_dir)
    run_dir.mkdir(parents=True)
    completed = train(a, moejit, plan, e, a.seeds[0], run_dir, steps, sample_threads=True)
    return completed, cli.read_metrics(run_dir / "metrics.jsonl", plan["tokens_per_step"]), run_dir


def estimate(a, moejit, plan, command):
    """Times `a.estimate` steps of every config. Two runs (3 and 3 + a.estimate steps) differ only by
    those steps, so the difference of their CPU times is the steps' alone, without start-up and
    evaluations (a first 1-step run compiles the JIT kernels into the cache for both). On a shared
    machine that is what an unloaded one would take, which wall time is not: CPU time / threads if the
    threads were always busy together, the busiest thread's time counting the serial parts."""
    rows = []
    for e in plan["entries"]:
        print(f"estimate: {e['label']} ({e['config']}), {a.estimate} steps", flush=True)
        timed_steps(a, moejit, plan, e, 1)
        short, _, _ = timed_steps(a, moejit, plan, e, 3)
        long, metrics, run_dir = timed_steps(a, moejit, plan, e, 3 + a.estimate)
        last = cli.checkpoints(run_dir)[-1]
        evals = [evaluate(a, moejit, last, run_dir, n, sample_threads=True)
                 for n in (a.eval_batches, a.final_eval_batches)]
        step = {"cpu": (long.cpu_seconds - short.cpu_seconds) / a.estimate,
                "busiest": (long.busiest_thread_seconds - short.busiest_thread_seconds) / a.estimate}
        rows.append(report.estimate_row(a, e, metrics, step, *evals))
    est = report.estimate_summary(a, plan, rows, command)
    report.write_json(a.out / "estimate.json", est)
    text = report.estimate_markdown(est)
    report.write_text(a.out / "estimate.md", text)
    print(text)


def main(argv):
    a = parse_args(argv)
    moejit = cli.Moejit(a.moejit)
    a.out.mkdir(parents=True, exist_ok=True)
    cli.ignore_in_git(a.out / "work")
    plan = load_or_make_plan(a, moejit)
    # The command that reproduces the sweep (a report rebuilt with --report-only names the sweep's).
    command = shlex.join([os.path.relpath(sys.argv[0])] + [x for x in argv if x != "--report-only"])
    if a.estimate:
        return estimate(a, moejit, plan, command)
    if not a.report_only:
        run_all(a, moejit, plan)
    report.write_report(a, plan, command)


if __name__ == "__main__":
    main(sys.argv[1:])
