"""SpeciesNet: the release converted to ONNX without running its pickle, exactly; hostile files refused."""

from __future__ import annotations

import contextlib
import io
import json
import operator
import os
import sys
import tarfile
import types
import zipfile

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import odin
from torch import nn

from wildlife.classify import Label, effnetv2, runtime, safeload, sidecar, speciesnet
from wildlife.classify.effnetv2 import EfficientNetV2
from wildlife.detect import weights
from wildlife.errors import InputError

LABELS = [
    "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
    "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle",
    "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human",
    "ac0e8ba7-7261-4d17-8645-11ed3d02165a;mammalia;carnivora;canidae;vulpes;vulpes;red fox",
    "317171d7-d306-4e71-9a4a-33e62012076b;mammalia;cetartiodactyla;cervidae;capreolus;capreolus;european roe deer",
    "d372cda5-a8ca-4b7b-97ed-4e4fab9c9b4b;mammalia;cetartiodactyla;suidae;sus;scrofa;wild boar",
    "f2d233e3-80e3-433d-9687-e29ecc7a467a;mammalia;;;;;mammal",
]
WIDTH, DEPTH = 0.25, 0.2  # the M structure (every stage, SE, fused blocks) with tiny weights


def tiny_model(seed: int = 0) -> EfficientNetV2:
    torch.manual_seed(seed)
    model = EfficientNetV2(len(LABELS), width=WIDTH, depth=DEPTH).eval()
    with torch.no_grad():  # biases away from zero, so a dropped or misplaced bias shows in the outputs
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.1)
    return model


O2T = "onnx2torch.node_converters.binary_math_operations"


class OnnxBinaryMathOperation(nn.Module):
    """Stands for onnx2torch's module of that name: it keeps the torch function it calls (``torch.add``)."""

    def __init__(self, fn):
        super().__init__()
        self.math_op_function = fn

    def forward(self, a, b):
        return self.math_op_function(a, b)


OnnxBinaryMathOperation.__module__ = O2T


@contextlib.contextmanager
def onnx2torch_importable():
    """While saving, the stand-in class is importable under onnx2torch's name, so the pickle names it so."""
    names = ["onnx2torch", "onnx2torch.node_converters", O2T]
    fakes = {n: types.ModuleType(n) for n in names}
    fakes[O2T].OnnxBinaryMathOperation = OnnxBinaryMathOperation
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def save(gm: torch.fx.GraphModule, path):
    with onnx2torch_importable():
        torch.save(gm, path)
    return path


def onnx2torch_like(model: EfficientNetV2, unfold_every: int = 3, torch_padding: bool = False) -> torch.fx.GraphModule:
    """``model`` as SpeciesNet's release holds it: a flat torch.fx GraphModule as onnx2torch builds from a tf2onnx
    export: submodules named after ONNX nodes, the dense layer as MatMul + Add on ``initializers`` buffers, and
    (as a Keras graph would be without tf2onnx's fusion) some convolutions followed by a BatchNorm2d, and the
    residual additions as onnx2torch's OnnxBinaryMathOperation holding ``torch.add``."""
    rescale, model.rescale = model.rescale, None
    traced = torch.fx.symbolic_trace(model)
    model.rescale = rescale
    graph, env, root = torch.fx.Graph(), {}, {}
    convs = 0
    for node in traced.graph.nodes:
        if node.op == "placeholder" and rescale:  # Keras' Rescaling: Mul and Add on two scalar initializers
            root["initializers.onnx_initializer_2"] = torch.tensor(rescale[0])
            root["initializers.onnx_initializer_3"] = torch.tensor(rescale[1])
            scale = graph.get_attr("initializers.onnx_initializer_2")
            x = graph.call_function(torch.mul, (graph.node_copy(node), scale))
            env[node.name] = graph.call_function(torch.add, (x, graph.get_attr("initializers.onnx_initializer_3")))
            continue
        if node.op == "call_function" and node.target is operator.add and all(
                isinstance(a, torch.fx.Node) for a in node.args):  # a residual: onnx2torch's Add module
            name = f"model/add_{len(root)}"
            root[name] = OnnxBinaryMathOperation(torch.add)
            env[node.name] = graph.call_module(name, tuple(env[a.name] for a in node.args))
            continue
        if node.op != "call_module":
            env[node.name] = graph.node_copy(node, lambda n: env[n.name])
            continue
        mod = traced.get_submodule(node.target)
        name = "model/" + node.target.replace(".", "/")
        x = env[node.args[0].name]
        if torch_padding and isinstance(mod, nn.ZeroPad2d):  # PyTorch's symmetric padding instead of TF's "same"
            env[node.name] = x
            continue
        if torch_padding and isinstance(mod, nn.Conv2d) and mod.stride[0] == 2:
            mod = nn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, 2, 1, groups=mod.groups)
        if isinstance(mod, nn.Linear):
            root["initializers.onnx_initializer_0"] = mod.weight.detach().t().contiguous()  # MatMul: (in, out)
            root["initializers.onnx_initializer_1"] = mod.bias.detach().clone()
            w, b = graph.get_attr("initializers.onnx_initializer_0"), graph.get_attr("initializers.onnx_initializer_1")
            env[node.name] = graph.call_function(torch.add, (graph.call_function(torch.matmul, (x, w)), b))
        elif isinstance(mod, nn.Conv2d) and (convs := convs + 1) % unfold_every == 0:
            conv = nn.Conv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                             groups=mod.groups, bias=False)
            bn = nn.BatchNorm2d(mod.out_channels, eps=1e-3).eval()
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.running_mean.normal_(0, 0.2)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.copy_(mod.weight / scale.reshape(-1, 1, 1, 1))
                bn.bias.copy_(mod.bias + bn.running_mean * scale)
            root[name], root[name + "_bn"] = conv, bn
            env[node.name] = graph.call_module(name + "_bn", (graph.call_module(name, (x,)),))
        else:
            root[name] = mod
            env[node.name] = graph.call_module(name, (x,))
    return torch.fx.GraphModule(root, graph).eval()


