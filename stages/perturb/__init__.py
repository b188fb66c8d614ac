"""The perturb stage (POVID): hallucinations injected into the ground truth, answers on distorted images.

See :mod:`stages.perturb.stage` for the shard logic, :mod:`stages.perturb.injectors` for the rule
injectors and :mod:`stages.perturb.distortions` for the image distortion registry.
"""

from stages.perturb.config import DistortionConfig, HallucinationConfig, HallucinationMode, PerturbConfig
from stages.perturb.distortions import DISTORTIONS, DistortionName, DistortionSpec, apply_distortion
from stages.perturb.gallery import make_gallery, write_gallery
from stages.perturb.injectors import INJECTORS, InjectorKind
from stages.perturb.rows import hallucination_cand_id
from stages.perturb.stage import SPEC, run_shard, setup

__all__ = [
    "SPEC",
    "PerturbConfig",
    "HallucinationConfig",
    "HallucinationMode",
    "DistortionConfig",
    "DistortionSpec",
    "DistortionName",
    "DISTORTIONS",
    "InjectorKind",
    "INJECTORS",
    "apply_distortion",
    "run_shard",
    "setup",
    "hallucination_cand_id",
    "write_gallery",
    "make_gallery",
]
