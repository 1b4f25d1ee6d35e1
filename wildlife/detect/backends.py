"""The runtimes a detector runs on: a backend takes a float (batch, 3, height, width) array and returns the
model's raw output as a numpy array; ``device`` says where it runs ("cpu" or "cuda").

Which runtime an ONNX model gets (``runtime_for``), measured on a 2-core AVX-512 CPU (bench/detect.py):

- fp32 on a CPU: OpenVINO when it is installed. On MDv5's architecture at 1280x960, one photo on both cores
  (a quiet moment of a shared machine): 2.9-3.0 s against 3.1-3.3 s for onnxruntime and 3.3 s for
  channels-last torch (eager NCHW torch, MegaDetector's own loop: 3.6 s); two photos at once, one per core
  (``OpenVinoBackend``), did better still. Its precision is pinned to f32: on a CPU with bf16 instructions
  OpenVINO's default (``INFERENCE_PRECISION_HINT``) is bf16, which would silently change the boxes.
- bf16 (a model made by ``models quantize --precision bf16``): OpenVINO with bf16 convolutions, 1.5 s a photo
  for the same model; only on a CPU with bf16 instructions (``bf16_supported``), refused elsewhere.
- int8 (``models quantize``), on a GPU, or without OpenVINO: onnxruntime. (OpenVINO ran the int8 QDQ model
  no faster, 0.13 against 0.14 s a photo for YOLOv5s at 640, and with other rounding: its agreement report
  was measured on onnxruntime.)
``ODIN_ONNX_RUNTIME=onnxruntime|openvino`` overrides the choice for fp32 and int8 (to compare, or to work
around a runtime's bug); bf16 always needs OpenVINO.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from wildlife.detect import DetectorUnavailable

PRECISIONS = ("fp32", "bf16", "int8")
RUNTIMES = ("onnxruntime", "openvino")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bf16 (Intel Cooper Lake+, AMD Zen 4+)


def threads() -> int:
    """Inference threads: one per core this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((v for k, _, v in (ln.partition(":") for ln in text.splitlines()) if k.strip() == "flags"), "")
    return set(line.split())


def bf16_supported() -> bool:
    """Whether this CPU computes in bf16 natively (the seam the tests replace to play a CPU without it)."""
    return bool(cpu_flags() & set(BF16_FLAGS))


def require_bf16(name: str) -> None:
    """Raise ``DetectorUnavailable`` unless a bf16 model can run here: a bf16 CPU and OpenVINO."""
    if not bf16_supported():
        raise DetectorUnavailable(
            f"{name}: bf16 mode needs a CPU with bf16 instructions ({' or '.join(BF16_FLAGS)}), and this one has "
            "none; emulating them would be slower than fp32.",
            hint="Use the fp32 model (the .onnx `models fetch` or `models export` wrote), or an int8 model from "
                 "`scripts/run.py models quantize`.")
    if not _has("openvino"):
        raise DetectorUnavailable(f"{name}: bf16 mode runs on OpenVINO, which is not installed here",
                                  hint="pip install '.[detect]' (it includes openvino), or use the fp32 model.")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    if not _has("onnxruntime"):
        return False
    import onnxruntime as ort  # noqa: PLC0415

    return "CUDAExecutionProvider" in ort.get_available_providers()


def runtime_for(precision: str, openvino: bool, cuda: bool, override: str | None = None) -> str:
    """Which runtime runs an ONNX model of ``precision`` given what is installed (see the module docstring)."""
    if precision not in PRECISIONS:
        raise DetectorUnavailable(f"unknown model precision {precision!r}; known: {', '.join(PRECISIONS)}",
                                  hint="Check the `precision` in the model's .json sidecar.")
    if precision == "bf16":
        return "openvino"
    if override:
        if override not in RUNTIMES:
            raise DetectorUnavailable(f"ODIN_ONNX_RUNTIME={override!r}: choose {' or '.join(RUNTIMES)}")
        if override == "openvino" and not openvino:
            raise DetectorUnavailable("ODIN_ONNX_RUNTIME=openvino, but OpenVINO is not installed",
                                      hint="pip install '.[detect]', or unset ODIN_ONNX_RUNTIME.")
        return override
    return "openvino" if precision == "fp32" and openvino and not cuda else "onnxruntime"