def write_release(folder, classifier_path, labels=LABELS, kind="always_crop", fmt="tar"):
    """The Kaggle archive's layout: info.json naming the classifier, labels, taxonomy and geofence files."""
    stem = "always_crop_99710272_22x8_v12_epoch_00148"
    files = {
        "info.json": json.dumps({"version": "4.0.3a", "type": kind, "classifier": f"{stem}.pt",
                                 "classifier_labels": f"{stem}.labels.txt", "detector": "MDV5A",
                                 "taxonomy": "taxonomy_release.txt", "geofence": "geofence_release.json"}).encode(),
        f"{stem}.pt": classifier_path.read_bytes(),
        f"{stem}.labels.txt": ("\n".join(labels) + "\n").encode(),
        "taxonomy_release.txt": ("\n".join(labels) + "\n").encode(),
        "geofence_release.json": json.dumps({"vulpes;vulpes": {"allow": {"GBR": []}}}).encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "zip":
        path = folder / "release.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    path = folder / "release.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny EfficientNetV2 saved exactly as SpeciesNet's release saves its classifier, in its archive."""
    folder = tmp_path_factory.mktemp("release")
    model = tiny_model()
    gm = onnx2torch_like(model)
    pt = save(gm, folder / "classifier.pt")
    return write_release(folder / "kaggle", pt), model, gm


def crops(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, speciesnet.INPUT_SIZE, speciesnet.INPUT_SIZE, 3, generator=torch.Generator().manual_seed(seed))


def test_release_converts_to_onnx_with_the_same_outputs_as_our_torch_model(release, tmp_path):
    archive, model, gm = release
    pickled = zipfile.ZipFile(archive.parent.parent / "classifier.pt").read("classifier/data.pkl")
    assert b"reduce_graph_module" in pickled and b"onnx2torch.node_converters" in pickled
    assert b"_VariableFunctionsClass" in pickled  # torch.add, kept by onnx2torch's module, named via getattr
    x = crops()
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(gm(x), want, atol=1e-4)  # the fake release really is this model
    onnx_path = speciesnet.convert(archive, tmp_path / "cache")
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
    assert (got.argmax(1) == want.numpy().argmax(1)).all()
    side = json.loads((tmp_path / "cache" / speciesnet.SIDECAR_FILE).read_text())
    assert {k: side[k] for k in ("kind", "name", "version", "input_size", "layout", "crop", "resize", "scale",
                                 "output", "labels", "geofence", "min_detection_conf")} == {
        "kind": "classifier", "name": "speciesnet", "version": "4.0.3a", "input_size": 480, "layout": "nhwc",
        "crop": "box", "resize": "stretch", "scale": 255.0, "output": "logits", "labels": "speciesnet.labels.txt",
        "geofence": "speciesnet.geofence.json", "min_detection_conf": 0.1}
    assert side["mean"] == [0, 0, 0] and side["std"] == [1, 1, 1]
    labels = (tmp_path / "cache" / side["labels"]).read_text().splitlines()
    assert labels == LABELS and Label.parse(labels[3]).scientific_name == "Vulpes vulpes"
    assert json.loads((tmp_path / "cache" / side["geofence"]).read_text()) == {"vulpes;vulpes": {"allow": {"GBR": []}}}
    # Stage 1's classifier runtime reads the converted model as it is cached, and agrees with our torch model
    clf = runtime.Classifier(onnx_path, sidecar.read(tmp_path / "cache" / speciesnet.SIDECAR_FILE))
    clf.probe()
    crop = (x[0].numpy() * 255).astype(np.uint8)
    top = clf.classify([crop])[0]
    with torch.no_grad():
        want_scores = torch.softmax(model(torch.from_numpy(crop.astype(np.float32)[None] / 255)), -1)[0]
    assert top[0][0] == LABELS[int(want_scores.argmax())] and abs(top[0][1] - float(want_scores.max())) < 1e-4


def test_release_loads_strictly_into_our_model_without_its_code(release, tmp_path):
    archive, model, _ = release
    folder = speciesnet.unpack(archive, tmp_path / "x")
    rel = speciesnet.read_release(folder)
    loaded = safeload.load_classifier(rel.classifier, len(rel.labels))
    assert "onnx2torch" not in str(type(loaded))
    x = crops(2, seed=3)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-4)
    with pytest.raises(ValueError, match="dense layer"):  # a label file that does not fit the classifier
        safeload.load_classifier(rel.classifier, len(rel.labels) + 1)


