"""Driving the moejit CLI from experiment scripts: run a verb (logged), read its JSON, its checkpoints'
metadata and its metrics.jsonl. The CLI's formats are in docs/cli.md, docs/models.md, docs/training.md."""
import json
import math
import os
import pathlib
import re
import resource
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time


class Moejit:
    def __init__(self, binary):
        self.binary = pathlib.Path(binary)
        if not self.binary.is_file():
            sys.exit(f"moejit binary not found at {self.binary}: build it (ninja -C build moejit) or pass --moejit")

    def command_line(self, args):
        return shlex.join([str(self.binary)] + [str(x) for x in args])

    def run(self, args, log=None, sample_threads=False):
        """Runs `moejit ARGS`; its output is appended to `log` (if given) and returned with the wall time,
        the CPU time and (sample_threads) the CPU time of its busiest thread. A failure exits naming
        the command, the log and the output's tail."""
        start, cpu, busiest = time.monotonic(), child_cpu_seconds(), 0.0
        with tempfile.TemporaryFile("w+") as out:
            p = subprocess.Popen([str(self.binary)] + [str(x) for x in args], stdout=out, stderr=subprocess.STDOUT,
                                 text=True)
            while sample_threads and p.poll() is None:
                busiest = max(busiest, busiest_thread_cpu_seconds(p.pid))
                time.sleep(0.05)
            p.wait()
            out.seek(0)
            text = out.read()
        seconds, cpu = time.monotonic() - start, child_cpu_seconds() - cpu
        if log is not None:
            with open(log, "a") as f:
                f.write(f"$ {self.command_line(args)}\n{text}")
        if p.returncode != 0:
            tail = "\n".join(text.splitlines()[-15:])
            sys.exit(f"moejit failed (exit {p.returncode}): {self.command_line(args)}\n"
                     f"{'log: ' + str(log) if log else ''}\n{tail}")
        return Completed(text, seconds, cpu, busiest)

    def json(self, args):
        return json.loads(self.run(args + ["--json"] if "--json" not in args else args).text)


class Completed:
    def __init__(self, text, seconds, cpu_seconds, busiest_thread_seconds=0.0):
        self.text, self.seconds, self.cpu_seconds = text, seconds, cpu_seconds
        self.busiest_thread_seconds = busiest_thread_seconds


def child_cpu_seconds():
    """User + system CPU time of the finished child processes: on a shared machine a run's CPU time
    still measures its work, where its wall time also counts the other jobs."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def busiest_thread_cpu_seconds(pid):
    """The largest user + system CPU time of one thread of process `pid` (/proc/PID/task/TID/stat fields
    14 and 15, in clock ticks). On an unloaded machine a step takes about its busiest thread's time:
    the work only one thread does plus its share of the parallel loops."""
    best = 0
    for stat in pathlib.Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread (or the process) ended meanwhile
        best = max(best, int(fields[11]) + int(fields[12]))
    return best / os.sysconf("SC_CLK_TCK")


def checkpoints(run_dir):
    """The run's checkpoints, oldest first (names carry the zero-padded step)."""
    return sorted(pathlib.Path(run_dir).glob("ckpt_step*.safetensors"))


def checkpoint_metadata(path):
    """A safetensors file's __metadata__: an 8-byte little-endian header length, then the JSON header."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))["__metadata__"]


EVAL_LINE = re.compile(r"val loss (\S+) nats, (\S+) bits/(byte|token)")


def parse_eval(completed):
    """`moejit eval`'s result line: val loss (nats per token) and bits per byte (or token)."""
    m = EVAL_LINE.search(completed.text)
    if not m:
        sys.exit(f"could not read the result of moejit eval from its output:\n{completed.text}")
    return {"loss": float(m.group(1)), "bits": float(m.group(2)), "seconds": completed.seconds}


def read_metrics(path, tokens_per_step):
    """metrics.jsonl of one run, resumed or not: a resumed run logs again the steps after its checkpoint,
    so the last record of each step wins. Returns the step and eval records in step order, each step's
    seconds (from its tokens/s), their sum and median, and the MoE kernels' tuning summary."""
    steps, evals, tuning = {}, {}, ""
    for line in pathlib.Path(path).read_text().splitlines():
        r = json.loads(line)
        if "tokens_per_s" in r:
            steps[r["step"]] = r
        elif "val_loss" in r:
            evals[r["step"]] = r
        elif "tuning" in r:
            tuning = r["tuning"]
    steps = [steps[k] for k in sorted(steps)]
    evals = [evals[k] for k in sorted(evals)]
    seconds = [tokens_per_step / r["tokens_per_s"] for r in steps]
    return {"steps": steps, "evals": evals, "tuning": tuning, "seconds": seconds, "train_seconds": sum(seconds),
            "step_seconds": statistics.median(seconds) if seconds else math.nan}


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def ignore_in_git(folder):
    """Checkpoints and logs are large and machine-specific: a .gitignore keeps them out of commits."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("*\n")
