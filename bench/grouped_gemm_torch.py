#!/usr/bin/env python3
"""torch._grouped_mm baseline for bench/grouped_gemm (called by the C++ benchmark).

Reads the cases the C++ benchmark ran (JSON: model, tokens, op, k, n, lens) and prints one JSON
object to stdout: {"torch": version, "available": bool, "why": str, "results": [{model, tokens,
op, tflops}]}. Same maths as moejit's ops, bf16 in/out, fp32 accumulate:
  fwd       (rows, K) x (E, K, N)            -> (rows, N)
  up_swiglu (rows, K) x (E, K, 2N)           -> (rows, 2N) (+ the SwiGLU as a separate op)
  dgrad     (rows, N) x (E, N, K) (W^T view) -> (rows, K)
  wgrad     (K, rows) (X^T view) x (rows, N) -> (E, K, N)
"""
import json
import sys


def main() -> int:
    cases = json.load(open(sys.argv[1]))
    out = {"available": False, "why": "", "torch": None, "results": []}
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no baseline"
        out["why"] = f"torch not importable: {e}"
        print(json.dumps(out))
        return 0
    out["torch"] = torch.__version__
    if not torch.cuda.is_available() or not hasattr(torch, "_grouped_mm"):
        out["why"] = "no CUDA device or no torch._grouped_mm"
        print(json.dumps(out))
        return 0
    out["available"] = True
    dev = "cuda"
    # L2 flush before each timed call, as the C++ benchmark does.
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 64 << 20)
    flush = torch.empty(2 * max(l2, 8 << 20), dtype=torch.uint8, device=dev)
    for c in cases:
        k, n, lens, op = c["k"], c["n"], c["lens"], c["op"]
        rows, e = sum(lens), len(lens)
        offs = torch.tensor(lens, device=dev, dtype=torch.int32).cumsum(0).to(torch.int32)
        x = torch.randn(rows, k, device=dev, dtype=torch.bfloat16)
        width = 2 * n if op == "up_swiglu" else n
        w = torch.randn(e, k, width, device=dev, dtype=torch.bfloat16)
        dy = torch.randn(rows, n, device=dev, dtype=torch.bfloat16)
        if op in ("fwd", "up_swiglu"):
            def fn():
                y = torch._grouped_mm(x, w, offs=offs)
                if op == "up_swiglu":
                    g, u = y.split(n, dim=-1)
                    return torch.nn.functional.silu(g) * u
                return y
        elif op == "dgrad":
            wt = w.transpose(-2, -1)
            def fn():
                return torch._grouped_mm(dy, wt, offs=offs)
        else:
            xt = x.t()
            def fn():
                return torch._grouped_mm(xt, dy, offs=offs)
        try:
            fn()
            torch.cuda.synchronize()
            times = []
            for i in range(7):
                flush.fill_(i)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            ms = sorted(times)[len(times) // 2]
            flops = 2.0 * rows * k * width
            out["results"].append({"model": c["model"], "tokens": c["tokens"], "op": op, "tflops": flops / ms / 1e9})
        except Exception as ex:  # noqa: BLE001 - record per-case failures, keep going
            out["results"].append({"model": c["model"], "tokens": c["tokens"], "op": op, "error": str(ex)[:200]})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