def test_layers_are_matched_in_the_order_the_graph_runs_them_not_the_order_they_were_declared(tmp_path):
    model = tiny_model(seed=11)
    gm = onnx2torch_like(model)
    gm._modules = dict(reversed(gm._modules.items()))  # declaration order says nothing; the forward code does
    pt = save(gm, tmp_path / "shuffled.pt")
    x = crops(1, seed=6)
    with torch.no_grad():
        assert torch.allclose(safeload.load_classifier(pt, len(LABELS))(x), model(x), atol=1e-4)


def test_a_release_padded_otherwise_than_tensorflows_same_is_refused(tmp_path):
    pt = save(onnx2torch_like(tiny_model(), torch_padding=True), tmp_path / "torch_padded.pt")
    with pytest.raises(ValueError, match=r"model/stem/conv pads \(1, 1\), not as TensorFlow's 'same' padding"):
        safeload.load_classifier(pt, len(LABELS))


def test_kerass_input_rescaling_is_kept_and_any_other_unused_tensor_refuses(tmp_path):
    model = tiny_model(seed=7)
    model.rescale = effnetv2.KERAS_RESCALE
    pt = save(onnx2torch_like(model), tmp_path / "rescaled.pt")
    loaded = safeload.load_classifier(pt, len(LABELS))
    x = crops(2, seed=4)
    with torch.no_grad():
        assert loaded.rescale == effnetv2.KERAS_RESCALE and torch.allclose(loaded(x), model(x), atol=1e-4)
    gm = onnx2torch_like(tiny_model(seed=7))
    gm.initializers.register_buffer("onnx_initializer_9", torch.ones(3))  # a normalisation we would not apply
    save(gm, pt)
    with pytest.raises(ValueError, match=r"does not use \(initializers.onnx_initializer_9 \(3,\)\)"):
        safeload.load_classifier(pt, len(LABELS))


def test_a_release_whose_code_would_run_on_load_converts_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    gm = onnx2torch_like(tiny_model(seed=5))
    hostile = f"import os\nos.system('touch {marker}')\nimport torch"
    monkeypatch.setattr(torch.fx.graph_module, "_format_import_block", lambda *a, **k: hostile)
    pt = save(gm, tmp_path / "classifier.pt")
    monkeypatch.undo()
    speciesnet.convert(write_release(tmp_path / "kaggle", pt), tmp_path / "cache")
    assert not marker.exists()  # converted from the tensors; the pickle's code never ran
    # and the file is hostile: its pickle hands that code to torch.fx's reduce_graph_module, which the usual
    # loader (torch.load without weights_only) calls, and which executes it to rebuild forward()
    with zipfile.ZipFile(pt) as z:
        (pickled,) = [z.read(n) for n in z.namelist() if n.endswith("/data.pkl")]
    assert hostile.encode() in pickled and b"reduce_graph_module" in pickled


