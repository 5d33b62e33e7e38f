"""The GenAIDeployment operator process (kopf): ``genai k8s operator``.

The pure logic (spec, CRD, manifests, reconcile) is :mod:`genai.deploy`; this package
observes a cluster, carries plans out (:class:`Operator`) and wires kopf's handlers
(:func:`run_operator`). Needs the ``k8s`` extra (kopf, kubernetes).
"""

from apps.k8s._kopf import build_registry, run_operator
from apps.k8s._kube import KINDS, KubeApi, KubeError
from apps.k8s._operator import OWNED_KINDS, PROJECT_LABEL, Operator, OperatorConfig

__all__ = [
    "KINDS",
    "OWNED_KINDS",
    "PROJECT_LABEL",
    "KubeApi",
    "KubeError",
    "Operator",
    "OperatorConfig",
    "build_registry",
    "run_operator",
]
