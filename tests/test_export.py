"""`kslim predict` and `kslim export`: the SavedModel, loaded where kslim cannot be
imported, gives the same top-1 (and probabilities) as `kslim predict` on real photos."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import kslim
from kslim import compat
from slim_harness import recipe_value
from training_helpers import IMAGES, QUIET_ENV, run_cli

PHOTOS = sorted(os.path.join(IMAGES, f) for f in os.listdir(IMAGES)
                if f.endswith((".png", ".jpg")))

# Runs in a fresh interpreter (-I: no user site, no PYTHONPATH) where `import kslim`
# fails, as on a serving machine without kslim.
_LOADER = r"""
import json, sys
sys.modules["kslim"] = None  # kslim is not importable from here on
try:
    import kslim
except ImportError:
    pass
else:
    raise SystemExit("kslim is importable")
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[2:]]
out = loaded.signatures["serving_default"](images=tf.constant(images))
floats = loaded.signatures["float_images"](
    inputs=tf.constant(np.load(sys.argv[1] + ".inputs.npy")))
print(json.dumps({
    "signatures": sorted(loaded.signatures),
    "classes": out["classes"].numpy().tolist(),
    "top_k_classes": out["top_k_classes"].numpy().tolist(),
    "top_k_names": [[n.decode() for n in row] for row in out["top_k_names"].numpy()],
    "probabilities": out["top_k_probabilities"].numpy().tolist(),
    "logits": out["logits"].numpy().tolist(),
    "float_logits": floats["logits"].numpy().tolist(),
    "kslim_modules": [m for m, v in sys.modules.items()
                      if m.startswith("kslim") and v is not None],
}))
"""


@pytest.fixture(scope="module")
def cifarnet_checkpoint(tmp_path_factory):
    model = kslim.models.create_model("cifarnet", num_classes=10)
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))
    folder = tmp_path_factory.mktemp("cifarnet")
    return compat.save_slim_checkpoint(model, str(folder / "model.ckpt"), global_step=1), model


def test_exported_saved_model_matches_predict_without_kslim(tmp_path, cifarnet_checkpoint):
    prefix, model = cifarnet_checkpoint
    assert len(PHOTOS) >= 3
    code, out, err = run_cli("predict", *PHOTOS, "--model=cifarnet", f"--weights={prefix}",
                             "--labels=cifar10", "--top_k=3", "--json")
    assert code == 0, err
    predicted = [json.loads(line) for line in out.splitlines()]
    assert [p["image"] for p in predicted] == PHOTOS

    export_dir = tmp_path / "export"
    code, out, err = run_cli("export", "--model_name=cifarnet", f"--weights={prefix}",
                             f"--output_dir={export_dir}", "--dataset_name=cifar10",
                             "--top_k=3")
    assert code == 0, err
    assert "Wrote SavedModel" in out

    # a preprocessed float batch for the float signature: cifarnet's eval preprocessing
    prepare = kslim.training._infer.image_preprocessor("cifarnet", 32, 3)
    inputs = np.stack([prepare(open(p, "rb").read()).numpy() for p in PHOTOS])
    np.save(str(export_dir) + ".inputs.npy", inputs)
    result = subprocess.run([sys.executable, "-I", "-c", _LOADER, str(export_dir), *PHOTOS],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, **QUIET_ENV})
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["kslim_modules"] == []
    assert served["signatures"] == ["encoded_images", "float_images", "serving_default"]
    assert served["classes"] == [p["classes"][0] for p in predicted]  # the same top-1
    assert served["top_k_classes"] == [p["classes"] for p in predicted]
    assert served["top_k_names"] == [p["names"] for p in predicted]
    np.testing.assert_allclose(served["probabilities"], [p["probabilities"] for p in predicted],
                               rtol=1e-4, atol=1e-6)
    reference = np.asarray(model(inputs, training=False))
    np.testing.assert_allclose(served["float_logits"], reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(served["logits"], reference, rtol=1e-4, atol=1e-4)
    assert len(set(served["classes"])) > 1 or np.ptp(reference) > 0  # a real, non-flat net


def test_predict_names_images_it_cannot_read(tmp_path, cifarnet_checkpoint):
    prefix, _ = cifarnet_checkpoint
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, _, err = run_cli("predict", str(text), "--model=cifarnet", f"--weights={prefix}")
    assert code == 1
    assert f"cannot decode image '{text}'" in err
    code, _, err = run_cli("predict", str(tmp_path / "missing.jpg"), "--model=cifarnet",
                           f"--weights={prefix}")
    assert code == 1 and "missing.jpg' does not exist" in err


def test_export_refuses_a_non_empty_folder_and_unsupported_flags(tmp_path,
                                                                 cifarnet_checkpoint):
    prefix, _ = cifarnet_checkpoint
    (tmp_path / "keep.txt").write_text("x")
    code, _, err = run_cli("export", "--model_name=cifarnet", f"--weights={prefix}",
                           f"--output_dir={tmp_path}")
    assert code == 1 and "is not empty" in err
    code, _, err = run_cli("export", "--model_name=cifarnet", "--quantize",
                           f"--output_dir={tmp_path}/new")
    assert code == 1 and "--quantize: quantized export" in err