def test_a_malicious_classifier_file_is_refused_and_nothing_cached(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pt = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, pt)
    with pytest.raises(weights.RefusedPickle, match=r"refused to load (posix|os)\.system"):
        speciesnet.convert(write_release(tmp_path / "kaggle", pt), tmp_path / "cache")
    assert not marker.exists() and not (tmp_path / "cache").exists()

    class Sneaky:  # getattr is let through for naming torch's functions, on inert records only
        def __reduce__(self):
            return (getattr, ("a string", "upper"))

    torch.save({"model": Sneaky()}, pt)
    with pytest.raises(weights.RefusedPickle, match="refused getattr on str"):
        speciesnet.convert(write_release(tmp_path / "kaggle2", pt), tmp_path / "cache")


def test_an_archive_bomb_or_path_trick_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(speciesnet, "MAX_UNPACKED_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tf:  # 4 MiB of zeros: a few kilobytes on disk
        info = tarfile.TarInfo("info.json")
        info.size = 4 << 20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(InputError, match="zip bomb"):
        speciesnet.convert(bomb, tmp_path / "cache")
    trick = tmp_path / "trick.zip"
    with zipfile.ZipFile(trick, "w") as zf:
        zf.writestr("../../outside.txt", b"x")
    with pytest.raises(InputError, match="outside the model folder"):
        speciesnet.convert(trick, tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "cache").exists()


def test_a_whole_image_release_or_a_bad_label_file_is_refused_with_what_to_do(release, tmp_path):
    archive, _, _ = release
    pt = speciesnet.read_release(speciesnet.unpack(archive, tmp_path / "x")).classifier
    with pytest.raises(InputError, match="always-crop") as refused:
        speciesnet.convert(write_release(tmp_path / "b", pt, kind="full_image"), tmp_path / "cache")
    assert "models fetch speciesnet" in refused.value.hint
    with pytest.raises(InputError, match="7 fields"):
        speciesnet.convert(write_release(tmp_path / "c", pt, labels=[*LABELS[:-1], "mammal"]), tmp_path / "cache")


def test_fetch_holds_the_download_to_its_digest(release, tmp_path, monkeypatch):
    archive, _, _ = release
    cache = tmp_path / "cache"
    monkeypatch.setenv("ODIN_MODELS", str(cache))
    url = archive.as_uri()
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        speciesnet.fetch(sha256="0" * 64, url=url)
    assert sorted(p.name for p in cache.iterdir()) == []  # nothing unverified is kept
    path = speciesnet.fetch(url=url)  # Kaggle publishes no digest: the first download's is recorded
    assert path == runtime.speciesnet_path()  # where Stage 1 looks for it
    sha = weights.digests(archive)[0]
    assert path == cache / "speciesnet.onnx" and json.loads((cache / "known.json").read_text()) == {
        sha: speciesnet.RELEASE["key"]}
    assert json.loads((cache / "speciesnet.json").read_text())["source_sha256"] == sha
    other = write_release(tmp_path / "other", archive.parent.parent / "classifier.pt", fmt="zip")
    with pytest.raises(ValueError, match=r"SHA-256 mismatch.*recorded at the first download"):
        speciesnet.fetch(url=other.as_uri())  # a changed file at the address is not taken on trust
    assert (cache / speciesnet.RELEASE["file"]).read_bytes() == archive.read_bytes()

    def interrupted(n, total):
        raise KeyboardInterrupt  # the user's Ctrl-C, or a dropped connection, mid-download

    with pytest.raises(KeyboardInterrupt):
        speciesnet.fetch(url=url, progress=interrupted)
    assert not list(cache.glob("*.part"))


def test_models_fetch_speciesnet_on_the_command_line(release, tmp_path):
    archive, _, _ = release
    env = dict(os.environ, ODIN_MODELS=str(tmp_path / "cache"))
    bad = odin("models", "fetch", "speciesnet", "--url", archive.as_uri(), "--sha256", "1" * 64, env=env)
    assert bad.returncode == 2 and "SHA-256 mismatch" in bad.stderr
    good = odin("models", "fetch", "speciesnet", "--url", archive.as_uri(), env=env)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "cache" / "speciesnet.onnx").exists() and "--classifier speciesnet" in good.stdout + good.stderr


def test_the_model_cache_can_be_read_without_torch():
    """An onnxruntime-only install (the CPU container) finds a cached SpeciesNet: names and sidecar need no torch."""
    import subprocess  # noqa: PLC0415

    code = ("import sys; from wildlife.classify import speciesnet; speciesnet.sidecar('4.0.3a', None); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=speciesnet.__file__.rsplit("/wildlife/", 1)[0])
    assert result.returncode == 0, result.stderr
