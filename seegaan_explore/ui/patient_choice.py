"""Which image the dashboard explores: a cohort patient (by number, or a click on the cohort map) or
an image the user brings, uploaded from the browser or read from a path typed in the page.

A typed path reads files on the server: anywhere only for a server on this machine; under a folder
(``serve --data-root``) for one that others reach, where a path outside gets the same answer whether
or not its file exists, so that the page cannot probe the server's files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from ..data.formats import ImageReadError, ImportFilter
from ..data.readers import read_radiograph
from .serve import SERVER_PATHS_ENV

UPLOAD_SUFFIXES = ".dcm,.dicom,.ima,.png,.jpg,.jpeg,.tif,.tiff,.npy"


def typed_paths(setting: bool | str | Path | None) -> tuple[Path | None, bool]:
    """(the folder typed paths are confined to, whether the page offers the box at all) from
    :data:`~seegaan_explore.ui.serve.SERVER_PATHS_ENV`'s "0" (no), "1" (any path) or a folder; None
    reads that variable."""
    if setting is None:
        setting = os.environ.get(SERVER_PATHS_ENV, "1")
    if isinstance(setting, bool) or setting in ("0", "1"):
        return None, setting in (True, "1")
    return Path(setting).resolve(), True


class PatientChoice:
    """The widgets that choose the image: :attr:`patient` (a cohort row), :attr:`uploaded` (the images
    brought so far, "" for the cohort patient), :attr:`upload`, and :attr:`path` with :attr:`load`.

    A brought image is read as the cohort's were (refused by ``filters``, default the chest filter;
    ``colour``) and encoded by ``add_image(image, name)``, which returns its key; ``say(message,
    error)`` reports; ``quietly()`` is held while this moves a control that should not by itself ask
    for a render. ``server_paths`` as :func:`typed_paths` takes it.
    """

    def __init__(self, n_patients: int, *, add_image: Callable[[np.ndarray, str], str],
                 say: Callable[..., None], quietly: Callable[[], AbstractContextManager],
                 server_paths: bool | str | Path | None = None, style: dict | None = None,
                 filters: ImportFilter | None = None, colour: str = "refuse"):
        self._add_image, self._say, self._quietly = add_image, say, quietly
        self._filters, self._colour = filters, colour
        self._root, self.offers_path = typed_paths(server_paths)
        self.patient = widgets.BoundedIntText(value=0, min=0, max=n_patients - 1, description="Patient #",
                                              style=style or {}, layout=widgets.Layout(width="148px"))
        self.uploaded = widgets.Dropdown(options=[("a cohort patient (by #)", "")], value="",
                                         description="Image", style=style or {},
                                         layout=widgets.Layout(width="300px", display="none"))  # until an upload
        self.upload = widgets.FileUpload(accept=UPLOAD_SUFFIXES, multiple=False, description="Your image",
                                         layout=widgets.Layout(width="140px"))
        self.path = widgets.Text(placeholder="or a file path on the server" if self._root is None
                                 else "or a file path in the data folder", layout=widgets.Layout(width="210px"))
        self.load = widgets.Button(description="Open", icon="upload", layout=widgets.Layout(width="86px"),
                                   tooltip="Read the image at this path and place it in the model's space")
        self.upload.observe(self._on_upload, names="value")
        self.load.on_click(self._on_load_path)

    @property
    def value(self) -> int | str:
        """The renderer's ``patient`` argument: a brought image's key, else the cohort row."""
        return self.uploaded.value or self.patient.value

    @property
    def row(self) -> int | None:
        """The cohort row explored; None while a brought image is."""
        return self.patient.value if not self.uploaded.value else None

    def pick(self, row: int) -> None:
        """Explore cohort patient ``row`` (a click on the map)."""
        with self._quietly():
            self.uploaded.value = ""
        self.patient.value = row  # observers request the render

    def _add(self, image: np.ndarray, name: str) -> None:
        key = self._add_image(image, name)
        with self._quietly():
            self.uploaded.options = [*[o for o in self.uploaded.options if o[1] != key], (name, key)]
            self.uploaded.layout.display = None
        self.uploaded.value = key  # observers request the render
        self._say(f"Encoded {name}.")

    def _on_upload(self, change) -> None:
        for item in change["new"]:
            name = item["name"]
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / Path(name).name
                path.write_bytes(bytes(item["content"]))
                self._encode_file(path, name)

    def _on_load_path(self, _button) -> None:
        if not self.offers_path:
            return
        typed = self.path.value.strip()
        if self._root is None:
            path = Path(typed).expanduser()
        else:  # the same answer whether or not a file outside exists: nothing to probe
            path = (self._root / typed).resolve()
            if not path.is_relative_to(self._root):
                self._say(f"Could not use {typed}: only files in the data folder can be read", error=True)
                return
        self._encode_file(path, Path(typed).name)

    def _encode_file(self, path: Path, name: str) -> None:
        try:
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            self._add(read_radiograph(path, filters=self._filters, colour=self._colour), name)
        except (ImageReadError, FileNotFoundError, ValueError) as e:
            self._say(f"Could not use {name}: {e}", error=True)
