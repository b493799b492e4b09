"""python -m devtools.kube up|down|status RUNDIR"""

from __future__ import annotations

import argparse
import sys

from devtools.kube import ControlPlaneError
from devtools.kube.controlplane import ControlPlane


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m devtools.kube",
        description="local Kubernetes control plane (etcd, "
        "kube-apiserver, kube-controller-manager, kube-scheduler, kwok)",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start it in the background and print how to use it")
    up.add_argument("run_dir")
    up.add_argument("--nodes", type=int, default=3, help="fake nodes (default 3)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to become usable")
    down = sub.add_parser("down", help="stop everything started in RUNDIR")
    down.add_argument("run_dir")
    status = sub.add_parser("status", help="list the running components")
    status.add_argument("run_dir")
    args = ap.parse_args(argv)

    if args.cmd == "up":
        cp = ControlPlane(args.run_dir, nodes=args.nodes)
        try:
            cp.start(timeout=args.timeout)
        except ControlPlaneError as e:
            print(f"cluster-up failed: {e}", file=sys.stderr)
            return 1
        t = cp.timings
        print(
            f"API server   {cp.server} (ready after {t['api_ready']:.1f}s, "
            f"usable with Ready nodes after {t['usable']:.1f}s)"
        )
        print(f"kubeconfig   export KUBECONFIG={cp.kubeconfig}")
        print(f"nodes        {', '.join(cp.node_names)} (kwok)")
        print(f"logs         {cp.log_dir}")
        print(f"stop with    python -m devtools.kube down {cp.run_dir}")
        return 0
    cp = ControlPlane(args.run_dir)
    if args.cmd == "down":
        cp.stop()
        left = cp.running()
        if left:
            print(f"still running: {', '.join(left)}", file=sys.stderr)
            return 1
        print(f"stopped the control plane in {cp.run_dir}")
        return 0
    running = cp.running()
    for name in running:
        print(name)
    return 0 if running else 3


if __name__ == "__main__":
    sys.exit(main())
