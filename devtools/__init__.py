"""Test support for kairn, not shipped: the local cluster harness, the local Kubernetes
control plane with its process-backed nodes, and `make up`."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout
TOOLS = ROOT / ".tools"  # what `make setup` installs
