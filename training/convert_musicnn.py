"""One-off conversion of musicnn's MSD_musicnn TensorFlow 1 checkpoint to a NumPy archive.

musicnn (Pons & Serra, ISC licence) ships the weights of a MusiCNN tagger trained on the
Million Song Dataset's top-50 tags in its wheel. This script reads that checkpoint with
``tf.compat.v1.train.NewCheckpointReader`` and writes every trained variable (no optimiser
slots) to ``--out`` under their TensorFlow names, every one rounded to float16 to keep the file
small (rtmer-large's export stores its large tensors at float16 and keeps the small ones, batch-norm
statistics and biases, at float32, holding these rounded values). It also runs musicnn's
own TensorFlow graph (``musicnn.models.define_model``) on a few seeded log-mel patches and
stores inputs and outputs beside the weights, so that the torch port in
``training/musicnn.py`` can be checked against the original (``tests/training/test_musicnn.py``).

It needs TensorFlow, which neither the runtime nor the tests install. In a separate venv:

    python3 -m venv build/teacher-venv
    build/teacher-venv/bin/pip install ".[teacher]"
    build/teacher-venv/bin/pip install --no-deps musicnn==0.1.0   # its pins are from 2019
    build/teacher-venv/bin/python training/convert_musicnn.py --out training/weights/msd_musicnn.npz

Its output is committed (training/weights/, with musicnn's licence), so training needs none of this.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

MODEL = "MSD_musicnn"
PATCH_FRAMES = 187  # musicnn's 3 s input
N_MELS = 96
REFERENCE_PATCHES = 4


def reference_patches(seed: int = 0) -> np.ndarray:
    """Seeded log-mel patches [4, 187, 96] in musicnn's input range (log10(10000 x + 1))."""
    rng = np.random.default_rng(seed)
    time = np.arange(PATCH_FRAMES)[None, :, None]
    spectral_tilt = np.linspace(2.5, 0.3, N_MELS)[None, None, :]
    pulses = (np.sin(2 * np.pi * time / rng.uniform(8, 40, (REFERENCE_PATCHES, 1, 1))) > 0.6) * rng.uniform(0.2, 1.0, (REFERENCE_PATCHES, 1, 1))
    noise = rng.gamma(2.0, 0.15, (REFERENCE_PATCHES, PATCH_FRAMES, N_MELS))
    return (spectral_tilt * rng.uniform(0.5, 1.2, (REFERENCE_PATCHES, 1, 1)) + pulses + noise).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = parser.parse_args()

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # musicnn builds with tf.compat.v1.layers, gone in Keras 3
    import musicnn
    import tensorflow as tf
    from musicnn import models

    checkpoint = os.path.join(os.path.dirname(musicnn.__file__), MODEL) + "/"
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint)
    weights = {
        name: reader.get_tensor(name).astype(np.float16)
        for name in sorted(reader.get_variable_to_shape_map())
        if "Adam" not in name and not name.endswith("_power")
    }

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, N_MELS])
    is_training = tf.compat.v1.placeholder(tf.bool)
    logits, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, MODEL, 50)
    patches = reference_patches()  # the reference runs the original float32 weights
    with tf.compat.v1.Session() as session:
        tf.compat.v1.train.Saver().restore(session, checkpoint)
        outputs = session.run([tf.nn.sigmoid(logits), penultimate, mean_pool, max_pool], {x: patches, is_training: False})
    reference = dict(zip(("taggram", "penultimate", "mean_pool", "max_pool"), outputs))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        **{f"weights/{name}": value for name, value in weights.items()},
        **{f"reference/{name}": np.asarray(value, np.float32) for name, value in reference.items()},
        **{"reference/input": patches},
    )
    print(f"wrote {args.out}: {len(weights)} variables, {sum(v.size for v in weights.values())} values")


if __name__ == "__main__":
    main()
