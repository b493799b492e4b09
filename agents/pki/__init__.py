"""kairn's PKI: the cluster and clients CAs and the per-pod certificates, in Secrets.

- `issue`: certificate and key issuance, PEM and PKCS#12 encodings (pure).
- `model`: the desired set, Secret names and keys, SANs (docs/wiring.md).
- `plan`: what to issue or renew from the Secrets and a clock (pure); CA replacement steps.
- `apply`: the Secrets' new content; restart marks and `pods_needing_restart` for the roller.
- `store`: Kubernetes, in-memory and directory Secret stores.
- `run`, `cli`: the `kairn-certs` command.
"""

from .apply import pods_needing_restart, renewed_at
from .model import Desired, Secret

__all__ = ["Desired", "Secret", "pods_needing_restart", "renewed_at"]
