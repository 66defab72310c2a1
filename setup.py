"""Build softpool_video: the compiled operator library and the package layout (metadata: pyproject.toml).

The compiled extension ``softpool_video._C`` holds the SoftPool operator:
- the CPU kernels are always built;
- the CUDA kernels are built when a CUDA toolkit and a CUDA build of torch are both present.
  ``SOFTPOOL_CUDA=0`` forces them off, ``SOFTPOOL_CUDA=1`` forces them on (and fails if no toolkit).
  ``TORCH_CUDA_ARCH_LIST`` overrides the default architectures (Turing, Ampere, Ada, Hopper + PTX).

It is compiled against the torch that is installed, so build without isolation:
``pip install --no-build-isolation .`` (or ``-e .``) after installing torch. The build records the
torch version, CUDA version and architectures inside ``_C`` (``softpool_video.ops.extension_info()``);
at import the package refuses a ``_C`` built for another torch and says how to rebuild it.

The Hydra configs live in the repository's ``conf/`` and are installed as ``softpool_video/conf``.
"""

import glob
import importlib.util
import os
import re
import sys
import sysconfig
from pathlib import Path

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
# 7.5: Turing (T4, the common free and cloud inference GPU); without it T4 users get "no kernel image".
DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0+PTX"


def _load_buildinfo():
    """softpool_video/_buildinfo.py, loaded by path: importing the package needs the extension we build."""
    path = os.path.join(ROOT, "softpool_video", "_buildinfo.py")
    spec = importlib.util.spec_from_file_location("_softpool_video_buildinfo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


buildinfo = _load_buildinfo()


def _version() -> str:
    with open(os.path.join(ROOT, "softpool_video", "_version.py")) as handle:
        found = re.search(r'^__version__ = "([^"]+)"$', handle.read(), re.MULTILINE)
    if not found:
        raise SystemExit('softpool_video/_version.py must contain one line: __version__ = "X.Y.Z"')
    return found.group(1)


def _import_torch():
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "softpool_video compiles its extension against the torch you use: install torch first, "
            "then build without isolation: pip install --no-build-isolation ."
        ) from None
    return torch


def _warn_if_isolated(torch) -> None:
    """An isolated build compiles against a throw-away torch that the installed one may not match."""
    torch_dir = os.path.realpath(os.path.dirname(torch.__file__))
    if not torch_dir.startswith(os.path.realpath(sys.prefix) + os.sep):
        print(
            f"softpool_video: WARNING: building against torch {torch.__version__} from {torch_dir}, "
            "which is not this environment's; if that is pip's isolated build environment, the "
            "extension will not match the torch you run. Use pip install --no-build-isolation.",
            file=sys.stderr,
        )


