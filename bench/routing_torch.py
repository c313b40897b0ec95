#!/usr/bin/env python3
"""Routing steps composed from PyTorch ops: the baseline routing_bench's kernels are compared with.

Same shape and byte accounting as bench/routing_bench.cpp (default 16384 tokens x d_model 2048 x
top-8, E 128, bf16): gating (softmax + topk + renormalise), plan (stable sort + bincount + cumsum),
permute / combine forward and backward, each also as a fraction of a device-to-device copy of the
permuted tensor measured in the same run. Writes $MOEJIT_BENCH_OUT/routing_torch.json if set.
  python3 bench/routing_torch.py [--tokens N] [--d-model D] [--top-k K] [--experts E]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--experts", type=int, default=128)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("skipped: no PyTorch")
        return 0
    if not torch.cuda.is_available():
        print("skipped: no GPU")
        return 0

    T, D, K, E = args.tokens, args.d_model, args.top_k, args.experts
    dev = torch.device("cuda")
    torch.manual_seed(0)
    logits = torch.randn(T, E, device=dev, dtype=torch.float32)
    x = torch.randn(T, D, device=dev, dtype=torch.bfloat16)
    y = torch.randn(T * K, D, device=dev, dtype=torch.bfloat16)
    d_out = torch.randn(T, D, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(y)

    def timed(fn, reps=15):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        times.sort()
        return times[len(times) // 2]

    def gate():
        probs = torch.softmax(logits, dim=-1)
        w, idx = torch.topk(probs, K, dim=-1)
        return w / w.sum(-1, keepdim=True), idx

    weight, index = gate()

    def plan():
        flat = index.reshape(-1)
        order = torch.sort(flat, stable=True).indices
        counts = torch.bincount(flat, minlength=E)
        offsets = torch.cumsum(counts, 0)
        slot = torch.empty_like(order)
        slot[order] = torch.arange(order.numel(), device=dev)
        return order, slot, offsets

    order, slot, _ = plan()
    row_token = order // K

    def permute_fwd():
        return x.index_select(0, row_token)

    def combine_fwd():
        g = y.index_select(0, slot).view(T, K, D)
        return torch.bmm(weight.to(torch.bfloat16).unsqueeze(1), g).squeeze(1)

    def permute_bwd():
        return y.index_select(0, slot).view(T, K, D).float().sum(1).to(torch.bfloat16)

    def combine_bwd():
        g = y.index_select(0, slot).view(T, K, D)
        d_weight = torch.bmm(g, d_out.unsqueeze(2)).squeeze(2).float()
        dst.index_copy_(0, slot, (d_out.unsqueeze(1) * weight.to(torch.bfloat16).unsqueeze(2)).view(T * K, D))
        return d_weight

    row = D * 2
    copy_bytes = T * K * row
    copy_ms = timed(lambda: dst.copy_(y))
    copy_bw = 2 * copy_bytes / copy_ms
    steps = [
        ("gate fwd (softmax, topk, renorm)", gate, T * (E * 4 + K * 8)),
        ("plan (sort, bincount, cumsum)", plan, 0),
        ("permute fwd", permute_fwd, T * row + T * K * row),
        ("combine fwd", combine_fwd, T * K * row + T * row),
        ("permute bwd", permute_bwd, T * K * row + T * row),
        ("combine bwd (d_y + d_weight)", combine_bwd, T * row + 2 * T * K * row),
    ]
    name = torch.cuda.get_device_name()
    print(f"device: {name}  torch {torch.__version__}  (T={T}, d_model={D}, top-{K}, E={E}, bf16)")
    print("| step (PyTorch ops) | ms | fraction of d2d copy | Mtokens/s |\n|---|---|---|---|")
    print(f"| d2d copy (baseline) | {copy_ms:.4f} | 1.00 | |")
    rows = []
    for label, fn, nbytes in steps:
        ms = timed(fn)
        frac = (nbytes / ms) / copy_bw if nbytes else 0.0
        rows.append({"step": label, "ms": ms, "bytes": nbytes, "copy_fraction": frac, "tokens_per_s": T / (ms * 1e-3)})
        print(f"| {label} | {ms:.4f} | {frac:.2f} | {T / (ms * 1e-3) * 1e-6:.1f} |")

    out_dir = os.environ.get("MOEJIT_BENCH_OUT")
    if out_dir:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = "unknown"
        result = {"benchmark": "routing_torch", "device": name, "torch": torch.__version__,
                  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "commit": commit or "unknown", "shape": {"tokens": T, "d_model": D, "top_k": K, "experts": E},
                  "copy_ms": copy_ms, "rows": rows}
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(out_dir, "routing_torch.json.tmp")
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, os.path.join(out_dir, "routing_torch.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
