"""Builds TransNAS-Bench-101 style dicts and writes them as torch files with the stdlib only.

The layouts are written independently of :mod:`jaxnas.data.pth` (own constants), so tests of the
reader check it against the torch formats rather than against itself.
"""

from __future__ import annotations

import gc
import pickle
import sys
import zipfile

import numpy as np

from jaxnas.data import names

#: Base metrics per task, as in the official file (several for segmentsemantic).
BASE_METRICS = {
    "class_object": ("top1",),
    "class_scene": ("top1",),
    "jigsaw": ("top1",),
    "room_layout": ("neg_loss",),
    "segmentsemantic": ("acc", "mIoU"),
    "normal": ("ssim",),
    "autoencoder": ("ssim",),
}
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PROTOCOL = 1001


def official_dict(
    spaces=("micro", "macro"),
    tasks=("class_object", "room_layout", "segmentsemantic"),
    epochs: int = 4,
    with_test: bool = True,
    seed: int = 0,
) -> dict:
    """A complete official-layout dict: every architecture of ``spaces`` (shuffled), random curves.

    Besides ``train_``/``valid_``/``test_`` of each base metric it holds the loss and time
    entries the reader must ignore. A fixed ``seed`` gives the same dict.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the dict is acyclic; collector passes over it only cost time
    try:
        return _official_dict(spaces, tasks, epochs, with_test, seed)
    finally:
        if gc_was_enabled:
            gc.enable()


def _official_dict(spaces, tasks, epochs, with_test, seed) -> dict:
    rng = np.random.default_rng(seed)
    splits = ("train", "valid", "test") if with_test else ("train", "valid")
    metrics_dict = {
        task: [f"{split}_{base}" for base in BASE_METRICS[task] for split in splits]
        + ["train_loss", "time_elapsed"]
        for task in tasks
    }
    data = {}
    for space in spaces:
        space_names = names.all_names(space)
        n = len(space_names)
        # One [N, epochs] block per (task, metric), converted once: Python floats, as torch saves.
        columns = {}
        for task in tasks:
            for key in metrics_dict[task]:
                values = rng.uniform(0.0, 1.0, (n, epochs))
                if "neg_loss" in key:
                    values = -values
                columns[task, key] = values.tolist()
        data[space] = {
            name: {
                task: {
                    "metrics": {key: columns[task, key][i] for key in metrics_dict[task]},
                    "model_info": {"inference_time": 0.01 * (i + 1), "model_params": 1000 + i},
                    "total_epochs": epochs,
                }
                for task in tasks
            }
            # Not in canonical order, so a reader must place rows by name, not by position.
            for i, name in ((int(i), space_names[i]) for i in rng.permutation(n))
        }
    return {
        "task_list": list(tasks),
        "metrics_dict": metrics_dict,
        "info_names": ["inference_time", "model_params"],
        "data": data,
    }


def write_zip_payload(path, data_pkl: bytes, dirname: str = "archive"):
    """A torch zip archive (``torch.save`` >= 1.6 layout) whose ``data.pkl`` is ``data_pkl``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{dirname}/data.pkl", data_pkl)
        archive.writestr(f"{dirname}/byteorder", "little")
        archive.writestr(f"{dirname}/version", "3\n")
    return path


def write_zip(path, obj, dirname: str = "archive"):
    """``obj`` in the torch zip layout, pickled at protocol 2 like ``torch.save``."""
    return write_zip_payload(path, pickle.dumps(obj, protocol=2), dirname)


def write_legacy_payload(
    path,
    data_pkl: bytes,
    magic=TORCH_LEGACY_MAGIC,
    protocol=TORCH_LEGACY_PROTOCOL,
    storage_keys=(),
):
    """A legacy torch file (before 1.6): magic, protocol, sys_info, ``data_pkl``, storage keys."""
    sys_info = {
        "protocol_version": protocol,
        "little_endian": sys.byteorder == "little",
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    with open(path, "wb") as stream:
        for item in (magic, protocol, sys_info):
            pickle.dump(item, stream, protocol=2)
        stream.write(data_pkl)
        pickle.dump(list(storage_keys), stream, protocol=2)
    return path


def write_legacy(path, obj, **kwargs):
    """``obj`` in the legacy torch layout, pickled at protocol 2 like ``torch.save``."""
    return write_legacy_payload(path, pickle.dumps(obj, protocol=2), **kwargs)