def _cuda_request() -> str:
    mode = os.environ.get("SOFTPOOL_CUDA", "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"SOFTPOOL_CUDA must be 0, 1 or unset, got {mode!r}")
    return mode


# SOFTPOOL_CPU_TARGET: which x86-64 code the CPU vector loops are compiled as. "clones" (the
# default) builds AVX-512, AVX2+FMA and baseline clones and picks one when the library loads; one
# level alone is for CPUs known in advance, and lets the tests run the clones this CPU would not pick.
CPU_TARGETS = {"clones": None, "x86-64-v4": "X86_64_V4", "x86-64-v3": "X86_64_V3", "x86-64": "BASELINE"}


def _cpu_target() -> str:
    target = os.environ.get("SOFTPOOL_CPU_TARGET", "clones").strip().lower() or "clones"
    if target not in CPU_TARGETS:
        raise SystemExit(
            f"SOFTPOOL_CPU_TARGET must be one of {', '.join(CPU_TARGETS)} or unset, got {target!r}"
        )
    return target


def _extensions():
    cuda_home = buildinfo.find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # before torch.utils.cpp_extension reads it
    torch = _import_torch()
    _warn_if_isolated(torch)
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    mode = _cuda_request()
    cuda_possible = cuda_home is not None and torch.version.cuda is not None
    if mode == "1" and not cuda_possible:
        raise SystemExit(
            "SOFTPOOL_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME) "
            f"or torch {torch.__version__} is not a CUDA build"
        )
    with_cuda = mode == "1" or (mode == "auto" and cuda_possible)

    csrc = os.path.join("softpool_video", "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.cpp")) + glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    # -fopenmp: at::parallel_for is an inline OpenMP loop in ATen's headers, so without it the CPU
    # kernels run on one thread. The extension then needs libgomp.so.1, which resolves to the copy
    # torch has already loaded (one OpenMP runtime, and torch.set_num_threads applies).
    # -fno-trapping-math: the vector loops select with ternaries (weight > 0 ? ... : 0); under the
    # default -ftrapping-math GCC may not evaluate both sides unconditionally without AVX-512 masks,
    # so the AVX2 and baseline clones stayed scalar (7x slower on AVX2-only CPUs). It changes no
    # result (NaN/inf semantics are kept; only FP exception flags, which nothing reads, may differ).
    cxx_flags = ["-O3", "-fopenmp", "-fno-trapping-math"]  # torch adds the C++ standard
    link_flags = ["-fopenmp"]
    define_macros = [("TORCH_ASSERT_ONLY_METHOD_OPERATORS", None)]
    cpu_target = _cpu_target()
    if CPU_TARGETS[cpu_target] is not None:
        define_macros.append((f"SOFTPOOL_CPU_TARGET_{CPU_TARGETS[cpu_target]}", None))
    if not with_cuda:
        print("softpool_video: building the CPU extension only")
        extension = CppExtension(
            "softpool_video._C",
            sources,
            include_dirs=[os.path.join(ROOT, csrc)],
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    else:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        print(f"softpool_video: building CPU + CUDA extension for {os.environ['TORCH_CUDA_ARCH_LIST']}")
        sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
        extension = CUDAExtension(
            "softpool_video._C",
            sources,
            include_dirs=[os.path.join(ROOT, csrc)],
            define_macros=define_macros + [("SOFTPOOL_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
            extra_link_args=link_flags,
        )
    extension.build_record = {
        "softpool_video": _version(),
        "torch": str(torch.__version__),
        "torch_cuda": torch.version.cuda,
        "cuda": with_cuda,
        "cuda_request": mode,
        "cuda_toolkit_found": cuda_home is not None,
        "cuda_version": buildinfo.nvcc_version(cuda_home) if with_cuda else None,
        "cuda_archs": buildinfo.parse_arch_list(os.environ["TORCH_CUDA_ARCH_LIST"]) if with_cuda else [],
        "cpu_target": cpu_target,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    return [extension]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    class BuildExtensionWithRecord(BuildExtension):
        """Compiles the build record (softpool_video/_buildinfo.py) into the extension.

        Editable installs compile into build/ like every other build of this checkout, instead of
        setuptools' temporary directory: ninja then recompiles only what changed, whichever of
        ``pip install -e .``, ``pip wheel .`` or ``setup.py build_ext --inplace`` built last.
        """

        def build_extensions(self):
            if getattr(self, "editable_mode", False):
                plat = f"{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
                self.build_temp = os.path.join(ROOT, "build", f"temp.{plat}")
            for extension in self.extensions:
                record = getattr(extension, "build_record", None)
                if record is None:
                    continue
                os.makedirs(self.build_temp, exist_ok=True)
                path = os.path.join(os.path.abspath(self.build_temp), "softpool_build_record.cpp")
                source = buildinfo.record_source(record)
                previous = Path(path).read_text() if os.path.exists(path) else None
                if previous != source:  # rewriting an unchanged record would recompile it
                    Path(path).write_text(source)
                if path not in extension.sources:
                    extension.sources.append(path)
            super().build_extensions()

    return {"build_ext": BuildExtensionWithRecord.with_options(use_ninja=True)}


setup(
    version=_version(),
    # conf/ stays at the repository root (one source) and is installed as softpool_video/conf.
    packages=[*find_packages(include=["softpool_video", "softpool_video.*"]), "softpool_video.conf"],
    package_dir={"softpool_video.conf": "conf"},
    package_data={
        "softpool_video": ["csrc/*.h", "csrc/*/*.h"],
        "softpool_video.conf": ["*.yaml", "*/*.yaml"],
    },
    include_package_data=False,
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
)
