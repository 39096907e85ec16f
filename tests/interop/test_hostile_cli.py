"""Hostile and malformed input to ``refattr compare`` / ``oracle export`` / ``demo`` (issue 13).

- A model file whose pickle would run code is refused (exit 2, the way out named) and the code
  never runs; a state dict loads with --architecture; --trust-pickle loads a full module.
- NaN/Inf never compare as equal; non-finite user attributions and a bad rtol are errors.
- Every bad path or file exits 2 with one ``refattr COMMAND: error: ...`` line and no traceback.
"""

import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import refattr
from refattr.cli import main
from refattr.errors import ArgumentError, NonFiniteError, UnsafeFileError
from refattr.interop.cli import load_model
from refattr.interop.compare import compare_attributions, compare_captum, relative_difference

torch = pytest.importorskip("torch")
captum = pytest.importorskip("captum")
nn = torch.nn

ARCH_MODULE = "refattr_hostile_arch"
ARCH_SOURCE = '''
import torch

def make_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()

def wrong_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()

def not_a_module():
    return 3

CONSTANT = 3
'''


class WritesMarker:
    """Unpickling this object runs ``exec``, which creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"with open({self.marker!r}, 'w') as f: f.write('the payload ran')",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_cli")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double().eval()
    torch.save(model, d / "full.pt")
    torch.save(model.state_dict(), d / "weights.pt")
    torch.save({"model": model.state_dict(), "epoch": 3}, d / "checkpoint.pt")
    (d / f"{ARCH_MODULE}.py").write_text(ARCH_SOURCE)
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    targets = np.array([0, 1])
    np.save(d / "x.npy", x)
    np.save(d / "t.npy", targets)
    # the expected gradient, from torch's autograd on the saved model (independent of refattr)
    tx = torch.from_numpy(x).requires_grad_()
    model(tx)[torch.arange(2), torch.from_numpy(targets)].sum().backward()
    np.save(d / "grad.npy", tx.grad.numpy())
    return d


@pytest.fixture
def arch_on_path(files, monkeypatch):
    monkeypatch.syspath_prepend(str(files))
    yield
    sys.modules.pop(ARCH_MODULE, None)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def assert_bad_input(code, err, command, *phrases):
    """Exit 2, one ``refattr COMMAND: error:`` line on stderr, no traceback, every phrase in it."""
    assert code == 2, err
    assert err.startswith(f"refattr {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)


def subprocess_env(*paths):
    root = str(Path(refattr.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *map(str, paths), os.environ.get("PYTHONPATH", "")])}


# 1. Never unpickle by default --------------------------------------------------------------------
def write_payload(path, marker, as_torch_save):
    if as_torch_save:
        torch.save(WritesMarker(marker), path)
    else:  # a plain pickle (torch.load's legacy, non-zip format); protocol 2 writes a GLOBAL opcode
        with open(path, "wb") as f:
            pickle.dump(WritesMarker(marker), f, protocol=2)


@pytest.mark.parametrize("name, as_torch_save", [("evil.pt", True), ("evil.pth", False)])
def test_a_pickle_payload_never_runs(files, tmp_path, capsys, name, as_torch_save):
    marker = tmp_path / "marker"
    path = tmp_path / name
    write_payload(path, marker, as_torch_save)
    # the payload is live: a full unpickle of a copy writes the marker
    shutil.copy(path, tmp_path / "copy")
    if as_torch_save:
        torch.load(tmp_path / "copy", weights_only=False)
    else:
        with open(tmp_path / "copy", "rb") as f:
            pickle.load(f)
    assert marker.read_text() == "the payload ran"
    marker.unlink()

    code, out = run(capsys, "compare", path, "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare", "--trust-pickle", "--architecture", "ONNX", "runs code")
    assert not marker.exists()
    proc = subprocess.run([sys.executable, "-m", "refattr.cli", "compare", str(path), "--inputs", str(files / "x.npy")],
                          capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=300)
    assert_bad_input(proc.returncode, proc.stderr, "compare", "--trust-pickle")
    assert not marker.exists()
    with pytest.raises(UnsafeFileError, match="trust_pickle=True"):
        load_model(path)
    assert not marker.exists()


def test_a_torch_export_archive_is_refused_because_torch_export_load_unpickles(files, tmp_path, capsys):
    # torch.export.load reads the archive's sample inputs with torch.load, falling back to
    # weights_only=False when the restricted loader refuses them: a payload there runs
    model = torch.load(files / "full.pt", weights_only=False)
    benign = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, dtype=torch.float64),)), benign)
    marker = tmp_path / "marker"
    payload = tmp_path / "payload.pt"
    torch.save(WritesMarker(marker), payload)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(benign) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, payload.read_bytes() if info.filename.endswith("sample_inputs/model.pt") else data)
    shutil.copy(evil, tmp_path / "copy.pt2")
    with pytest.raises(Exception):  # torch runs the payload, then finds no tuple of sample inputs
        torch.export.load(tmp_path / "copy.pt2")
    assert marker.read_text() == "the payload ran"
    marker.unlink()
    capsys.readouterr()  # torch's own log lines about the fallback

    code, out = run(capsys, "compare", evil, "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare", "torch.export", "--trust-pickle")
    assert not marker.exists()
    # trusted, the benign archive loads; its module is a GraphModule, which the importer refuses clearly
    code, out = run(capsys, "compare", benign, "--trust-pickle", "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare")


def test_a_state_dict_needs_architecture(files, capsys):
    code, out = run(capsys, "compare", files / "weights.pt", "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare", "state dict", "--architecture MODULE:CALLABLE")


def test_a_state_dict_with_architecture_end_to_end(files, capsys, arch_on_path):
    saved = torch.load(files / "weights.pt", weights_only=True)
    model = load_model(files / "weights.pt", architecture=f"{ARCH_MODULE}:make_net")
    assert not model.training
    for key, value in model.state_dict().items():  # the file's weights, not make_net's random ones
        assert torch.equal(value, saved[key]), key
    # the autograd gradient of the saved model agrees with refattr's gradient of the loaded one;
    # make_net's own random weights would give another gradient (exit 1)
    code, out = run(capsys, "compare", files / "weights.pt", "--architecture", f"{ARCH_MODULE}:make_net",
                    "--inputs", files / "x.npy", "--targets", files / "t.npy", "--attributions", files / "grad.npy",
                    "--method", "gradient")
    assert code == 0 and "every difference is explained" in out.out, out


def test_a_state_dict_with_architecture_in_a_subprocess(files, tmp_path):
    # the architecture's module is found through PYTHONPATH, as --help says
    proc = subprocess.run([sys.executable, "-m", "refattr.cli", "compare", str(files / "weights.pt"), "--architecture",
                           f"{ARCH_MODULE}:make_net", "--inputs", str(files / "x.npy"), "--targets",
                           str(files / "t.npy"), "--attributions", str(files / "grad.npy"), "--method", "gradient"],
                          capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(files), timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("model, architecture, phrases", [
    ("weights.pt", f"{ARCH_MODULE}:wrong_net", ["does not fit", "size mismatch"]),
    ("weights.pt", f"{ARCH_MODULE}", ["MODULE:CALLABLE"]),
    ("weights.pt", "refattr_no_such_module_xyz:make_net", ["cannot import", "PYTHONPATH"]),
    ("weights.pt", f"{ARCH_MODULE}:missing", ["no attribute 'missing'"]),
    ("weights.pt", f"{ARCH_MODULE}:CONSTANT", ["not callable"]),
    ("weights.pt", f"{ARCH_MODULE}:not_a_module", ["returned a int", "torch.nn.Module"]),
    ("checkpoint.pt", f"{ARCH_MODULE}:make_net", ["'model'", "not a tensor"]),
    ("full.pt", f"{ARCH_MODULE}:make_net", ["holds a full module", "drop --architecture"]),
])
def test_a_bad_architecture_exits_2(files, capsys, arch_on_path, model, architecture, phrases):
    code, out = run(capsys, "compare", files / model, "--architecture", architecture, "--trust-pickle",
                    "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare", *phrases)


def test_trust_pickle_loads_a_full_module(files, capsys):
    with pytest.raises(UnsafeFileError, match="torch.nn.modules.container.Sequential"):
        load_model(files / "full.pt")
    model = load_model(files / "full.pt", trust_pickle=True)
    assert isinstance(model, nn.Sequential) and not model.training
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy", "--targets",
                    files / "t.npy", "--attributions", files / "grad.npy", "--method", "gradient")
    assert code == 0 and "every difference is explained" in out.out, out


def test_help_documents_the_ways_to_load_a_model(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--trust-pickle", "EXECUTES", "--architecture MODULE:CALLABLE", "state dict", "ONNX"):
        assert phrase in text, phrase


# 2. NaN and Inf never agree; rtol is checked -------------------------------------------------------
def test_relative_difference_never_calls_non_finite_equal():
    zero = np.zeros((1, 2))
    # the old formula turned NaN into 0 where the reference row is zero
    assert relative_difference([[np.nan, 0.0]], zero) == np.inf
    assert relative_difference([[np.inf, 1.0]], [[np.inf, 1.0]]) == np.inf
    assert relative_difference([[np.nan, 1.0]], [[np.nan, 1.0]]) == np.inf
    assert relative_difference([[1.0, 1.0]], [[1.0, -np.inf]]) == np.inf
    # finite: max|a - e| / max|e| = |2 - 4| / 4 = 0.5; a zero reference row scales by max|a|: 3 / 3 = 1
    assert relative_difference([[1.0, 2.0]], [[1.0, 4.0]]) == 0.5
    assert relative_difference([[3.0, 0.0]], zero) == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_user_attributions_are_an_error(files, capsys, tmp_path, bad):
    grad = np.load(files / "grad.npy")
    grad[1, 2] = bad
    with pytest.raises(NonFiniteError, match=r"attributions.*\(1, 2\)"):
        # checked before anything else: the model is not even looked at
        compare_attributions(object(), np.load(files / "x.npy"), grad, "gradient")
    np.save(tmp_path / "a.npy", grad)
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy",
                    "--attributions", tmp_path / "a.npy", "--method", "gradient")
    assert_bad_input(code, out.err, "compare", "attributions", "(1, 2)")


def test_a_peer_returning_nan_is_unexplained(files, capsys, monkeypatch):
    # every input negative and all-ones weights: the ReLU is off, so the reference gradient is 0,
    # the case where NaN used to read as agreement
    model = nn.Sequential(nn.Linear(3, 1), nn.ReLU()).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    x = -np.ones((2, 3))
    monkeypatch.setattr(captum.attr.Saliency, "attribute", lambda self, inputs, **kw: torch.full_like(inputs, np.nan))
    report = compare_captum(model, x, methods=["Saliency"])
    entry = report["Saliency"]
    assert entry.verdict == "unexplained" and not report.ok
    assert any("non-finite" in c.description and "(0, 0)" in c.description for c in entry.causes)
    torch.save(model, files / "dead.pt")
    np.save(files / "negative.npy", x)
    code, out = run(capsys, "compare", files / "dead.pt", "--trust-pickle", "--inputs", files / "negative.npy",
                    "--methods", "Saliency")
    assert code == 1 and "UNEXPLAINED" in out.out


@pytest.mark.parametrize("rtol", [np.inf, np.nan, 0.0, 1.0, -1e-3, 2, True, "1e-3"])
def test_rtol_is_checked(files, rtol):
    model = torch.load(files / "full.pt", weights_only=False)
    x, grad = np.load(files / "x.npy"), np.load(files / "grad.npy")
    with pytest.raises(ArgumentError, match="rtol"):
        compare_attributions(model, x, grad, "gradient", targets=np.load(files / "t.npy"), rtol=rtol)
    with pytest.raises(ArgumentError, match="rtol"):
        compare_captum(model, x, methods=["Saliency"], targets=0, rtol=rtol)


@pytest.mark.parametrize("rtol", ["inf", "nan", "0", "-1"])
def test_rtol_on_the_command_line_exits_2(files, capsys, rtol):
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy", "--targets",
                    "0", "--methods", "Saliency", "--rtol", rtol)
    assert_bad_input(code, out.err, "compare", "rtol")


@pytest.mark.parametrize("n_steps", ["0", "-3", "1000000000"])
def test_bad_n_steps_exits_2_before_captum_runs(files, capsys, n_steps):
    # Captum refusing (or trying to allocate 10^9 steps) used to read as an unexplained difference, exit 1
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy", "--targets",
                    "0", "--methods", "IntegratedGradients", "--n-steps", n_steps)
    assert_bad_input(code, out.err, "compare", "n_steps")


# 3. Bad paths and files exit 2 ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "folder").mkdir()
    (d / "folder.pt").mkdir()
    (d / "text.npy").write_text("not an array\n")
    (d / "notes.txt").write_text("hello\n")
    (d / "garbage.pt").write_bytes(b"hello, this is not a torch file")
    (d / "empty.pt").write_bytes(b"")
    torch.save([1, 2, 3], d / "list.pt")
    np.save(d / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(d / "strings.npy", np.array(["a", "b"]))
    np.savez(d / "arrays.npz", x=np.zeros(3))
    good = np.lib.format.header_data_from_array_1_0(np.zeros((2, 3)))
    with open(d / "truncated.npy", "wb") as f:  # a valid header for 6 float64, then 3 bytes of data
        np.lib.format.write_array_header_1_0(f, good)
        f.write(b"\x00\x00\x00")
    return d


@pytest.mark.parametrize("model, phrases", [
    ("folder", ["MODEL", "is a directory"]),
    ("folder.pt", ["MODEL", "is a directory"]),
    ("missing.pt", ["MODEL", "no such file"]),
    ("notes.txt", ["MODEL", ".onnx"]),
    ("garbage.pt", ["MODEL", "cannot read", "torch.save"]),
    ("empty.pt", ["MODEL", "cannot read"]),
    ("list.pt", ["MODEL", "holds a list", "state dict"]),
])
def test_bad_model_path_exits_2(files, bad, capsys, model, phrases):
    code, out = run(capsys, "compare", bad / model, "--inputs", files / "x.npy")
    assert_bad_input(code, out.err, "compare", *phrases)


@pytest.mark.parametrize("option", ["--inputs", "--baseline", "--targets", "--attributions", "--baseline-samples"])
@pytest.mark.parametrize("path, phrases", [
    ("folder", ["is a directory"]),
    ("missing.npy", ["no such file"]),
    ("text.npy", ["is not a .npy file"]),
    ("arrays.npz", ["is not a .npy file"]),
    ("objects.npy", ["without unpickling", "Object arrays", "numeric array"]),
    ("strings.npy", ["dtype <U1", "real numbers"]),
    ("truncated.npy", ["without unpickling"]),
])
def test_bad_array_path_exits_2(files, bad, capsys, option, path, phrases):
    argv = ["compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy", option, bad / path]
    if option == "--attributions":
        argv += ["--method", "gradient"]
    if option == "--targets" and path == "missing.npy":  # text that is not a file may have meant an integer
        phrases = ["neither an integer nor an existing file"]
    code, out = run(capsys, *argv)
    assert_bad_input(code, out.err, "compare", option, *phrases)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_without_reading_it(files, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.npy")  # reading it would block for ever
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", tmp_path / "pipe.npy")
    assert_bad_input(code, out.err, "compare", "--inputs", "not a regular file")


@pytest.mark.parametrize("text", ["abc", "1.5", "0x1"])
def test_targets_text_that_is_neither_an_int_nor_a_file_exits_2(files, capsys, text):
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", files / "x.npy", "--targets",
                    text, "--methods", "Saliency")
    assert_bad_input(code, out.err, "compare", "--targets", "neither an integer nor an existing file", repr(text))


def test_output_directories_that_cannot_be_created_exit_2(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    code, out = run(capsys, "oracle", "export", a_file)
    assert_bad_input(code, out.err, "oracle export", "DIRECTORY", "not a directory")
    code, out = run(capsys, "oracle", "export", a_file / "below")
    assert_bad_input(code, out.err, "oracle export", "DIRECTORY", "cannot create")
    code, out = run(capsys, "demo", "--out", a_file, "--quiet")
    assert_bad_input(code, out.err, "demo", "--out", "not a directory")
    code, out = run(capsys, "demo", "--out", a_file / "below", "--quiet")
    assert_bad_input(code, out.err, "demo", "--out", "cannot create")
    assert a_file.read_text() == "keep me\n"


def test_non_finite_inputs_are_named_as_the_argument_the_user_passed(files, capsys, tmp_path):
    # the message says "inputs" (the argument of compare and --inputs), not the methods' "x"
    x = np.load(files / "x.npy")
    x[0, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"^inputs: .*\(0, 1\)"):
        compare_attributions(load_model(files / "full.pt", trust_pickle=True), x, np.zeros_like(x), "gradient")
    np.save(tmp_path / "x.npy", x)
    code, out = run(capsys, "compare", files / "full.pt", "--trust-pickle", "--inputs", tmp_path / "x.npy")
    assert_bad_input(code, out.err, "compare", "inputs: ", "(0, 1)")


def test_oracle_without_an_action_says_what_to_choose(capsys):
    code, out = run(capsys, "oracle")
    assert code == 2
    assert "refattr oracle: error: choose an action: export DIRECTORY" in out.err