def open_onnx(path: Path, precision: str = "fp32"):
    """The backend for an ONNX model of ``precision`` (its sidecar's), chosen by ``runtime_for``."""
    if precision == "bf16":
        require_bf16(path.name)
    runtime = runtime_for(precision, _has("openvino"), _cuda(), os.environ.get("ODIN_ONNX_RUNTIME") or None)
    return OpenVinoBackend(path, precision) if runtime == "openvino" else OnnxBackend(path)


def _check_input(inputs: list[tuple[str, list]]) -> tuple[int, int] | None:
    """The fixed (height, width) of a model's one image input, None when dynamic; ValueError unless it takes
    one input of (batch, 3, height, width)."""
    shape = inputs[0][1] if len(inputs) == 1 else []
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ValueError(f"the model takes {inputs}; the engine feeds one input of (batch, 3, height, width)")
    fixed = shape[2:]  # a model exported with a fixed size takes only that size
    return tuple(fixed) if all(isinstance(d, int) and d > 0 for d in fixed) else None


def onnx_session(path: Path):
    """An onnxruntime session on CUDA where present, else the CPU with every core; and its device name.
    The one place Stage 1's ONNX models (the detector, the species classifier) get their providers."""
    import onnxruntime as ort  # noqa: PLC0415

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    session = ort.InferenceSession(str(path), options, providers=providers)
    return session, "cuda" if providers[0].startswith("CUDA") else "cpu"


class OnnxBackend:
    runtime = "onnxruntime"

    def __init__(self, path: Path):
        self.session, self.device = onnx_session(path)
        inputs = self.session.get_inputs()
        self.fixed_size = _check_input([(i.name, i.shape) for i in inputs])
        self.input = inputs[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


class OpenVinoBackend:
    """An ONNX model on OpenVINO's CPU runtime, in fp32 or bf16 as asked (never its own default).

    Throughput mode: OpenVINO splits the cores into streams (2 of 1 thread on 2 cores) and the engine hands it
    ``photos_at_once`` photos, one per stream, run at once. Measured on MDv5 (2 cores, busy machine, 3
    alternating rounds): 1.79x eager torch against 1.37x for one photo on both threads (latency mode)."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, path: Path, precision: str = "fp32"):
        import onnx  # noqa: PLC0415
        import openvino as ov  # noqa: PLC0415

        # a file that is not ONNX fails here, in Python; OpenVINO's reader would first print its bytes to stderr
        onnx.load(str(path), load_external_data=False)
        core = ov.Core()
        model = core.read_model(str(path))
        inputs = [(i.get_any_name(), [d.get_length() if d.is_static else None for d in i.get_partial_shape()])
                  for i in model.inputs]
        self.fixed_size = _check_input(inputs)
        self.precision = precision
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                  "PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": threads()}
        self.compiled = core.compile_model(model, "CPU", config)
        at_once = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.requests = [self.compiled.create_infer_request() for _ in range(at_once)]
        self.photos_at_once = at_once  # the engine's batch size on this backend

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(batch), len(self.requests)):
            running = list(zip(self.requests, batch[start:start + len(self.requests)], strict=False))
            try:
                for request, photo in running:
                    request.start_async({0: photo[None]}, share_inputs=True)
                for request, _ in running:
                    request.wait()
            except RuntimeError as exc:  # OpenVINO's message is C++ locations, then the reason on its last line
                for request, _ in running:
                    request.cancel()
                reason = [line for line in str(exc).splitlines() if line.strip()]
                raise ValueError(reason[-1] if reason else "OpenVINO failed") from exc
            # a copy: the request's output memory is overwritten by its next inference
            out += [request.get_output_tensor(0).data.copy() for request, _ in running]
        return np.concatenate(out)


class TorchBackend:
    runtime = "torch"

    def __init__(self, model, half: bool | None = None):
        import torch  # noqa: PLC0415

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.half = self.device == "cuda" if half is None else half
        self.model = model.fuse().eval().to(self.device)
        if self.half:
            self.model = self.model.half()
        elif self.device == "cpu":  # measured: channels-last convolutions are ~1.1-1.5x faster on CPU
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            x = x.half() if self.half else x.contiguous(memory_format=torch.channels_last)
            return self.model(x).float().cpu().numpy()
