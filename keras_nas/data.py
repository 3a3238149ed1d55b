"""Input data for a search: validation, the embedded default set, TensorFlow Datasets.

Everything here runs before any training, so bad input fails in a second with a message that
names the argument, not after an hour of search.
"""

import dataclasses
import os
import typing

import numpy as np

from keras_nas.validation import check_arrays

#: Dataset names that need no download: they ship with a dependency.
EMBEDDED_DATASETS = ("digits",)


@dataclasses.dataclass
class SearchData:
    """Training and validation data, checked and in the form the tuner needs.

    Attributes:
        train: `(x, y)` numpy arrays or a batched `tf.data.Dataset` of `(x, y)`.
        validation: the same for validation.
        input_shape: shape of one example, `(height, width, channels)`.
        num_classes: number of classes of the integer labels.
        test: optional held-out `(x, y)` (from a named dataset's test split).
    """

    train: object
    validation: object
    input_shape: tuple
    num_classes: int
    test: object = None

    @property
    def is_dataset(self):
        return not isinstance(self.train, tuple)

    def sizes(self):
        """`(training, validation)` example counts (batches for a dataset of unknown size)."""
        if not self.is_dataset:
            return len(self.train[0]), len(self.validation[0])
        return tuple(max(1, int(d.cardinality())) for d in (self.train, self.validation))

    def train_and_validation(self):
        """The training and validation data joined (for retraining the found model)."""
        if self.is_dataset:
            return self.train.concatenate(self.validation)
        (xt, yt), (xv, yv) = self.train, self.validation
        return np.concatenate([xt, xv]), np.concatenate([yt, yv])


def load_digits():
    """scikit-learn's digits as 8x8x1 float images in [0, 1]: `(x_train, y_train), (x_test, y_test)`.

    The split is fixed (the last 20% of the 1,797 images is the test set).
    """
    from sklearn import datasets

    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


class NamedData(typing.NamedTuple):
    """What a named dataset holds: `(x, y)` pairs; `validation` and `test` may be None."""

    train: tuple
    validation: object = None
    test: object = None


def _scaled(images):
    """Images as float32; 8-bit images are scaled from 0..255 to [0, 1]."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return (images / scale).astype("float32")


def load_tfds(name, data_dir=None):
    """Loads a prepared TensorFlow Datasets image classification set as numpy arrays.

    Returns `(x_train, y_train), (x_test, y_test)`; 8-bit images scaled to [0, 1]. keras-nas
    never downloads: a set that is not prepared in `data_dir` (TFDS' default folder when
    None) raises a `ValueError` that says how to prepare it.

    Example: `(x, y), (xt, yt) = load_tfds("mnist", data_dir="~/tensorflow_datasets")`.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ValueError(
            f"`dataset`={name!r} needs TensorFlow Datasets: pip install 'keras-nas[tfds]'."
        ) from None
    if name not in tfds.list_builders():
        raise ValueError(
            f"Unknown `dataset` {name!r}: expected {', '.join(EMBEDDED_DATASETS)}, a .npz file "
            "or the name of a TensorFlow Datasets image classification set (e.g. 'mnist')."
        )
    try:
        splits = tfds.load(name, split=["train", "test"], as_supervised=True,
                           data_dir=data_dir, download=False)
    except AssertionError:  # TFDS' way of saying "not prepared in data_dir"
        where = data_dir or os.path.join("~", "tensorflow_datasets")
        raise ValueError(
            f"`dataset`={name!r} is not prepared in {where}: prepare it once with "
            f"`tfds build {name} --data_dir {where}` (needs internet access; copy the folder "
            "to machines without it), or pass `data_dir` where it is prepared."
        ) from None
    arrays = []
    for split in splits:
        batches = list(tfds.as_numpy(split.batch(4096)))
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        arrays.append((_scaled(images), labels))
    return arrays[0], arrays[1]


#: The arrays a `.npz` dataset may hold, by split.
NPZ_KEYS = {"train": ("x_train", "y_train"), "validation": ("x_val", "y_val"),
            "test": ("x_test", "y_test")}


