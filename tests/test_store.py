"""The one content-addressed store under both caches: entries by input hash, complete or invisible."""

from __future__ import annotations

import numpy as np
import pytest

from seegaan_explore.store import ArrayStore, content_key


def _write(store: ArrayStore, parts: list[str], values: np.ndarray) -> str:
    name = content_key(parts)

    def fill(out):
        out[:] = values
        return "filled"

    assert store.write_array(f"{name}.npy", values.shape, values.dtype, fill) == "filled"
    store.write_index(name, {"array": f"{name}.npy", "rows": len(values)})
    return name


def test_an_entry_is_found_by_its_inputs_and_missed_when_they_change(tmp_path):
    store = ArrayStore(tmp_path / "store")
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    name = _write(store, ["a", "b"], values)
    assert content_key(["a", "b"]) == name and len(name) == 32
    meta, array = store.open(content_key(["a", "b"]))
    assert isinstance(array, np.memmap) and meta["rows"] == 4
    np.testing.assert_array_equal(array, values)
    for changed in (["a", "c"], ["b", "a"], ["a"], ["a", "b", ""]):
        assert content_key(changed) != name
        assert store.open(content_key(changed)) is None
    assert [n for n, _ in store.entries()] == [name]


def test_an_alias_index_names_another_entrys_rows(tmp_path):
    store = ArrayStore(tmp_path)
    name = _write(store, ["x"], np.ones((3, 2), np.float16))
    store.write_index("files/" + content_key(["y"]), {"entry": name})
    store.write_index(content_key(["z"]), {"array": f"{name}.npy", "rows": 2})
    assert store.index("files/" + content_key(["y"])) == {"entry": name}
    meta, array = store.open(content_key(["z"]))
    assert meta["rows"] == 2 and array.shape == (3, 2)
    assert sorted(n for n, _ in store.entries()) == sorted([name, content_key(["z"])])  # not files/


def test_a_failed_write_leaves_no_file_and_the_previous_entry_intact(tmp_path):
    store = ArrayStore(tmp_path)
    name = _write(store, ["a"], np.zeros((2, 2), np.float32))

    def fail(out):
        out[0] = 7
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.write_array(f"{name}.npy", (2, 2), np.float32, fail)
    with pytest.raises(KeyboardInterrupt):
        store.write_array("other.npy", (5, 2), np.float32, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.npy"]
    np.testing.assert_array_equal(store.open(name)[1], np.zeros((2, 2)))


def test_damaged_or_foreign_files_read_as_absent(tmp_path):
    store = ArrayStore(tmp_path)
    assert store.open("nothing") is None and list(store.entries()) == []  # the folder does not exist
    good = _write(store, ["good"], np.ones((2, 2), np.float32))
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "cut.npy").write_bytes((tmp_path / f"{good}.npy").read_bytes()[:100])
    indexes = {
        "not-json": "{", "a-list": "[1, 2]", "no-array": '{"rows": 1}', "missing": '{"array": "gone.npy", "rows": 1}',
        "empty": '{"array": "empty.npy", "rows": 0}', "cut": '{"array": "cut.npy", "rows": 2}',
        "too-many-rows": f'{{"array": "{good}.npy", "rows": 3}}', "no-rows": f'{{"array": "{good}.npy"}}',
        "outside": '{"array": "../elsewhere.npy", "rows": 0}',
    }
    for name, text in indexes.items():
        (tmp_path / f"{name}.json").write_text(text)
        assert store.open(name) is None, name
    (tmp_path / f".{good}.json.abc.tmp").write_text("{}")  # a write that was killed
    (tmp_path / f".{good}.tmp.json").write_text(f'{{"array": "{good}.npy", "rows": 1}}')
    assert [n for n, _ in store.entries()] == [good]
    assert store.load("gone.npy") is None and store.load(None) is None
