#!/usr/bin/env python3
"""Fails on an upward dependency between moejit's layers.

Two levels are checked:
  targets:  the CMake link graph (`cmake --graphviz`): a library may link only libraries of a
            strictly lower rank; only moejit_jit links the compilers (NVRTC, LLVM, Clang).
  includes: every quoted #include of a file in a layer's folder must resolve inside its own layer or
            a lower one (templates/: jit only through its public include/). This also covers what
            CMake cannot see: the kernel templates that the JIT compiles at run time, and include
            paths added by hand.
Layers of the same rank are independent of each other, so the graph is acyclic by construction.
tests/ and bench/ sit above everything and are not checked.

  check_layers.py --root DIR --graph FILE.dot   check the tree and the graph
  check_layers.py --graph FILE.dot --mermaid    print the layer graph (for docs/architecture.md)
  check_layers.py --self-test                   check the checker on planted violations
"""
import argparse
import os
import re
import sys
import tempfile

# (rank, folder, CMake target, include roots relative to the repository root)
LAYERS = [
    (0, "base", "moejit_base", ["base", "base/include"]),
    (1, "jit", "moejit_jit", ["jit", "include"]),
    (1, "models", "moejit_models", ["models"]),
    (2, "templates", "moejit_templates", ["templates"]),
    (2, "tuning_cache", "moejit_tuning_cache", ["tuning_cache", "tuning_cache/include"]),
    (3, "autotune", "moejit_autotune", ["autotune"]),
    (4, "runtime", "moejit_runtime", ["runtime"]),
    (4, "api", "moejit_api", ["api", "api/include"]),
    (5, "apps", "moejit", ["apps"]),
]
# Folders whose files belong to a layer other than their name says: jit's public headers.
FOLDER_LAYER = {"include": "jit"}
# Layers that may use a lower layer only through its public include root: the templates see the
# JIT as any user does (their launchers must not reach into jit/'s internals, e.g. the driver table).
PUBLIC_ONLY = {"templates": {"jit": "include"}}
# Third-party toolchains only the JIT may link (models must not pull NVRTC in to read a file).
COMPILERS = {"CUDA::nvrtc", "LLVM", "clang-cpp"}
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cuh", ".cu")

RANK = {name: rank for rank, name, _, _ in LAYERS}
TARGET_LAYER = {target: name for _, name, target, _ in LAYERS}
ROOTS = {name: roots for _, name, _, roots in LAYERS}


def allowed(user, used):
    """May layer `user` depend on layer `used`?"""
    return user == used or RANK[used] < RANK[user]


def graph_edges(dot_text):
    """(from, to) for every edge of a `cmake --graphviz` file (its `// a -> b` comments)."""
    return re.findall(r"//\s*(\S+)\s*->\s*(\S+)\s*$", dot_text, re.MULTILINE)


def check_graph(dot_text):
    problems = []
    for a, b in graph_edges(dot_text):
        if a in TARGET_LAYER and b in TARGET_LAYER and not allowed(TARGET_LAYER[a], TARGET_LAYER[b]):
            problems.append(f"target {a} ({TARGET_LAYER[a]}) links {b} ({TARGET_LAYER[b]}): upward or sideways")
        if a in TARGET_LAYER and b in COMPILERS and a != "moejit_jit":
            problems.append(f"target {a} links {b} directly: only moejit_jit links the compilers")
    return problems


def layer_of_path(rel):
    top = rel.split("/", 1)[0]
    top = FOLDER_LAYER.get(top, top)
    return top if top in RANK else None


def quoted_includes(text):
    return re.findall(r'^\s*#\s*include\s*"([^"]+)"', text, re.MULTILINE)


def check_includes(root):
    problems = []
    for _, name, _, _ in LAYERS:
        folders = [f for f, layer in FOLDER_LAYER.items() if layer == name] + [name]
        for folder in folders:
            for dirpath, _, files in os.walk(os.path.join(root, folder)):
                for file in sorted(files):
                    if file.endswith(SOURCE_SUFFIXES):
                        problems += check_file(root, os.path.join(dirpath, file), name)
    return problems


def resolve(root, path, name):
    """{(layer, include root)} of the files `#include "name"` in `path` may mean."""
    here = os.path.relpath(os.path.dirname(path), root)
    if os.path.isfile(os.path.join(root, here, name)):
        return {(layer_of_path(os.path.join(here, name)), here.split("/", 1)[0])}
    return {(owner, r) for owner, roots in ROOTS.items() for r in roots if os.path.isfile(os.path.join(root, r, name))}


