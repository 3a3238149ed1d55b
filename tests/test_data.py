import numpy as np
import pytest
import tensorflow as tf

from keras_nas import data


def images(n, h=8, w=8, c=1, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype("float32")


def test_digits_is_embedded_and_shaped():
    (x, y), (xt, yt) = data.load_digits()
    assert x.shape[1:] == (8, 8, 1) and xt.shape[1:] == (8, 8, 1)
    assert len(x) + len(xt) == 1797
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


def test_prepare_defaults_to_digits_with_a_seeded_split():
    a = data.prepare(seed=3)
    b = data.prepare(seed=3)
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    np.testing.assert_array_equal(a.validation[1], b.validation[1])
    n_train, n_val = len(a.train[0]), len(a.validation[0])
    assert n_val == round((n_train + n_val) * 0.2)
    assert a.test is not None and len(a.test[0]) == 360


def test_prepare_adds_a_channel_and_infers_classes():
    d = data.prepare(images(20)[..., 0], np.arange(20) % 3, validation_split=0.25, seed=0)
    assert d.input_shape == (8, 8, 1) and d.num_classes == 3
    assert d.train[0].dtype == np.float32 and d.train[1].dtype == np.int32
    x, y = d.train_and_validation()
    assert len(x) == len(y) == 20


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=images(10), y=np.arange(9) % 2), r"`x` and `y` must have the same length"),
    (dict(x=images(0), y=np.zeros(0)), r"`x` is empty"),
    (dict(x=np.zeros((10, 64)), y=np.arange(10) % 2), r"`x` must have shape"),
    (dict(x=images(10), y=np.linspace(0, 1, 10)), r"`y` must hold integer"),
    (dict(x=images(10), y=-(np.arange(10) % 2)), r"`y` must hold labels >= 0"),
    (dict(x=images(10), y=np.zeros(10)), r"single class"),
    (dict(x=images(10), y=np.arange(10) % 4, num_classes=3), r"does not fit `num_classes`=3"),
    (dict(x=np.full((10, 8, 8, 1), np.nan), y=np.arange(10) % 2), r"NaN or infinite"),
    (dict(x=images(10), y=np.arange(10) % 2, validation_data=(images(4, 9, 9), np.arange(4) % 2)),
     r"`validation_data` examples have shape"),
    (dict(x=images(10), y=np.arange(10) % 2, validation_split=1.5), r"`validation_split`"),
    (dict(x=images(10), y=np.arange(10) % 2, batch_size=0), r"`batch_size`"),
    (dict(x=images(10), y=None), r"`y` \(integer class labels\) is required"),
    (dict(dataset="no_such_dataset_anywhere"), r"Unknown `dataset`"),
    (dict(x=images(10), y=np.arange(10) % 2, dataset="digits"), r"either `x`"),
])
def test_prepare_rejects_bad_input_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.prepare(**kwargs)


def test_prepare_accepts_tf_datasets_batched_or_not():
    x, y = images(24), (np.arange(24) % 4).astype("int64")
    train = tf.data.Dataset.from_tensor_slices((x, y))             # unbatched
    val = tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(4)
    d = data.prepare(train, validation_data=val, batch_size=8)
    assert d.is_dataset and d.input_shape == (8, 8, 1) and d.num_classes == 4
    batch_x, batch_y = next(iter(d.train))
    assert batch_x.shape == (8, 8, 8, 1)
    joined = d.train_and_validation()
    assert sum(int(b[0].shape[0]) for b in joined) == 32


def test_tf_dataset_needs_validation_dataset():
    ds = tf.data.Dataset.from_tensor_slices((images(8), np.arange(8) % 2))
    with pytest.raises(ValueError, match="`validation_data` must be a tf.data.Dataset"):
        data.prepare(ds)


def test_tfds_name_loads_through_tensorflow_datasets(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        named = data.load_named("mnist", data_dir=str(tmp_path))
    (x, y), (xt, yt) = named.train, named.test
    assert named.validation is None
    assert x.shape[1:] == (28, 28, 1) and len(x) == 12
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype.kind in "iu"


def test_a_dataset_of_dicts_gets_a_message_on_the_expected_structure():
    ds = tf.data.Dataset.from_tensor_slices({"image": images(8), "label": np.arange(8) % 2})
    with pytest.raises(ValueError, match=r"`x` must be a tf.data.Dataset of \(images, labels\) "
                                         r"pairs.*keys \['image', 'label'\].*map"):
        data.prepare(ds, validation_data=ds)


def test_a_tfds_set_that_is_not_prepared_says_how_to_prepare_it(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError) as error:
        data.load_named("mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and "not prepared in" in message and str(tmp_path) in message
    assert f"tfds build mnist --data_dir {tmp_path}" in message


def test_npz_files_hold_the_splits(tmp_path):
    x, y = (images(30) * 255).astype("uint8"), np.arange(30) % 3
    np.savez(tmp_path / "all.npz", x_train=x[:20], y_train=y[:20], x_val=x[20:25],
             y_val=y[20:25], x_test=x[25:], y_test=y[25:])
    d = data.prepare(dataset=str(tmp_path / "all.npz"))
    assert len(d.train[0]) == 20 and len(d.validation[0]) == 5 and len(d.test[0]) == 5
    assert d.train[0].dtype == np.float32 and d.train[0].max() <= 1.0  # 8-bit scaled
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    d = data.prepare(dataset=str(tmp_path / "xy.npz"), validation_split=0.2, seed=0)
    assert len(d.train[0]) == 24 and len(d.validation[0]) == 6 and d.test is None
    np.savez(tmp_path / "bad.npz", images=x, y=y)
    with pytest.raises(ValueError, match="must hold arrays x, y or x_train, y_train"):
        data.prepare(dataset=str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y, x_test=x)
    with pytest.raises(ValueError, match="x_test without y_test"):
        data.prepare(dataset=str(tmp_path / "half.npz"))
    with pytest.raises(ValueError, match="holds validation data already"):
        data.prepare(dataset=str(tmp_path / "all.npz"), validation_data=(x, y))
