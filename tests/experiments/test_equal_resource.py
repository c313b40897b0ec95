#!/usr/bin/python3
"""experiments/equal_resource.py end to end on micro configs (a few steps per run): the plan holds the
equal-resource conditions (checked against closed forms written here, not the planner's code), every
output exists and agrees with the runs, a rerun retrains nothing, an interrupted run resumes from its
checkpoint to the same result, and a sweep folder refuses other arguments.

Needs MOEJIT_BIN (the moejit binary; ctest sets it) and python3-matplotlib."""
import json
import math
import os
import pathlib
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DRIVER = ROOT / "experiments" / "equal_resource.py"
MOEJIT = os.environ.get("MOEJIT_BIN", str(ROOT / "build" / "apps" / "moejit"))
STEPS = 20  # the dense run's steps; the MoE runs get more at the same compute
BATCH, SEQ = 4, 64  # micro configs have seq_len 64
MICRO_PLAN = ("--layers 2 --d-model 64 --width-multiple 16 --experts 4:16 --d-expert 16:64 --d-shared 16:128 "
              "--top-k 1:8 --ra-tolerance 0.03")
RATES = [0.7, 0.85]  # micro models: attention and the dense layer alone are ~60% of N


def write_corpus(path):
    """English-like text that needs no installed files (the trainer splits off its last 5%)."""
    rng = random.Random(7)
    words = ["the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog. ", "and\n"]
    text = "".join(rng.choice(words) for _ in range(12000))
    path.write_text(text)
    return path


def sweep_args(out, corpus, rates=RATES, seeds="1,2", extra=()):
    return ["--moejit", MOEJIT, "--base", "micro-dense", "--tokens", str(STEPS * BATCH * SEQ),
            "--ra", ",".join(map(str, rates)), "--seeds", seeds, "--plan-args", MICRO_PLAN, "--data", str(corpus),
            "--batch", str(BATCH), "--eval-every", "5", "--eval-batches", "2", "--final-eval-batches", "4",
            "--checkpoint-every", "5", "--backend", "reference", "--threads", "2", "--out", str(out), *extra]


def drive(args, check=True):
    p = subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"driver failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def closed_form_counts(c):
    """N and N_a from the config alone: attention 4 d^2 per layer, SwiGLU 3 d w, RMSNorm gains 2 d per
    layer + d; routed experts count E in N and K in N_a (router and embeddings excluded)."""
    d, layers = c["d_model"], c["layers"]
    n = na = layers * 4 * d * d + (2 * layers + 1) * d
    moe = c.get("moe")
    dense = moe["dense_layers"] if moe else list(range(layers))
    for layer in range(layers):
        if layer in dense:
            n += 3 * d * c["d_ffn"]
            na += 3 * d * c["d_ffn"]
        else:
            shared = 3 * d * moe["shared_experts"] * moe["d_shared"]
            n += shared + 3 * d * moe["experts"] * moe["d_expert"]
            na += shared + 3 * d * moe["top_k"] * moe["d_expert"]
    return n, na


def m_train(c):
    return 6 * closed_form_counts(c)[1] + 12 * c["layers"] * c["d_model"] * c["seq_len"]