def check_file(root, path, layer):
    problems = []
    with open(path, encoding="utf-8", errors="replace") as f:
        includes = quoted_includes(f.read())
    rel = os.path.relpath(path, root)
    for name in includes:
        found = {(owner, r) for owner, r in resolve(root, path, name) if owner}
        if not found:
            continue  # not ours (a toolkit or third-party header)
        legal = [(owner, r) for owner, r in found if allowed(layer, owner)]
        public = [(owner, r) for owner, r in legal if PUBLIC_ONLY.get(layer, {}).get(owner, r) == r]
        if not legal:
            owners = ", ".join(sorted({owner for owner, _ in found}))
            problems.append(f"{rel} ({layer}) includes \"{name}\" from {owners}")
        elif not public:
            owner, r = legal[0]
            problems.append(f"{rel} ({layer}) includes \"{name}\" from {r}/, internal to {owner}: "
                            f"use its public headers ({PUBLIC_ONLY[layer][owner]}/)")
    return problems


def mermaid(dot_text):
    lines = ["flowchart BT"]
    for rank in sorted({r for r, _, _, _ in LAYERS}):
        lines.append(f"  %% rank {rank}: " + ", ".join(n for r, n, _, _ in LAYERS if r == rank))
    edges = sorted({(TARGET_LAYER[a], TARGET_LAYER[b]) for a, b in graph_edges(dot_text)
                    if a in TARGET_LAYER and b in TARGET_LAYER})
    lines += [f"  {a} --> {b}" for a, b in edges]
    compilers = sorted({(TARGET_LAYER[a], b) for a, b in graph_edges(dot_text) if a in TARGET_LAYER and b in COMPILERS})
    lines += [f"  {a} -.-> {b.replace('::', '_').replace('-', '_')}([{b}])" for a, b in compilers]
    return "\n".join(lines)


def self_test():
    """The checker must catch planted violations and pass their legal twins."""
    failures = []
    graph = "\n".join(["// moejit_jit -> moejit_base", "// moejit_base -> moejit_jit",
                       "// moejit_models -> CUDA::nvrtc", "// moejit_jit -> CUDA::nvrtc",
                       "// moejit_runtime -> moejit_autotune", "// moejit_templates -> moejit_tuning_cache"])
    flagged = sorted(p.split(" ")[1] for p in check_graph(graph))
    if flagged != ["moejit_base", "moejit_models", "moejit_templates"]:
        failures.append(f"graph: flagged {flagged}, want moejit_base, moejit_models, moejit_templates")
    with tempfile.TemporaryDirectory() as root:
        files = {
            "base/files.hpp": "",
            "base/include/moejit/abi/host_launch.h": "",
            "base/log.cpp": '#include "files.hpp"\n#include "moejit/abi/host_launch.h"\n',
            "base/bad.cpp": '#include "host_backend.hpp"\n',           # base -> jit
            "jit/host_backend.hpp": '#include "moejit/abi/host_launch.h"\n',
            "jit/bad.cpp": '#include "host/gemm_tile.h"\n',            # jit -> templates
            "templates/host/gemm_tile.h": '#include "moejit/abi/host_launch.h"\n#include <vector>\n',
            "templates/host/bad.h": '  #  include "autotuner.hpp"\n',  # templates -> autotune
            "templates/gemm/launch.cpp": '#include "cuda_driver.hpp"\n#include "moejit/backend.hpp"\n',  # jit internal
            "jit/cuda_driver.hpp": "",
            "autotune/autotuner.hpp": '#include "host/gemm_tile.h"\n#include "nowhere.h"\n',
            "include/moejit/backend.hpp": '#include "moejit/abi/host_launch.h"\n',
            "include/moejit/bad.hpp": '#include "model.hpp"\n',         # jit (public header) -> runtime
            "runtime/model.hpp": '#include "backend_util.hpp"\n',
            "runtime/backend_util.hpp": "",
        }
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        got = check_includes(root)
        bad = sorted(p.split(" ")[0] for p in got)
        want = ["base/bad.cpp", "include/moejit/bad.hpp", "jit/bad.cpp", "templates/gemm/launch.cpp",
                "templates/host/bad.h"]
        if bad != want:
            failures.append(f"includes: flagged {bad}, want {want}")
    for f in failures:
        print("check_layers self-test FAILED:", f, file=sys.stderr)
    if not failures:
        print("check_layers self-test: planted violations caught (3 targets, 5 includes), legal ones passed")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="repository root")
    parser.add_argument("--graph", help="a `cmake --graphviz` file of the tree")
    parser.add_argument("--mermaid", action="store_true", help="print the layer graph as mermaid")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    dot_text = open(args.graph).read() if args.graph else ""
    if args.mermaid:
        print(mermaid(dot_text))
        return 0
    problems = check_graph(dot_text) + (check_includes(args.root) if args.root else [])
    for p in problems:
        print("layer violation:", p, file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} upward dependencies (layers, lowest first: "
              + ", ".join(f"{r}:{n}" for r, n, _, _ in LAYERS) + "; see docs/architecture.md)", file=sys.stderr)
        return 1
    print(f"check_layers: {len(graph_edges(dot_text))} target edges and the includes of "
          + ", ".join(n for _, n, _, _ in LAYERS) + " go downward only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
