#!/usr/bin/python3
"""`mpirun -np N moejit train` end to end on micro configs (a few steps, the reference backend: no JIT
compiles), checked against single-process runs of the same global batch:

- data parallel over 2 and 4 ranks = one process with --batch B/R --grad-accum R (the same sequences
  and router statistics), loss for loss within LOSS_RTOL; a dense model = one process with --batch B;
- rank 0 alone writes metrics and checkpoints, and they resume under mpirun;
- a killed rank ends the whole job with a message naming it, the last checkpoint stays intact, and a
  resumed run continues exactly as an uninterrupted one.

Needs MOEJIT_BIN (ctest sets it) and mpirun (Open MPI); without mpirun, or with a moejit built without
MPI (MOEJIT_WITH_MPI=OFF), it skips with a message (exit code 77)."""
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOEJIT = os.environ.get("MOEJIT_BIN", str(ROOT / "build" / "apps" / "moejit"))
MPIRUN = os.environ.get("MOEJIT_MPIRUN", "")
if not MPIRUN or MPIRUN.endswith("NOTFOUND"):  # CMake's find_program found none
    MPIRUN = shutil.which("mpirun")
SKIP = 77
SEQ = 64  # the micro configs' seq_len
BATCH = 4  # global sequences per micro-batch
# Why not bit-exact: a rank sums its own tokens' gradient contributions and MPI then adds the ranks'
# sums, where one process accumulates micro-batch after micro-batch (and the embedding's scatter-add
# token after token); float addition is not associative, so the last bits differ and a few AdamW
# steps carry that to ~1e-7 relative in the loss. 1e-5 leaves room and still fails on any real error
# (a wrong slice or scale moves the loss by > 1e-3).
LOSS_RTOL = 1e-5


def write_corpus(path):
    """English-like text that needs no installed files (the trainer splits off its last 5%)."""
    rng = random.Random(11)
    words = ["the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog. ", "and\n"]
    path.write_text("".join(rng.choice(words) for _ in range(6000)))
    return path