def png_size(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


class EqualResourceSweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="moejit-experiment-"))
        cls.corpus = write_corpus(cls.tmp / "corpus.txt")
        cls.out = cls.tmp / "sweep"
        cls.first = drive(sweep_args(cls.out, cls.corpus))
        cls.plan = json.loads((cls.out / "plan.json").read_text())
        cls.table = json.loads((cls.out / "table.json").read_text())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def config(self, entry):
        path = pathlib.Path(entry["config_path"])
        if not path.is_file():
            path = ROOT / "models" / "configs" / f"{entry['config']}.json"
        return json.loads(path.read_text())

    def test_plan_holds_equal_n_and_equal_compute(self):
        dense, *moe = self.plan["entries"]
        self.assertEqual(len(moe), len(RATES))
        n_dense, _ = closed_form_counts(self.config(dense))
        compute = m_train(self.config(dense)) * STEPS * BATCH * SEQ
        self.assertAlmostEqual(self.plan["compute"], compute, delta=1e-6 * compute)
        for e, rate in zip(moe, RATES):
            c = self.config(e)
            n, na = closed_form_counts(c)
            self.assertEqual((e["N"], e["N_active"]), (n, na), e["config"])
            self.assertLessEqual(abs(n / n_dense - 1), 0.01, f"{e['config']}: N {n} vs dense {n_dense}")
            self.assertLessEqual(abs(na / n - rate), 0.03, e["config"])
            self.assertEqual(c["moe"]["dense_layers"], [0], "1dense+SE: layer 0 dense")
            self.assertGreater(c["moe"]["shared_experts"] * c["moe"]["d_shared"], 0, "1dense+SE: a shared expert")
            # The whole steps nearest to C / M_train: within half a step's compute of C.
            step_flops = m_train(c) * BATCH * SEQ
            self.assertLessEqual(abs(e["tokens"] * m_train(c) - compute), step_flops / 2 + 1e-6 * compute)
            self.assertGreater(e["tokens"], dense["tokens"], "at lower r_a the same C buys more tokens")

    def test_every_run_finished_with_its_tokens_epochs_and_a_real_evaluation(self):
        records = [json.loads(p.read_text()) for p in (self.out / "records").glob("*.json")]
        runs = {(r["label"], r["seed"]): r for r in records}
        self.assertEqual(len(runs), 2 * (1 + len(RATES)))
        unique = STEPS * BATCH * SEQ  # the dense model's tokens: smaller than the corpus, so the cap holds
        for e in self.plan["entries"]:
            for seed in (1, 2):
                r = runs[(e["label"], seed)]
                ckpts = sorted((self.out / "work" / f"{e['label']}-s{seed}").glob("ckpt_step*.safetensors"))
                with open(ckpts[-1], "rb") as f:
                    meta = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))["__metadata__"]
                self.assertEqual(int(meta["step"]), e["steps"])
                self.assertEqual(int(meta["unique_tokens"]), unique)
                self.assertEqual(r["tokens"], e["steps"] * BATCH * SEQ)
                self.assertAlmostEqual(r["epochs"], r["tokens"] / unique)
                self.assertAlmostEqual(r["val_bpb"], r["val_loss"] / math.log(2), places=4)
                # Learned something: below a uniform byte model (log2 257 bits), and below its own start.
                self.assertLess(r["val_bpb"], math.log2(257) - 1)
                first_val = r["curves"]["val_bpb"][0][1]
                self.assertLess(r["val_bpb"], first_val - 1, f"{e['label']} s{seed} did not train")
                self.assertEqual(r["curves"]["val_bpb"][-1][0], e["steps"])

    def test_table_and_plots(self):
        rows = self.table["rows"]
        self.assertEqual([r["label"] for r in rows], [e["label"] for e in self.plan["entries"]])
        for row in rows:
            seeds = list(row["val_bpb"].values())
            self.assertEqual(len(seeds), 2)
            self.assertAlmostEqual(row["mean"], sum(seeds) / 2)
            self.assertAlmostEqual(row["spread"], max(seeds) - min(seeds))
            self.assertAlmostEqual(row["vs_dense"], row["mean"] - rows[0]["mean"])
        md = (self.out / "table.md").read_text()
        for row in rows:
            self.assertIn(f"`{row['config']}`", md)
            self.assertIn(f"{row['mean']:.4f}", md)
        self.assertGreater(png_size(self.out / "val_bpb_vs_ra.png")[0], 400)
        self.assertGreater(png_size(self.out / "loss_curves.png")[0], 400)
        analysis = (self.out / "analysis.md").read_text()
        self.assertIn("Best MoE:", analysis)
        self.assertNotIn("$", analysis.replace("$ ", ""), "an unfilled template placeholder")

    def test_rerun_retrains_nothing(self):
        logs = {p: p.stat().st_size for p in (self.out / "work").glob("*/train.log")}
        p = drive(sweep_args(self.out, self.corpus))
        self.assertEqual(p.stdout.count(": done, val"), 2 * (1 + len(RATES)), p.stdout)
        self.assertEqual({p: p.stat().st_size for p in (self.out / "work").glob("*/train.log")}, logs)

    def test_other_arguments_are_refused(self):
        p = drive(sweep_args(self.out, self.corpus, extra=["--lr", "1e-3"]), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another --out", p.stderr)

    def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_result(self):
        out = self.tmp / "interrupted"
        args = sweep_args(out, self.corpus, rates=RATES[:1], seeds="2")
        p = drive(args + ["--stop-after", "8"])
        self.assertIn("stopped at step 8", p.stdout)
        self.assertEqual(list((out / "records").glob("*.json")), [])
        # A killed run may have logged steps after its last checkpoint: the resumed run's records win.
        metrics = out / "work" / "moe-r70-s2" / "metrics.jsonl"
        with open(metrics, "a") as f:
            f.write(json.dumps({"step": 9, "loss": 99.0, "ce": 99.0, "lr": 0, "grad_norm": 0,
                                "tokens_per_s": 1.0}) + "\n")
        drive(args)
        self.assertIn("resumed from", (out / "work" / "moe-r70-s2" / "train.log").read_text())
        resumed = json.loads((out / "records" / "moe-r70-s2.json").read_text())
        straight = json.loads((self.out / "records" / "moe-r70-s2.json").read_text())
        self.assertEqual(resumed["val_bpb"], straight["val_bpb"])
        self.assertNotIn(99.0, [ce for _, ce in resumed["curves"]["train_ce"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
