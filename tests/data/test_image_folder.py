"""Tests for tfnas/data/folder.py on small generated image folders."""

from collections import OrderedDict

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tfnas.data import folder as folder_module
from tfnas.data.base import resize_and_crop
from tfnas.data import DatasetFormatError, DatasetNotFoundError, load_dataset

CLASSES = {"dog": 30, "ant": 90, "cat": 150}  # class -> red value; sorted ids: ant 0, cat 1, dog 2


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))  # cv2 writes BGR


def _image(red, h=12, w=12):
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = red
    image[..., 1] = np.arange(w, dtype=np.uint8)[None, :]
    return image


@pytest.fixture
def folder(tmp_path):
    for name, red in CLASSES.items():
        for i in range(3):
            _write(tmp_path / "train" / name / f"{i}.png", _image(red))
        _write(tmp_path / "val" / name / "a.png", _image(red))
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    return tmp_path


def _collect(ds):
    images, labels = zip(*ds.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_image_folder_labels_follow_sorted_class_names(folder):
    ds, info = load_dataset("image_folder", split="train", data_dir=str(folder))
    images, labels = _collect(ds)
    assert info.class_names == ("ant", "cat", "dog") and info.num_classes == 3
    assert info.image_shape == (12, 12, 3)
    assert images.shape == (9, 12, 12, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(sorted(labels), [0, 0, 0, 1, 1, 1, 2, 2, 2])
    for image, label in zip(images, labels):
        np.testing.assert_array_equal(image, _image(CLASSES[info.class_names[label]]))
    # served in one fixed shuffled order, not class by class; the same order in every load
    assert list(labels) != sorted(labels)
    np.testing.assert_array_equal(_collect(load_dataset("image_folder", split="train", data_dir=str(folder))[0])[1],
                                  labels)


def test_the_first_images_of_a_split_hold_every_class(tmp_path):
    # The searches cut the training split in its order (weights / score) and train_subset takes its first
    # images: served class by class, both held the first classes only (the score part: other classes).
    for name in ("a", "b", "c", "d"):
        for i in range(25):
            _write(tmp_path / "train" / name / f"{i:02d}.png", _image(40 * (1 + "abcd".index(name)), 4, 4))
        _write(tmp_path / "val" / name / "0.png", _image(1, 4, 4))
    _, labels = _collect(load_dataset("image_folder", split="train", data_dir=str(tmp_path), subset=20)[0])
    assert set(labels) == {0, 1, 2, 3}
    _, labels = _collect(load_dataset("image_folder", split="train", data_dir=str(tmp_path))[0])
    assert set(labels[75:]) == {0, 1, 2, 3}  # the last quarter, a held-out part of 25 %


def test_image_folder_eval_split_reads_val(folder):
    for name, red in CLASSES.items():  # the val images carry a mark the train images lack
        marked = _image(red)
        marked[..., 2] = 200
        _write(folder / "val" / name / "a.png", marked)
    ds, info = load_dataset("image_folder", split="eval", data_dir=str(folder), subset=2)
    images, labels = _collect(ds)
    assert images.shape == (2, 12, 12, 3)
    assert len(set(labels)) == 2  # one val image per class
    assert (images[..., 2] == 200).all()
    names = sorted(CLASSES)
    assert all(image[0, 0, 0] == CLASSES[names[label]] for image, label in zip(images, labels))


def test_image_folder_mixed_sizes_grey_and_jpeg_are_brought_to_one_shape(folder):
    _write(folder / "train" / "dog" / "z_big.jpg", _image(30, 24, 36))
    assert cv2.imwrite(str(folder / "train" / "cat" / "z_grey.png"), np.full((12, 12), 77, np.uint8))
    ds, info = load_dataset("image_folder", split="train", data_dir=str(folder))
    images, labels = _collect(ds)
    assert images.shape == (11, 12, 12, 3)
    grey = [image for image, label in zip(images, labels) if label == 1 and image[0, 0, 0] == 77]
    assert len(grey) == 1
    np.testing.assert_array_equal(grey[0], np.full((12, 12, 3), 77, np.uint8))
    ds, info = load_dataset("image_folder", split="train", data_dir=str(folder), image_size=6)
    images, _ = _collect(ds)
    assert info.image_shape == (6, 6, 3) and images.shape == (11, 6, 6, 3)


def test_image_folder_unknown_val_class_is_an_error(folder):
    _write(folder / "val" / "bee" / "a.png", _image(10))
    with pytest.raises(DatasetFormatError, match="bee"):
        load_dataset("image_folder", split="eval", data_dir=str(folder))


def test_image_folder_missing_root_is_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train"):
        load_dataset("image_folder", split="train", data_dir=str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        load_dataset("image_folder", split="train")


def test_image_folder_empty_class_is_an_error(folder):
    (folder / "train" / "eel").mkdir()
    with pytest.raises(DatasetFormatError, match="eel"):
        load_dataset("image_folder", split="train", data_dir=str(folder))


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_an_entry_named_like_an_image_that_is_not_a_file_is_named_when_listed(folder, kind):
    entry = folder / "train" / "cat" / "zz.png"
    if kind == "folder":
        entry.mkdir()
    else:
        entry.symlink_to(folder / "nowhere.png")
    (folder / "train" / "dog" / "link.png").symlink_to(folder / "train" / "dog" / "0.png")  # a link to a file: fine
    with pytest.raises(DatasetFormatError) as caught:
        load_dataset("image_folder", split="train", data_dir=str(folder))
    assert str(caught.value) == (f"image_folder: {entry} is named like an image but is not a readable file (a "
                                 f"folder, or a link to nothing); delete or rename it.")


def _damage(path, how):
    """A file that keeps its image signature but not a decodable body."""
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # "garble": zeros over the start of the PNG's compressed pixels (its IDAT chunk)
        at = data.index(b"IDAT") + 4
        path.write_bytes(data[:at] + bytes(16) + data[at + 16:])


@pytest.fixture
def fresh_registry(monkeypatch):
    """Forgets the folders earlier tests opened (damaged_image looks through them)."""
    monkeypatch.setattr(folder_module, "_OPENED", OrderedDict(), raising=False)


def test_image_folder_names_a_damaged_image_met_inside_the_pipeline(folder, fresh_registry, capfd):
    jpeg = folder / "train" / "ant" / "z.jpg"
    _write(jpeg, _image(90, 64, 64))  # large enough for libjpeg to complain about the cut on stderr
    for path, how in ((jpeg, "truncate"), (folder / "train" / "cat" / "1.png", "garble"),
                      (folder / "train" / "dog" / "2.png", "truncate")):
        _damage(path, how)
    ds, _ = load_dataset("image_folder", split="train", data_dir=str(folder), image_size=12)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        _collect(ds)
    assert folder_module.is_decode_error(caught.value)
    capfd.readouterr()
    message = folder_module.damaged_image(caught.value)
    assert message == f"image_folder: damaged image file (delete or replace it): {jpeg} (and 2 more)"
    assert capfd.readouterr() == ("", "")  # the scan decodes every file without a word
    assert folder_module.find_damaged_images([str(folder / "train" / "cat" / "0.png"), str(jpeg)]) == [str(jpeg)]


def test_a_truncated_jpeg_is_named_without_libjpeg_printing_to_the_console(folder, fresh_registry, capfd):
    cut = folder / "train" / "ant" / "z.jpg"
    _write(cut, _image(90, 64, 64))
    whole = cut.read_bytes()
    cut.write_bytes(whole[:-2])  # only the end-of-image marker gone: TensorFlow's decoder rejects it too
    ds, _ = load_dataset("image_folder", split="train", data_dir=str(folder), image_size=12)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        _collect(ds)
    assert capfd.readouterr().err == ""  # before the check, libjpeg's "Premature end of JPEG data" stood here
    assert folder_module.is_decode_error(caught.value)
    want = f"image_folder: damaged image file (delete or replace it): {cut}"
    assert folder_module.damaged_image(caught.value) == want
    folder_module._OPENED.clear()  # outside the folders opened here, the error still names the file
    assert folder_module.damaged_image(caught.value) == want
    # a JPEG with bytes after its end marker (padding, appended data) is complete and decodes
    cut.write_bytes(whole + bytes(100) + b"\xff")
    images, _ = _collect(load_dataset("image_folder", split="train", data_dir=str(folder), image_size=12)[0])
    assert images.shape == (10, 12, 12, 3)
    assert capfd.readouterr().err == ""


def test_image_folder_names_a_damaged_first_image(folder, fresh_registry):
    first = folder / "train" / "ant" / "0.png"  # decoded up front: it sets the image size
    _damage(first, "truncate")
    _damage(folder / "val" / "dog" / "a.png", "garble")  # another split: not counted
    with pytest.raises(DatasetFormatError) as caught:
        load_dataset("image_folder", split="eval", data_dir=str(folder))
    assert str(caught.value) == f"image_folder: damaged image file (delete or replace it): {first}"


def test_an_unrelated_invalid_argument_error_is_not_blamed_on_an_image(folder, fresh_registry):
    load_dataset("image_folder", split="train", data_dir=str(folder))  # a folder whose images are all fine
    with pytest.raises(tf.errors.InvalidArgumentError) as decode:
        tf.io.decode_image(b"\x89PNG\r\n\x1a\n" + bytes(40))  # not from a file of an image folder
    with pytest.raises(tf.errors.InvalidArgumentError) as other:
        tf.reshape(tf.zeros(3), (2, 2))
    assert folder_module.is_decode_error(decode.value) and not folder_module.is_decode_error(other.value)
    assert folder_module.damaged_image(decode.value) is None
    assert folder_module.damaged_image(other.value) is None
    assert folder_module.damaged_image(ValueError("Invalid PNG data [Op:DecodeImage]")) is None


def test_resize_and_crop_keeps_aspect_and_takes_the_centre():
    wide = np.zeros((12, 36, 3), np.uint8)
    wide[:, :12, 0] = 255  # left third red
    wide[:, 12:24, 1] = 255  # middle third green
    wide[:, 24:, 2] = 255  # right third blue
    out = resize_and_crop(wide, 6, 6).numpy()
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    # 12x36 -> 6x18, centre columns 6..12 of the resized image: the green third (the
    # antialiasing filter blurs only the outermost columns)
    inner = out[:, 1:5]
    assert inner[..., 1].min() >= 250 and inner[..., 0].max() <= 5 and inner[..., 2].max() <= 5
    assert out[..., 1].min() > 128
    same = resize_and_crop(wide[:, :12], 12, 12).numpy()
    np.testing.assert_array_equal(same, wide[:, :12])
