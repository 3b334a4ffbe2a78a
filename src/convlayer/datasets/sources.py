"""Where each dataset comes from, and ``load`` / ``available`` on top of that.

MNIST and Fashion-MNIST are the four standard IDX files each, found in this order:

1. the ``data_dir`` argument (an explicit folder: an error if the files are not there);
2. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` package in ``/usr/share/datasets``;
3. the folder in ``$CONVLAYER_DATA_DIR``;
4. the cache, ``<cache root>/<dataset>/`` with the root from ``cache_dir``, ``$CONVLAYER_CACHE_DIR``
   or ``~/.cache/convlayer`` (``$XDG_CACHE_HOME/convlayer`` when that is set);
5. a download into that cache from the mirrors below, each file checked against its
   published MD5 (``download=False`` skips this step).

In a data folder the files may sit in the folder itself or in a ``<dataset>/`` subfolder
(``mnist/``, ``fashion-mnist/``), so one ``CONVLAYER_DATA_DIR`` can serve both datasets,
whose files have identical names.

Tests and private mirrors override the download sources through the module-level
``MNIST_MIRRORS`` / ``FASHION_MNIST_MIRRORS`` tuples or the ``CONVLAYER_MNIST_MIRROR`` /
``CONVLAYER_FASHION_MNIST_MIRROR`` variables (base URLs separated by spaces or commas).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dataset import Dataset, DatasetError, check_seed, check_validation_split, split_validation, stratified_split
from .download import DownloadFailed, KnownMD5, fetch
from .idx import IDXError, parse_idx, read_idx_bytes

__all__ = ["DATASET_NAMES", "available", "canonical_name", "load"]

DATASET_NAMES = ("mnist", "fashion-mnist", "digits")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}

DATA_DIR_ENV = "CONVLAYER_DATA_DIR"
CACHE_DIR_ENV = "CONVLAYER_CACHE_DIR"
MIRROR_ENV = {"mnist": "CONVLAYER_MNIST_MIRROR", "fashion-mnist": "CONVLAYER_FASHION_MNIST_MIRROR"}
DOWNLOAD_TIMEOUT_S = 30.0

# The standard names of the four IDX files; on disk each may also carry a .gz suffix.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# yann.lecun.com, the original host, now often refuses downloads; these are the mirrors
# torchvision (datasets/mnist.py) and TensorFlow's tutorials use.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# Archive MD5s as in torchvision's MNIST.resources; content MD5s of the uncompressed files
# as published alongside them (e.g. PyTorch/secml download scripts).
MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte": KnownMD5("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": KnownMD5("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": KnownMD5("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": KnownMD5("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}

# Zalando's own hosting (README "Get the Data") and the copy in their GitHub repository.
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# Archive MD5s from zalandoresearch/fashion-mnist's README; content MD5s of the uncompressed
# files (they also match Debian's re-compressed copies).
FASHION_MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte": KnownMD5("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": KnownMD5("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": KnownMD5("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": KnownMD5("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
}

# Installed by `apt install dataset-fashion-mnist`.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# digits has no official test split: hold out a fixed, stratified 20% so that test
# accuracy is comparable across runs whatever seed drives the validation split.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class _IdxSpec:
    name: str
    title: str
    class_names: tuple[str, ...]
    download_size: str
    description: str


_IDX_SPECS = {
    "mnist": _IdxSpec("mnist", "MNIST", MNIST_CLASS_NAMES, "11 MB", "70,000 28x28 handwritten digits"),
    "fashion-mnist": _IdxSpec(
        "fashion-mnist", "Fashion-MNIST", FASHION_MNIST_CLASS_NAMES, "30 MB", "70,000 28x28 clothing images"
    ),
}
_IMAGE_SIZE = 28


def canonical_name(name) -> str:
    """The registry name for ``name`` ('Fashion_MNIST' -> 'fashion-mnist'), or a DatasetError listing valid names.

    >>> canonical_name("fashion_mnist")
    'fashion-mnist'
    """
    if not isinstance(name, str):
        raise TypeError(f"Dataset name must be a str, got {name!r}; valid names: {_valid_names()}.")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        close = difflib.get_close_matches(key, DATASET_NAMES + tuple(_ALIASES), n=1)
        hint = f" Did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
        raise DatasetError(f"Unknown dataset {name!r}; valid names: {_valid_names()}.{hint}")
    return key


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    validation_split: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """Load a dataset as float32 images in [0, 1] and int64 labels, with an optional validation split.

    Args:
        name: 'mnist', 'fashion-mnist' (or 'fashion_mnist'), or 'digits' (scikit-learn's
            bundled 8x8 digits; a fixed stratified 20% is its test set).
        data_dir: a folder holding the four IDX files (``train-images-idx3-ubyte`` etc., raw
            or ``.gz``), directly or in a ``<name>/`` subfolder. Overrides every other source.
        cache_dir: root of the download cache (files go to ``<cache_dir>/<name>/``); default
            ``$CONVLAYER_CACHE_DIR`` or ``~/.cache/convlayer``.
        download: fetch missing MNIST / Fashion-MNIST files from the mirrors (MD5-verified).
        validation_split: fraction in [0, 1) of the training set held out as validation,
            stratified by class.
        seed: seeds the validation split (``np.random.default_rng(seed)``).

    Returns:
        A ``Dataset``: ``x_*`` of shape ``(N, H, W)``, ``y_*`` of shape ``(N,)``; ``source`` says
        where the files came from. ``data_dir``, ``cache_dir`` and ``download`` do not apply
        to 'digits'.

    Raises:
        DatasetError: unknown name, or the files are missing and cannot be downloaded (the
            message says where to put them).
        IDXError: a file is malformed, or an images/labels pair does not match.

    Example:
        >>> data = load("digits", validation_split=0.25, seed=1)
        >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
        ((1078, 8, 8), (360, 8, 8), (359, 8, 8))
    """
    key = canonical_name(name)
    validation_split = check_validation_split(validation_split)
    seed = check_seed(seed)
    if key == "digits":
        x_train, y_train, x_test, y_test, source = _load_digits()
        class_names = MNIST_CLASS_NAMES
    else:
        spec = _IDX_SPECS[key]
        x_train, y_train, x_test, y_test, source = _load_idx(spec, data_dir, cache_dir, bool(download))
        class_names = spec.class_names
    x_train, y_train, x_val, y_val = split_validation(x_train, y_train, validation_split, seed)
    return Dataset(
        name=key,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        input_dim=x_train.shape[1],
        num_classes=len(class_names),
        source=source,
    )


def available(
    *, data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> list[dict]:
    """Which datasets load without a download, and from where; for ``convlayer datasets``.

    Only looks for files (never reads, verifies or downloads them).

    Args:
        data_dir, cache_dir: as in ``load``.

    Returns:
        One dict per dataset with keys ``name`` (str), ``available`` (bool: loads offline),
        ``source`` (the folder it loads from, or the mirrors it would download from) and
        ``note`` (a sentence for people).

    Example:
        >>> [row["name"] for row in available()]
        ['mnist', 'fashion-mnist', 'digits']
    """
    rows = []
    for spec in _IDX_SPECS.values():
        found = _find_local(spec, data_dir, cache_dir)
        if found.files is not None:
            source = f"{found.source} ({found.origin})" if found.origin else found.source
            rows.append({"name": spec.name, "available": True, "source": source, "note": f"{spec.description}."})
            continue
        problems = f" ({'; '.join(found.problems)})" if found.problems else ""
        rows.append(
            {
                "name": spec.name,
                "available": False,
                "source": "download from " + ", ".join(_mirrors(spec.name)),
                "note": (
                    f"Not on this machine{problems}; load('{spec.name}') downloads {spec.download_size} into "
                    f"{found.cache}, or put the 4 IDX files in a folder and pass --data-dir FOLDER or set "
                    f"{DATA_DIR_ENV}=FOLDER."
                ),
            }
        )
    has_sklearn = _have_sklearn()
    rows.append(
        {
            "name": "digits",
            "available": has_sklearn,
            "source": "scikit-learn (sklearn.datasets.load_digits, bundled)" if has_sklearn else "",
            "note": (
                "1,797 8x8 handwritten digits; a fixed stratified 20% is the test set."
                if has_sklearn
                else "Needs scikit-learn: pip install 'convlayer[data]'."
            ),
        }
    )
    return rows


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST


@dataclass
class _Found:
    files: dict[str, Path] | None  # stem -> path, all four; None when not found locally
    source: str = ""
    user_folder: Path | None = None  # set when the files come from a data folder: verify what they are
    origin: str = ""  # how that folder was given, e.g. "data_dir argument"
    cache: Path = Path()
    missing_in_cache: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why local places did not have the files


def _load_idx(spec: _IdxSpec, data_dir, cache_dir, download: bool):
    found = _find_local(spec, data_dir, cache_dir)
    if data_dir is not None and found.files is None:
        raise DatasetError(f"{spec.title}: {found.problems[0]}. {_where_to_put_files(spec, found.cache)}")
    if found.files is None:
        found.files, found.source = _download(spec, found, download)
    files, source = found.files, found.source

    raw = {stem: read_idx_bytes(path) for stem, path in files.items()}  # uncompressed IDX bytes
    if found.user_folder is not None:
        source = f"{source} ({found.origin}; {_provenance(spec, raw, found.user_folder)})"
    x_train, y_train = _images_and_labels(spec, raw, files, "train")
    x_test, y_test = _images_and_labels(spec, raw, files, "t10k")
    return x_train, y_train, x_test, y_test, source


def _find_local(spec: _IdxSpec, data_dir, cache_dir) -> _Found:
    cache = _cache_root(cache_dir) / spec.name
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        folder, files, problem = _search_folder(root, spec)
        if files is None:
            return _Found(None, cache=cache, problems=[f"data_dir={str(root)!r} {problem}"])
        return _Found(files, f"local folder {folder}", user_folder=folder, origin="data_dir argument", cache=cache)

    problems = []
    if spec.name == "fashion-mnist":
        files, missing = _files_in(DEBIAN_FASHION_MNIST_DIR)
        if not missing:
            return _Found(files, f"Debian package dataset-fashion-mnist ({DEBIAN_FASHION_MNIST_DIR})", cache=cache)
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        folder, files, problem = _search_folder(Path(env_dir).expanduser(), spec)
        if files is not None:
            return _Found(files, f"local folder {folder}", user_folder=folder, origin=f"${DATA_DIR_ENV}", cache=cache)
        problems.append(f"${DATA_DIR_ENV}={env_dir} {problem}")
    files, missing = _files_in(cache)
    if not missing:
        return _Found(files, f"cache {cache}", cache=cache)
    return _Found(None, cache=cache, missing_in_cache=missing, problems=problems)


def _download(spec: _IdxSpec, found: _Found, download: bool) -> tuple[dict[str, Path], str]:
    cache = found.cache
    if not download:
        looked = "; ".join(found.problems + [f"cache {cache} lacks {', '.join(found.missing_in_cache)}"])
        raise DatasetError(
            f"{spec.title} is not on this machine and download=False ({looked}). {_where_to_put_files(spec, cache)}"
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(
            f"Cannot create the {spec.title} cache folder {cache} ({error}); pass cache_dir=... or set "
            f"{CACHE_DIR_ENV} to a writable folder."
        ) from None
    files, _ = _files_in(cache)
    mirrors, checksums = _mirrors(spec.name), _checksums(spec.name)
    used = []
    for stem in found.missing_in_cache:
        try:
            url = fetch(f"{stem}.gz", mirrors, checksums[stem], cache, timeout=DOWNLOAD_TIMEOUT_S)
        except DownloadFailed as failed:
            tried = "; ".join(found.problems + (failed.failures or ["no download mirrors configured"]))
            raise DatasetError(
                f"{spec.title} is not on this machine and could not be downloaded ({tried}). "
                f"{_where_to_put_files(spec, cache)}"
            ) from None
        files[stem] = cache / f"{stem}.gz"
        used.append(url.rsplit("/", 1)[0] + "/")
    return files, f"downloaded from {', '.join(dict.fromkeys(used))} into cache {cache}"


def _where_to_put_files(spec: _IdxSpec, cache: Path) -> str:
    names = ", ".join(f"{stem}.gz" for stem in IDX_FILES)
    offline = []
    if spec.name != "fashion-mnist" and not _files_in(DEBIAN_FASHION_MNIST_DIR)[1]:
        offline.append("'fashion-mnist' (Debian's dataset-fashion-mnist is installed)")
    if _have_sklearn():
        offline.append("'digits' (bundled with scikit-learn)")
    offline_text = f" Datasets that work offline here: {', '.join(offline)}." if offline else ""
    return (
        f"Put the 4 {spec.title} files {names} (gzipped or not) in a folder and pass --data-dir FOLDER "
        f"(load(..., data_dir=FOLDER)) or set {DATA_DIR_ENV}=FOLDER, or copy them into {cache}.{offline_text}"
    )


def _search_folder(root: Path, spec: _IdxSpec) -> tuple[Path | None, dict[str, Path] | None, str]:
    """The first of ``root/<name>``, ``root/<name_with_underscore>``, ``root`` holding all four files."""
    if not root.is_dir():
        return None, None, "is not a folder"
    candidates = list(dict.fromkeys([root / spec.name, root / spec.name.replace("-", "_"), root]))
    for folder in candidates:
        files, missing = _files_in(folder)
        if not missing:
            return folder, files, ""
    _, missing = _files_in(root)
    looked = " or ".join(str(folder) for folder in candidates if folder.is_dir())
    return None, None, f"has no complete set of {spec.title} files (missing {', '.join(missing)} in {looked})"


def _files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """``({stem: path}, [missing stems])``; an uncompressed file wins over its .gz (it reads faster)."""
    found, missing = {}, []
    for stem in IDX_FILES:
        path = next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)
        if path is None:
            missing.append(stem)
        else:
            found[stem] = path
    return found, missing


def _images_and_labels(spec: _IdxSpec, raw: dict[str, bytes], files: dict[str, Path], split: str):
    """Check one split's pair of files and convert: images (N, 28, 28) float32 in [0, 1], labels (N,) int64."""
    images_path, labels_path = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
    images = parse_idx(raw[f"{split}-images-idx3-ubyte"], images_path)
    labels = parse_idx(raw[f"{split}-labels-idx1-ubyte"], labels_path)
    size = _IMAGE_SIZE
    if images.dtype != np.uint8 or images.shape[1:] != (size, size) or images.ndim != 3:
        raise IDXError(
            f"{images_path}: expected {spec.title} images, unsigned bytes with dimensions N x {size} x {size}, "
            f"got {images.dtype.newbyteorder('=')} with dimensions {' x '.join(map(str, images.shape))}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(
            f"{labels_path}: expected {spec.title} labels, unsigned bytes with one dimension N, "
            f"got {labels.dtype.newbyteorder('=')} with dimensions {' x '.join(map(str, labels.shape))}."
        )
    if len(images) != len(labels):
        raise IDXError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; the images "
            "and labels of a split must pair up one to one (files from different sets, or one truncated?)."
        )
    if labels.size and int(labels.max()) >= len(spec.class_names):
        raise IDXError(
            f"{labels_path}: label {int(labels.max())} is out of range; {spec.title} labels are "
            f"0..{len(spec.class_names) - 1}."
        )
    x = np.divide(images, np.float32(255), dtype=np.float32)  # (N, 28, 28), exact k/255 in float32
    return x, labels.astype(np.int64)