def load_npz(path):
    """Loads a dataset saved with `numpy.savez`: a `NamedData`.

    The file holds `x` and `y` (a search splits validation off them), or `x_train`,
    `y_train` with optional `x_val`, `y_val` and `x_test`, `y_test`. 8-bit images are
    scaled to [0, 1].

    Example:

    ```python
    np.savez("digits.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    data = load_npz("digits.npz")      # data.train, data.validation (None), data.test
    ```
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"`dataset` {path!r} is not a readable .npz file: {e}") from None
    if "x_train" not in arrays and "x" in arrays:
        arrays["x_train"], arrays["y_train"] = arrays.pop("x"), arrays.pop("y", None)
    known = {k for pair in NPZ_KEYS.values() for k in pair}
    unknown = sorted(set(arrays) - known)
    if unknown or "x_train" not in arrays:
        raise ValueError(
            f"`dataset` {path!r} must hold arrays x, y or x_train, y_train (and optionally "
            f"x_val, y_val, x_test, y_test); it holds {sorted(set(arrays) | set(unknown))}."
        )
    splits = {}
    for split, (xk, yk) in NPZ_KEYS.items():
        if xk in arrays or yk in arrays:
            if arrays.get(xk) is None or arrays.get(yk) is None:
                raise ValueError(f"`dataset` {path!r} has {xk if xk in arrays else yk} "
                                 f"without {yk if xk in arrays else xk}.")
            splits[split] = (_scaled(arrays[xk]), arrays[yk])
    return NamedData(**splits)


def load_named(name, data_dir=None):
    """The embedded `"digits"`, a `.npz` file or a TensorFlow Datasets name: a `NamedData`.

    Example: `load_named("digits").train[0].shape == (1437, 8, 8, 1)`.
    """
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise ValueError(f"`dataset` must be a dataset name or a .npz path, got {name!r}.")
    name = os.fspath(name)
    if name == "digits":
        train, test = load_digits()
        return NamedData(train, None, test)
    if name.endswith(".npz"):
        if not os.path.isfile(name):
            raise ValueError(f"`dataset` {name!r} is not a file.")
        return load_npz(name)
    train, test = load_tfds(name, data_dir=data_dir)
    return NamedData(train, None, test)


def _split(x, y, validation_split, seed):
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be between 0 and 1 (exclusive), got {validation_split!r}."
        )
    n_val = int(round(len(x) * validation_split))
    if n_val < 1 or n_val >= len(x):
        raise ValueError(
            f"`validation_split`={validation_split} of {len(x)} examples leaves no training "
            "or no validation examples; pass more data or `validation_data`."
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def _dataset_shape_and_classes(dataset, name, num_classes):
    import tensorflow as tf

    x_spec = _check_pairs(dataset, name)[0]
    shape = tuple(x_spec.shape)
    if len(shape) == 5 or (len(shape) == 4 and shape[0] is None):
        shape = shape[1:]
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(
            f"`{name}` must yield batches of images of a fixed (height, width, channels) "
            f"shape, got element spec {x_spec}."
        )
    if num_classes is None:
        top = -1
        for _, labels in dataset:
            top = max(top, int(tf.reduce_max(labels)))
        num_classes = top + 1
    return shape, num_classes


def _check_pairs(dataset, name):
    """The element spec of a dataset of `(images, labels)` pairs; a clear error otherwise."""
    spec = dataset.element_spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return spec
    hint = ""
    if isinstance(spec, dict):
        keys = sorted(spec)
        hint = (f" It yields dicts with keys {keys}: map them to pairs first, e.g. "
                f"`{name}.map(lambda d: (d[{keys[0]!r}], d[{keys[-1]!r}]))`.")
    raise ValueError(f"`{name}` must be a tf.data.Dataset of (images, labels) pairs; its "
                     f"elements are {spec}.{hint}")


def _batched(dataset, batch_size, name):
    x_spec = _check_pairs(dataset, name)[0]
    if len(x_spec.shape) in (2, 3):  # unbatched examples
        dataset = dataset.batch(batch_size)
    return dataset


def _add_channel(dataset):
    x_spec = dataset.element_spec[0]
    if len(x_spec.shape) == 3:  # batched (N, H, W)
        return dataset.map(lambda x, y: (x[..., None], y))
    return dataset


def prepare(x=None, y=None, *, validation_data=None, validation_split=0.2, dataset=None,
            data_dir=None, num_classes=None, batch_size=32, seed=None):
    """Checks and arranges the data of a search.

    Exactly one of `x` or `dataset` is given. `x` is a numpy array (with labels `y`) or a
    `tf.data.Dataset` of `(x, y)` pairs (then `validation_data` must be a dataset too);
    `dataset` is `"digits"` (the embedded default), a `.npz` file (`load_npz`) or the name of
    a prepared TensorFlow Datasets set.

    Returns:
        A `SearchData`.

    Example:

    ```python
    data = prepare(x, y, validation_split=0.2, seed=0)
    data.input_shape, data.num_classes
    ```
    """
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    if x is None and dataset is None:
        dataset = "digits"
    if x is not None and dataset is not None:
        raise ValueError("Pass either `x` (with `y`) or `dataset`, not both.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")

    test = None
    if dataset is not None:
        named = load_named(dataset, data_dir=data_dir)
        (x, y), test = named.train, named.test
        if named.validation is not None:
            if validation_data is not None:
                raise ValueError(f"`dataset` {dataset!r} holds validation data already; "
                                 "leave `validation_data` out.")
            validation_data = named.validation

    if is_tf_dataset(x):
        if y is not None:
            raise ValueError("`y` must be None when `x` is a tf.data.Dataset of (x, y) pairs.")
        if not is_tf_dataset(validation_data):
            raise ValueError(
                "`validation_data` must be a tf.data.Dataset of (x, y) pairs when `x` is one."
            )
        train = _add_channel(_batched(x, batch_size, "x"))
        val = _add_channel(_batched(validation_data, batch_size, "validation_data"))
        shape, n_train = _dataset_shape_and_classes(train, "x", num_classes)
        shape_v, n_val = _dataset_shape_and_classes(val, "validation_data", num_classes)
        if shape_v != shape:
            raise ValueError(
                f"`validation_data` examples have shape {shape_v}, but `x` has {shape}."
            )
        classes = num_classes or max(n_train, n_val)
        if classes < 2:
            raise ValueError(f"The labels name {classes} class(es); a classifier needs >= 2.")
        return SearchData(train, val, shape, int(classes))

    if y is None:
        raise ValueError("`y` (integer class labels) is required when `x` is an array.")
    x, y = check_arrays(x, y)
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError(
                "`validation_data` must be a tuple (x_val, y_val), "
                f"got {type(validation_data).__name__}."
            )
        xv, yv = check_arrays(*validation_data, x_name="validation_data[0]",
                              y_name="validation_data[1]")
        if xv.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"`validation_data` examples have shape {xv.shape[1:]}, "
                f"but `x` has {x.shape[1:]}."
            )
        train, val = (x, y), (xv, yv)
    else:
        train, val = _split(x, y, validation_split, seed)

    top = int(max(train[1].max(), val[1].max()))
    if num_classes is None:
        num_classes = top + 1
        if num_classes < 2:
            raise ValueError(
                f"`y` holds a single class ({top}); a classifier needs labels of >= 2 classes."
            )
    elif top >= num_classes:
        raise ValueError(
            f"`y` has label {top}, which does not fit `num_classes`={num_classes} "
            f"(labels must be in 0..{num_classes - 1})."
        )
    if test is not None:
        test = check_arrays(*test, x_name="test x", y_name="test y")
    return SearchData(train, val, tuple(x.shape[1:]), int(num_classes), test)


def is_tf_dataset(obj):
    """Whether `obj` is a `tf.data.Dataset` (False when TensorFlow is not installed)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, tf.data.Dataset)