def mpirun(n):
    # --oversubscribe: CI machines have 2 cores; --allow-run-as-root: CI containers run as root.
    return [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", str(n)]


def train_args(config, corpus, out, steps, batch=BATCH, grad_accum=1, extra=()):
    tokens = steps * batch * grad_accum * SEQ
    return [MOEJIT, "train", "--config", config, "--data", str(corpus), "--out", str(out), "--backend", "reference",
            "--batch", str(batch), "--grad-accum", str(grad_accum), "--tokens", str(tokens), "--threads", "1",
            "--warmup", "1", "--lr", "1e-2", "--eval-every", "0", "--eval-batches", "1", *extra]


def run(cmd, cache, check=True):
    env = dict(os.environ, MOEJIT_CACHE_DIR=str(cache))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def losses(out):
    rows = [json.loads(line) for line in (pathlib.Path(out) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def parameter_memory(stdout):
    """The MiB of parameters, gradients and AdamW moments per rank, and one process's, as train prints."""
    line = next(l for l in stdout.splitlines() if l.startswith("parameters, gradients and AdamW moments per rank"))
    per_rank = [float(x) for x in re.findall(r"rank \d+ ([0-9.e+-]+) MiB", line)]
    return per_rank, float(re.search(r"one process: ([0-9.e+-]+) MiB", line).group(1))


def safetensors_shape(path, name):
    data = pathlib.Path(path).read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return header[name]["shape"]


class Distributed(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="moejit-mpi-"))
        self.corpus = write_corpus(self.tmp / "corpus.txt")
        self.cache = self.tmp / "cache"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_same_curve(self, got, want, rtol=LOSS_RTOL):
        self.assertEqual(sorted(got), sorted(want))
        for step in want:
            self.assertLessEqual(abs(got[step] - want[step]), rtol * abs(want[step]),
                                 f"step {step}: {got[step]!r} vs {want[step]!r}")

    def test_data_parallel_moe_equals_one_process_with_grad_accum(self):
        """R ranks x B/R sequences = one process with --batch B/R --grad-accum R (router statistics
        are per B/R sequences in both)."""
        steps = 4
        for ranks in (2, 4):
            with self.subTest(ranks=ranks):
                single, dp = self.tmp / f"single{ranks}", self.tmp / f"dp{ranks}"
                run(train_args("micro-moe", self.corpus, single, steps, BATCH // ranks, ranks), self.cache)
                p = run(mpirun(ranks) + train_args("micro-moe", self.corpus, dp, steps), self.cache)
                self.assertIn(f"data parallel over {ranks} processes", p.stdout)
                self.assertEqual(p.stdout.count("schedule "), 1, "only rank 0 prints")
                self.assert_same_curve(losses(dp), losses(single))
                self.assertEqual(len(list(dp.glob("ckpt_step*.safetensors"))), 1)

    def test_expert_parallel_equals_one_process_with_grad_accum(self):
        """Experts split over groups of P ranks (pure EP and EP x DP): the same curve as one process
        with --batch B/R --grad-accum R; the tokens of each expert meet on its owner."""
        steps = 4
        for ranks, ep in ((2, 2), (4, 2), (4, 4)):
            with self.subTest(ranks=ranks, ep=ep):
                single, run_dir = self.tmp / f"single{ranks}_{ep}", self.tmp / f"ep{ranks}_{ep}"
                run(train_args("micro-moe", self.corpus, single, steps, BATCH // ranks, ranks), self.cache)
                p = run(mpirun(ranks) + train_args("micro-moe", self.corpus, run_dir, steps,
                                                   extra=["--expert-parallel", str(ep)]), self.cache)
                self.assertIn(f"experts split over groups of {ep} ranks", p.stdout)
                self.assert_same_curve(losses(run_dir), losses(single))
                # Each rank holds its E/P experts only: less parameter memory than one process.
                per_rank, whole = parameter_memory(p.stdout)
                self.assertEqual(len(per_rank), ranks)
                self.assertTrue(all(m < whole for m in per_rank), p.stdout)
                index = json.loads((run_dir / f"ckpt_step{steps:08d}.index.json").read_text())
                self.assertEqual((index["ranks"], index["expert_parallel"], len(index["files"])), (ranks, ep, ep))

    def test_overlapped_allreduce_equals_the_sequential_one(self):
        """Each layer's gradients summed while the backward runs give the bits of the sum after the
        backward: the same MPI calls in the same order, only on another thread (DP, and EP x DP
        where the expert replicas' sum runs beside the dispatch's all-to-all)."""
        steps = 3
        for ranks, ep in ((2, 1), (4, 2)):
            with self.subTest(ranks=ranks, ep=ep):
                runs = {}
                for overlap in (True, False):
                    out = self.tmp / f"overlap{ranks}_{ep}_{overlap}"
                    extra = ["--expert-parallel", str(ep), "--overlap", "on" if overlap else "off"]
                    p = run(mpirun(ranks) + train_args("micro-moe", self.corpus, out, steps, extra=extra), self.cache)
                    self.assertIn("gradients summed " + ("layer by layer during" if overlap else "after") +
                                  " the backward", p.stdout)
                    runs[overlap] = losses(out)
                self.assertEqual(runs[True], runs[False])

    def test_expert_parallel_checkpoint_resumes_in_any_layout(self):
        """A sharded run's checkpoint (a shard per expert group rank + an index) resumes with the same
        layout and, its experts reassembled, with another P or in one process's `moejit eval`."""
        steps, ranks, stop = 4, 2, ["--checkpoint-every", "2"]
        single, sharded = self.tmp / "single", self.tmp / "sharded"
        run(train_args("micro-moe", self.corpus, single, steps, BATCH // ranks, ranks, extra=stop), self.cache)
        ep = ["--expert-parallel", "2"]
        first_half = stop + ep + ["--stop-after", "2"]
        run(mpirun(ranks) + train_args("micro-moe", self.corpus, sharded, steps, extra=first_half), self.cache)
        self.assertEqual(sorted(f.name for f in sharded.glob("ckpt_step*")),
                         ["ckpt_step00000002.index.json", "ckpt_step00000002.shard0of2.safetensors",
                          "ckpt_step00000002.shard1of2.safetensors"])
        index = json.loads((sharded / "ckpt_step00000002.index.json").read_text())
        self.assertEqual([(f["first_expert"], f["experts"]) for f in index["files"]], [(0, 4), (4, 4)])
        self.assertEqual(index["files"][1]["tensors"], ["layers.1.moe.w_up", "layers.1.moe.w_down"])
        self.assertEqual(safetensors_shape(sharded / "ckpt_step00000002.shard1of2.safetensors",
                                           "adam_v.layers.1.moe.w_up"), [4, 64, 64])
        as_dp = self.tmp / "as_dp"
        shutil.copytree(sharded, as_dp)
        for out, layout in ((sharded, ep), (as_dp, [])):  # the same P; pure data parallel (experts reassembled)
            with self.subTest(layout=layout):
                resume = stop + layout + ["--resume"]
                p = run(mpirun(ranks) + train_args("micro-moe", self.corpus, out, steps, extra=resume), self.cache)
                self.assertIn("resumed from", p.stdout)
                self.assert_same_curve(losses(out), losses(single))
        # One process reads the 2 shards of the final checkpoint: the same weights as one process trained.
        evals = [run([MOEJIT, "eval", str(ckpt), "--data", str(self.corpus), "--batches", "1", "--backend", "reference",
                      "--threads", "1"], self.cache).stdout
                 for ckpt in (sharded / "ckpt_step00000004.index.json", single / "ckpt_step00000004.safetensors")]
        got, want = (float(re.search(r"val loss ([0-9.]+)", e).group(1)) for e in evals)
        self.assertLessEqual(abs(got - want), LOSS_RTOL * want, evals)

    def test_expert_parallel_not_dividing_experts_is_refused(self):
        p = run(mpirun(2) + train_args("micro-moe", self.corpus, self.tmp / "o", 2, extra=["--expert-parallel", "3"]),
                self.cache, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does not divide the 8 experts", p.stdout + p.stderr)

    def test_tune_splits_the_problems_and_every_rank_ends_with_the_same_cache(self):
        """`moejit tune` under mpirun: 2 ranks share 3 problems (one per token bucket), each with its own
        cache directory (machines without a shared file system): both end holding the 3 decisions, the same."""
        script = 'MOEJIT_CACHE_DIR="$0/rank$OMPI_COMM_WORLD_RANK" exec "$@"'
        tune = [MOEJIT, "tune", "--backend", "host", "--model", "micro-moe", "--tokens", "64,128,256", "--families",
                "route_plan", "--max-candidates", "1", "--repeats", "1", "--warmup", "0"]
        if os.environ.get("MOEJIT_WITH_LLVM", "ON").upper() in ("OFF", "0", "FALSE"):
            self.skipTest("moejit was built without the host backend (MOEJIT_WITH_LLVM=OFF)")
        p = run(mpirun(2) + ["sh", "-c", script, str(self.cache), *tune], self.cache)
        self.assertIn("3 calls split over 2 ranks", p.stdout)
        for rank in (0, 1):  # both measured
            self.assertIn(f"rank {rank}: plan: route_plan", p.stdout)
        held = []
        for rank in (0, 1):
            store = json.loads((self.cache / f"rank{rank}" / "tuning" / "route_plan.json").read_text())
            held.append(sorted((d["problem"]["token_bucket"], d["config"]) for d in store["decisions"]))
        self.assertEqual([bucket for bucket, _ in held[0]], [64, 128, 256])
        self.assertEqual(held[1], held[0])

    def test_ranks_with_different_kernel_decisions_are_refused(self):
        """Two ranks whose tuning caches answer one kernel with different configs stop at the first step
        with an error naming the rank, the kernel and both configs (`moejit train --backend host`, a
        tuning cache per rank; the compiled kernels are shared so they build once)."""
        if os.environ.get("MOEJIT_WITH_LLVM", "ON").upper() in ("OFF", "0", "FALSE"):
            self.skipTest("moejit was built without the host backend (MOEJIT_WITH_LLVM=OFF)")
        (self.cache / "kernels").mkdir(parents=True)
        for rank in (0, 1):
            (self.cache / f"rank{rank}").mkdir()
            (self.cache / f"rank{rank}" / "kernels").symlink_to(self.cache / "kernels")
        # Rank 1 tunes attn_values for its micro-batch (1 sequence of 64 tokens) over 2 candidates;
        # rank 0's cache holds the same decision with another config of the same compiled kernel (other
        # blocks: launch arguments, so the decision's template-hash validator still holds; a config
        # compiled differently would be refused by that validator before any rank compares).
        tune = [MOEJIT, "tune", "--backend", "host", "--model", "micro-dense", "--tokens", str(SEQ), "--families",
                "attention_values", "--max-candidates", "2", "--repeats", "1", "--warmup", "0"]
        run(tune, self.cache / "rank1")
        tuning = self.cache / "rank1" / "tuning"
        store = json.loads((tuning / "attention_values.json").read_text())
        winner = store["decisions"][0]["config"]
        # On the space's grid (kc 128|256, mc 16 mr, nc 16 nr): the winner may be the heuristic's
        # config, whose blocks can lie off the grid, and such a config counts only as the heuristic's.
        params = dict(re.findall(r"([a-z]+)(\d+)", winner))
        kc = "128" if params["kc"] == "256" else "256"
        loser = (f"isa{params['isa']}_mr{params['mr']}_nr{params['nr']}_pack{params['pack']}_kc{kc}"
                 f"_mc{16 * int(params['mr'])}_nc{16 * int(params['nr'])}_threads{params['threads']}")
        self.assertNotEqual(loser, winner)
        decision = store["decisions"][0]
        decision["config"], decision["uri"] = loser, decision["uri"].replace(winner, loser)
        (self.cache / "rank0" / "tuning").mkdir()
        (self.cache / "rank0" / "tuning" / "attention_values.json").write_text(json.dumps(store))
        script = 'MOEJIT_CACHE_DIR="$0/rank$OMPI_COMM_WORLD_RANK" exec "$@"'
        args = train_args("micro-dense", self.corpus, self.tmp / "o", 1, batch=2)
        args[args.index("reference")] = "host"
        p = run(mpirun(2) + ["sh", "-c", script, str(self.cache), *args], self.cache, check=False)
        self.assertNotEqual(p.returncode, 0)
        # The kernel's config as the backend reports it: its shape, then the config.
        self.assertIn(f"rank 1 would run kernel attn_values with config 64x32 {winner}, rank 0 with 64x32 {loser}",
                      p.stdout + p.stderr)
        self.assertIn("every rank must use the same kernel decisions", p.stdout + p.stderr)

    def test_data_parallel_dense_equals_one_process_same_batch(self):
        """Without a router nothing depends on how the batch is split: R ranks = one process, same --batch."""
        steps = 4
        single, dp = self.tmp / "single", self.tmp / "dp"
        run(train_args("micro-dense", self.corpus, single, steps), self.cache)
        run(mpirun(2) + train_args("micro-dense", self.corpus, dp, steps), self.cache)
        self.assert_same_curve(losses(dp), losses(single))

    def test_data_parallel_resumes_with_another_rank_count(self):
        """A checkpoint holds the whole model and the global data position: one process trains 2 steps,
        2 ranks resume to step 4, the same curve as one process throughout (dense: no router)."""
        stop = ["--checkpoint-every", "2"]
        single, mixed = self.tmp / "single", self.tmp / "mixed"
        run(train_args("micro-dense", self.corpus, single, 4, extra=stop), self.cache)
        run(train_args("micro-dense", self.corpus, mixed, 4, extra=stop + ["--stop-after", "2"]), self.cache)
        p = run(mpirun(2) + train_args("micro-dense", self.corpus, mixed, 4, extra=stop + ["--resume"]), self.cache)
        self.assertIn("resumed from", p.stdout)
        self.assert_same_curve(losses(mixed), losses(single))

    def test_error_on_one_rank_ends_the_job_naming_it(self):
        """Rank 1 alone fails (its --data is missing): every rank ends, where rank 0 would otherwise wait
        in its first collective forever, and the message names rank 1."""
        args = train_args("micro-dense", self.corpus, self.tmp / "o", 2)
        # On rank 1 the value after --data becomes a missing file.
        script = ('for a; do shift; if [ "$OMPI_COMM_WORLD_RANK" = 1 ] && [ "$prev" = --data ]; then '
                  'a=/nonexistent/corpus.txt; fi; set -- "$@" "$a"; prev=$a; done; exec "$@"')
        p = run(mpirun(2) + ["sh", "-c", script, "sh", *args], self.cache, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("rank 1 of 2: --data /nonexistent/corpus.txt does not exist", p.stdout + p.stderr)

    def test_batch_not_divisible_by_ranks_is_refused(self):
        p = run(mpirun(2) + train_args("micro-dense", self.corpus, self.tmp / "o", 2, batch=3), self.cache, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not divisible by the 2 processes", p.stdout + p.stderr)

    def test_killed_rank_ends_job_and_last_checkpoint_resumes(self):
        """Kill rank 1 mid-run, data parallel and expert parallel (a shard per rank + an index written
        last): mpirun ends the job naming rank 1; the newest complete checkpoint loads and a resumed
        run continues as an uninterrupted one."""
        for layout in ([], ["--expert-parallel", "2"]):
            with self.subTest(layout=layout):
                self.kill_and_resume(layout, self.tmp / ("ep" if layout else "dp"))

    def kill_and_resume(self, layout, base):
        stop = 16  # the steps both runs end at (the schedule is a long run's: --stop-after)
        long_run = ["--checkpoint-every", "1", "--stop-after", str(stop)] + layout
        killed, whole = base / "killed", base / "whole"
        first = "ckpt_step00000002." + ("index.json" if layout else "safetensors")
        env = dict(os.environ, MOEJIT_CACHE_DIR=str(self.cache))
        job = subprocess.Popen(mpirun(2) + train_args("micro-moe", self.corpus, killed, 400, extra=long_run),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            rank1 = self.wait_for_rank(job.pid, 1, killed / first)
            os.kill(rank1, signal.SIGKILL)
            output, _ = job.communicate(timeout=60)
        finally:
            if job.poll() is None:
                job.kill()
        self.assertNotEqual(job.returncode, 0, output)
        self.assertRegex(output, r"rank 1\b.*(signal 9|Killed)", output)
        pattern = "ckpt_step*.index.json" if layout else "ckpt_step*.safetensors"
        newest = sorted(killed.glob(pattern))[-1]
        self.assertLess(int(newest.name[len("ckpt_step"):][:8]), stop, "the kill came too late to test resuming")
        resumed = run(mpirun(2) + train_args("micro-moe", self.corpus, killed, 400, extra=long_run + ["--resume"]),
                      self.cache)
        self.assertIn("resumed from", resumed.stdout)
        run(mpirun(2) + train_args("micro-moe", self.corpus, whole, 400, extra=long_run), self.cache)
        # The same ranks, reduction and data: the resumed steps repeat the uninterrupted ones bit for bit.
        self.assertEqual(losses(killed), losses(whole))

    def wait_for_rank(self, mpirun_pid, rank, ready, timeout=120):
        """The pid of MPI rank `rank` (a child of mpirun, its environment names its rank) once `ready` exists."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready.exists():
                for child in pathlib.Path(f"/proc/{mpirun_pid}/task/{mpirun_pid}/children").read_text().split():
                    environ = pathlib.Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                    if f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ:
                        return int(child)
            time.sleep(0.05)
        self.fail(f"no rank {rank} process and {ready.name} within {timeout} s")


if __name__ == "__main__":
    if not MPIRUN:
        print("SKIP: mpirun not found (Debian: openmpi-bin); the distributed tests need it")
        sys.exit(SKIP)
    if os.environ.get("MOEJIT_WITH_MPI", "ON").upper() in ("OFF", "0", "FALSE"):
        print("SKIP: moejit was built without MPI (-DMOEJIT_WITH_MPI=OFF)")
        sys.exit(SKIP)
    unittest.main()