def _provenance(spec: _IdxSpec, raw: dict[str, bytes], folder: Path) -> str:
    """Say whether files from a user folder are the official release; refuse the other dataset's files."""
    md5 = {stem: hashlib.md5(data, usedforsecurity=False).hexdigest() for stem, data in raw.items()}
    for other in _IDX_SPECS.values():
        if other is spec:
            continue
        if any(md5[stem] == known.content for stem, known in _checksums(other.name).items()):
            raise DatasetError(
                f"The files in {folder} are the official {other.title} files, not {spec.title}; load "
                f"'{other.name}' instead, or put {spec.title}'s files in {folder / spec.name}."
            )
    if all(md5[stem] == known.content for stem, known in _checksums(spec.name).items()):
        return "official files, MD5-verified"
    return "not the official release (MD5s differ), loaded as given"


def _mirrors(name: str) -> tuple[str, ...]:
    from_env = os.environ.get(MIRROR_ENV[name], "").replace(",", " ").split()
    if from_env:
        return tuple(from_env)
    # Looked up at call time, so a monkeypatched tuple takes effect.
    return MNIST_MIRRORS if name == "mnist" else FASHION_MNIST_MIRRORS


def _checksums(name: str) -> dict[str, KnownMD5]:
    return MNIST_CHECKSUMS if name == "mnist" else FASHION_MNIST_CHECKSUMS


def _cache_root(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "convlayer"


# ---------------------------------------------------------------------------------------------
# digits


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(
            "The 'digits' dataset comes with scikit-learn, which is not installed: pip install "
            "'convlayer[data]' (or scikit-learn), or load 'mnist' / 'fashion-mnist' instead."
        ) from None
    bunch = load_digits()
    x = np.divide(bunch.images, 16, dtype=np.float32)  # (1797, 8, 8); pixel counts 0..16 -> [0, 1]
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, DIGITS_TEST_FRACTION, np.random.default_rng(DIGITS_SPLIT_SEED))
    source = (
        "scikit-learn's bundled digits (sklearn.datasets.load_digits); test set: a fixed stratified "
        f"{DIGITS_TEST_FRACTION:.0%} (seed {DIGITS_SPLIT_SEED})"
    )
    return x[train], y[train], x[test], y[test], source


def _have_sklearn() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def _valid_names() -> str:
    return "'mnist', 'fashion-mnist' (or 'fashion_mnist'), 'digits'"
